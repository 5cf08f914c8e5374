"""Deletion and insertion curves (Petsiuk et al. 2018) on GestaltMatcher's real score.

A map orders the face's pixels. *Deletion* replaces them, most relevant first (``order="most"``),
with a fill image and records the target's score after each step; a faithful map makes the score
fall fast (low area under the curve). *Insertion* starts from the fill image and puts the face's
pixels back in the same order; a faithful map makes the score rise fast (high area). The
``"least"`` order (least relevant first) is the control: the curves should then move slowly.

Fills: ``"blur"`` (the face blurred with a Gaussian of :data:`BLUR_SIGMA` pixels: removes detail,
keeps the colour layout, so the perturbed face stays face-like) and ``"mean"`` (every pixel the
face's per-channel mean colour).

Step ``k`` of ``steps`` perturbs the first ``round(k * P / steps)`` of the ``P`` pixels in the map's
order (ties kept in raster order: a stable sort). The x axis is the fraction of pixels perturbed,
``k / steps`` exactly; the area is the trapezoid rule over it.

:func:`perturbation_curve` is the generic kernel (any ``evaluate(images) -> scores``; the toy tests
use a linear model). :func:`faithfulness_curves` scores many faces, maps and settings at once
through the explanation engine's models and variants: every perturbed face of every curve is
queued, and one forward pass per variant serves a whole batch of them, whatever face or method they
came from; the clean face and the fill image (every curve's first and last point) are scored once
per face. The score is the target's :meth:`~gmx.explain.Target.ranking_score` (for a
:class:`~gmx.explain.SimilarityTarget`, the mean cosine over variants to the syndrome's nearest
gallery image, or with ``syndrome_embeddings`` GestaltMatcher's re-ranked syndrome score); with a
gallery, each perturbed face is also re-ranked (:func:`gmx.gallery.rank`) and the true syndrome's
rank recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch import nn

from gmx.encode import Variant
from gmx.explain.engine import check_faces, setup_models, variant_rows
from gmx.explain.prepared import device_of
from gmx.explain.targets import Target
from gmx.gallery import Gallery, syndrome_ranks

Mode = Literal["deletion", "insertion"]
Order = Literal["most", "least"]
Fill = Literal["blur", "mean"]
MODES: tuple[Mode, ...] = ("deletion", "insertion")
ORDERS: tuple[Order, ...] = ("most", "least")
FILLS: tuple[Fill, ...] = ("blur", "mean")

#: Gaussian sigma of the ``"blur"`` fill, in template pixels (112 px face).
BLUR_SIGMA = 5.0
#: Default number of steps of a curve (``steps + 1`` points, 0 % .. 100 % perturbed).
DEFAULT_STEPS = 20
#: Default perturbed faces per forward pass.
DEFAULT_BATCH = 64


@dataclass(frozen=True, eq=False)
class PerturbationCurve:
    """One deletion or insertion curve.

    Attributes:
        mode, order, fill: what was done (see the module docstring).
        fractions: ``(steps + 1,)`` fraction of pixels perturbed, ``0 .. 1``.
        scores: ``(steps + 1,)`` the target's score at each step.
        ranks: ``(steps + 1,)`` the true syndrome's rank (1 = first) after re-ranking each perturbed
            face against the gallery (NaN where the syndrome is not ranked), or ``None``.
        face: index of the face in the call; method: the map's method name ("" when not given).
    """

    mode: str
    order: str
    fill: str
    fractions: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray | None = None
    face: int = 0
    method: str = ""

    @property
    def auc(self) -> float:
        """Area under the score curve (trapezoid rule over ``fractions``)."""
        return curve_auc(self.fractions, self.scores)

    @property
    def rank_auc(self) -> float:
        """Area under the rank curve (NaN without ranks)."""
        return float("nan") if self.ranks is None else curve_auc(self.fractions, self.ranks)


def curve_auc(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area of ``values`` over ``fractions`` (float64)."""
    x = np.asarray(fractions, np.float64)
    y = np.asarray(values, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need two 1-D arrays of equal length >= 2, got {x.shape} and {y.shape}")
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def fill_image(image: np.ndarray, fill: Fill, *, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """The fill of ``image`` ``(H, W, C)``: its Gaussian blur or its per-channel mean colour.

    Same dtype as ``image`` (uint8 is rounded); ``image`` is not modified.
    """
    img = np.asarray(image)
    if img.ndim != 3:
        raise ValueError(f"image must be (H, W, C), got shape {img.shape}")
    f = img.astype(np.float32)
    if fill == "blur":
        out = cv2.GaussianBlur(f, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
        out = out.reshape(img.shape)
    elif fill == "mean":
        out = np.broadcast_to(f.mean(axis=(0, 1), keepdims=True), img.shape)
    else:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return np.array(out, dtype=img.dtype)


def pixel_order(attribution: np.ndarray, order: Order) -> np.ndarray:
    """Flat pixel indices, most relevant first (``"most"``) or least relevant first (``"least"``).

    Ties keep raster order (stable sort). Raises ``ValueError`` for NaN or inf.
    """
    a = np.asarray(attribution, np.float64).ravel()
    if not np.all(np.isfinite(a)):
        raise ValueError("attribution contains NaN or inf")
    if order == "most":
        return np.argsort(-a, kind="stable")
    if order == "least":
        return np.argsort(a, kind="stable")
    raise ValueError(f"order must be one of {ORDERS}, got {order!r}")


def step_counts(n_pixels: int, steps: int) -> np.ndarray:
    """Pixels perturbed at each of the ``steps + 1`` points: ``round(k * n_pixels / steps)``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    return np.rint(np.arange(steps + 1) * n_pixels / steps).astype(np.int64)


def perturbed_images(
    image: np.ndarray,
    attribution: np.ndarray,
    baseline: np.ndarray,
    *,
    mode: Mode,
    order: Order,
    steps: int = DEFAULT_STEPS,
) -> np.ndarray:
    """The ``(steps + 1, H, W, C)`` images of one curve (dtype of ``image``; inputs not modified).

    Deletion: step ``k`` shows ``baseline`` on the first ``counts[k]`` pixels of the order and
    ``image`` elsewhere; insertion the reverse (starts at ``baseline``, ends at ``image``).
    """
    img = np.asarray(image)
    base = np.asarray(baseline, dtype=img.dtype)
    if img.ndim != 3 or base.shape != img.shape:
        raise ValueError(
            f"image and baseline must be the same (H, W, C), got {img.shape}, {base.shape}"
        )
    if np.shape(attribution) != img.shape[:2]:
        raise ValueError(
            f"attribution {np.shape(attribution)} does not match image {img.shape[:2]}"
        )
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    idx = pixel_order(attribution, order)
    counts = step_counts(len(idx), steps)
    rank_of = np.empty(len(idx), np.int64)
    rank_of[idx] = np.arange(len(idx))
    # chosen[k, p]: pixel p is among the first counts[k] of the order.
    chosen = rank_of[None, :] < counts[:, None]
    chosen = chosen.reshape(len(counts), *img.shape[:2], 1)
    first, second = (base, img) if mode == "deletion" else (img, base)
    return np.where(chosen, first[None], second[None])


def perturbation_curve(
    evaluate: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    attribution: np.ndarray,
    *,
    mode: Mode,
    order: Order = "most",
    fill: Fill | np.ndarray = "blur",
    steps: int = DEFAULT_STEPS,
) -> PerturbationCurve:
    """The curve of one image and map for any scorer (one ``evaluate`` call on all its images).

    Args:
        evaluate: ``(n, H, W, C)`` images -> ``(n,)`` scores.
        image: ``(H, W, C)``; attribution: ``(H, W)``; neither is modified.
        mode, order, steps: see the module docstring.
        fill: ``"blur"``, ``"mean"`` or an explicit ``(H, W, C)`` fill image (recorded as ``"custom"``).
    """
    base = fill_image(image, fill) if isinstance(fill, str) else np.asarray(fill)
    imgs = perturbed_images(image, attribution, base, mode=mode, order=order, steps=steps)
    scores = np.asarray(evaluate(imgs), np.float64).reshape(-1)
    if scores.shape != (steps + 1,):
        raise ValueError(f"evaluate returned {scores.shape} scores for {steps + 1} images")
    fractions = np.arange(steps + 1, dtype=np.float64) / steps
    return PerturbationCurve(
        mode, order, fill if isinstance(fill, str) else "custom", _ro(fractions), _ro(scores)
    )


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class _Job:
    face: int
    method: str
    mode: Mode
    order: Order
    fill: Fill


class BatchScorer:
    """Scores batches of faces: one forward pass per variant, each row by its own face's target."""

    def __init__(
        self,
        models: Any,
        variants: Sequence[Variant] | None,
        classifiers: Sequence[nn.Module | None] | None,
        targets: Sequence[Target],
        gallery: Gallery | None,
        syndromes: Sequence[str] | None,
    ) -> None:
        self.pairs, self.variants = setup_models(models, variants, classifiers)
        for pair in self.pairs:
            if pair.backbone.training:
                # Training-mode BatchNorm would mix the rows of a batch and update its statistics.
                raise ValueError("the models must be in eval mode (call .eval() first)")
        self.classifiers = [self.pairs[v.model].classifier for v in self.variants]
        self.targets = targets
        self.gallery = gallery
        self.syndromes = syndromes
        if gallery is not None and len(self.variants) != gallery.n_variants:
            raise ValueError(
                f"re-ranking needs every gallery variant: {len(self.variants)} variants given, "
                f"the gallery has {gallery.n_variants} (pass gallery.variants)"
            )

    def __call__(self, faces: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(n,)`` and ranks ``(n,)`` (NaN without a gallery) of ``faces`` of ``owners``."""
        embs = []
        with torch.inference_mode():
            for v in self.variants:
                pair = self.pairs[v.model]
                x = variant_rows(faces, v, pair.card).to(device_of(pair.backbone))
                embs.append(pair.backbone(x).float())
            scores = np.empty(len(faces), np.float64)
            for owner in np.unique(owners):
                rows = np.flatnonzero(owners == owner)
                sel = torch.from_numpy(rows).to(embs[0].device)
                part = [e.index_select(0, sel) for e in embs]
                s = self.targets[int(owner)].ranking_score(part, self.classifiers)
                scores[rows] = s.double().cpu().numpy()
        ranks = np.full(len(faces), np.nan)
        if self.gallery is not None and self.syndromes is not None:
            stacked = torch.stack(embs, dim=1).cpu().numpy()  # (n, V, D)
            wanted = [self.syndromes[int(o)] for o in owners]
            ranks = syndrome_ranks(stacked, self.gallery, wanted)
        return scores, ranks


def faithfulness_curves(
    models: Any,
    faces: np.ndarray,
    maps: Mapping[str, np.ndarray],
    targets: Sequence[Target],
    variants: Sequence[Variant] | None = None,
    *,
    modes: Sequence[Mode] = MODES,
    orders: Sequence[Order] = ORDERS,
    fills: Sequence[Fill] = FILLS,
    steps: int = DEFAULT_STEPS,
    gallery: Gallery | None = None,
    syndromes: Sequence[str] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> tuple[PerturbationCurve, ...]:
    """Deletion/insertion curves of many faces and maps, perturbed faces batched across all of them.

    Args:
        models: as :func:`gmx.explain.explain` (a backbone, ``LoadedModel``s, ...); never modified.
        faces: ``(n, 112, 112, 3)`` uint8 aligned faces; not modified.
        maps: method -> ``(n, 112, 112)`` maps on the face (e.g. ``explain_batch`` output).
        targets: ``n`` targets, face ``i`` scored by ``targets[i].ranking_score`` over the variants.
        variants: as the engine (default model 0, no flip, colour); for re-ranking, the gallery's.
        modes, orders, fills, steps: the curves to draw (every combination, per face and method).
        gallery, syndromes: with both, each perturbed face is re-ranked and the rank of
            ``syndromes[i]`` recorded (``PerturbationCurve.ranks``).
        classifiers: per-model classifiers (for logit targets).
        batch_size: perturbed faces per forward pass.

    Returns:
        One curve per face, method, mode, order and fill, in that nesting order.
    """
    arr = check_faces(faces)
    n = len(arr)
    if len(targets) != n:
        raise ValueError(f"{len(targets)} targets for {n} faces")
    if (gallery is None) != (syndromes is None):
        raise ValueError("pass both gallery and syndromes to re-rank, or neither")
    if syndromes is not None and len(syndromes) != n:
        raise ValueError(f"{len(syndromes)} syndromes for {n} faces")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    checked = {}
    for m, a in maps.items():
        a = np.asarray(a)
        if a.shape != (n, *arr.shape[1:3]):
            raise ValueError(f"maps[{m!r}] has shape {a.shape}, expected ({n}, 112, 112)")
        checked[m] = a
    scorer = BatchScorer(models, variants, classifiers, targets, gallery, syndromes)
    jobs = [
        _Job(i, m, mode, order, fill)
        for i in range(n)
        for m in checked
        for mode in modes
        for order in orders
        for fill in fills
    ]
    per = steps + 1
    scores = np.empty((len(jobs), per))
    ranks = np.empty((len(jobs), per))
    fill_cache: dict[tuple[int, str], np.ndarray] = {}

    def rows() -> Iterator[tuple[int, np.ndarray]]:
        for j, job in enumerate(jobs):
            key = (job.face, job.fill)
            if key not in fill_cache:
                if any(f != job.face for f, _ in fill_cache):  # jobs are face-major
                    fill_cache.clear()
                fill_cache[key] = fill_image(arr[job.face], job.fill)
            yield j, perturbed_images(
                arr[job.face], checked[job.method][job.face], fill_cache[key],
                mode=job.mode, order=job.order, steps=steps,
            )  # fmt: skip

    # The first and last point of every curve is the clean face or the fill image (deletion and
    # insertion alike): each is scored once per face (and fill) and shared by every curve.
    buf: list[np.ndarray] = []
    dests: list[list[tuple[int, int]]] = []  # (job, step) of each buffered row
    keys: list[tuple[Any, ...] | None] = []
    queued: dict[tuple[Any, ...], int] = {}
    done: dict[tuple[Any, ...], tuple[float, float]] = {}

    def flush() -> None:
        if not buf:
            return
        owners = np.array([jobs[d[0][0]].face for d in dests])
        s, r = scorer(np.stack(buf), owners)
        for d, key, sv, rv in zip(dests, keys, s, r, strict=True):
            for j, k in d:
                scores[j, k], ranks[j, k] = sv, rv
            if key is not None:
                done[key] = (sv, rv)
        buf.clear()
        dests.clear()
        keys.clear()
        queued.clear()

    for j, imgs in rows():
        job = jobs[j]
        for k in range(per):
            key: tuple[Any, ...] | None = None
            if k in (0, steps):
                clean = (k == 0) == (job.mode == "deletion")
                key = ("clean", job.face) if clean else ("fill", job.face, job.fill)
                if key in done:
                    scores[j, k], ranks[j, k] = done[key]
                    continue
                if key in queued:
                    dests[queued[key]].append((j, k))
                    continue
                queued[key] = len(buf)
            buf.append(imgs[k])
            dests.append([(j, k)])
            keys.append(key)
            if len(buf) >= batch_size:
                flush()
    flush()
    fractions = _ro(np.arange(per, dtype=np.float64) / steps)
    return tuple(
        PerturbationCurve(
            job.mode,
            job.order,
            job.fill,
            fractions,
            _ro(scores[j]),
            _ro(ranks[j]) if gallery is not None else None,
            job.face,
            job.method,
        )
        for j, job in enumerate(jobs)
    )


__all__ = [
    "BLUR_SIGMA",
    "DEFAULT_BATCH",
    "DEFAULT_STEPS",
    "FILLS",
    "MODES",
    "ORDERS",
    "BatchScorer",
    "PerturbationCurve",
    "curve_auc",
    "faithfulness_curves",
    "fill_image",
    "perturbation_curve",
    "perturbed_images",
    "pixel_order",
    "step_counts",
]
