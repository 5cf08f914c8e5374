"""The explanation engine: many methods, targets and TTA variants of one face, with shared work.

``explain(models, face, target, variants)`` returns one :class:`~gmx.explain.result.AttributionMap`
per method. For every variant (model x flip x grey, GestaltMatcher-Arc's TTA) the face is transformed
like the encoder transforms it and explained against that variant's row of the target; its map is
placed on the face with its backbone's cell grid (:func:`gmx.encode.geometry.cell_grid`) in the frame
it was computed in, mirrored back at pixel level if it was flipped, and the placed maps are averaged.
For methods positively homogeneous in the target (signed gradient rules, DeepLIFT, IG, occlusion,
signed CAMs) that is the explanation of the mean similarity over variants, GestaltMatcher-Arc's score;
for the others (Saliency, FullGrad, ReLU'd CAMs) it is the mean of per-variant maps (docs/explain.md,
"Model/TTA variants"). Re-ranked occlusion sees all variants at once (``MethodSpec.joint``).

Methods that read the shared pass (Saliency, Deconvolution, Guided Backprop, DeepLIFT and the CAM
family) run first, variant by variant, from one forward pass; batched methods (Integrated Gradients,
Occlusion) follow. ``iter_explain`` yields maps as they finish so a UI can render fast results first;
``progress(done, total)`` and ``should_stop()`` are called between batches.

:func:`explain_batch` runs the same per-variant loop (:func:`_variant_maps`) on ``n`` different faces
at once, for the methods registered ``batchable=True``, and keeps one map per face. Both paths put a
variant's maps back into the face's frame in one place, :func:`variant_to_face`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from gmx._typing import ImageU8
from gmx.constants import TEMPLATE_SIZE
from gmx.encode.geometry import CellGrid, cell_grid, place_map
from gmx.encode.model import input_norm, preprocess
from gmx.errors import GmxError
from gmx.explain.prepared import (
    EngineModel,
    check_backbone,
    device_of,
    engine_model,
    reference_model,
)
from gmx.explain.reference import ReferenceContext
from gmx.explain.registry import MethodSpec, get_method, list_methods
from gmx.explain.result import AttributionMap
from gmx.explain.targets import RowTarget, Target, stacked
from gmx.explain.workspace import Progress, ReferencePass, Workspace
from gmx.variants import Variant

#: The thesis panel (3.2 and 3.3): the nine methods of the benchmark, in display order. The thesis
#: uses *unfiltered* layer maps (3.3.1: "this work uses unfiltered heat maps, which consists of
#: negatively correlated regions as well"), so the panel shows signed Grad-CAM and HiResCAM; the
#: ReLU'd ``gradcam`` / ``hirescam`` stay available by name.
THESIS_PANEL: tuple[str, ...] = (
    "occlusion",
    "saliency",
    "deconvolution",
    "guided_backprop",
    "deeplift",
    "integrated_gradients",
    "gradcam_signed",
    "hirescam_signed",
    "fullgrad",
)

Backend = Literal["engine", "reference"]


class ExplanationCancelled(GmxError):
    """The caller's ``should_stop`` asked to stop; :attr:`completed` holds the maps already made.

    Attributes:
        completed: one dict per target (as ``explain_targets`` returns) of the finished methods.
    """

    def __init__(self, completed: Sequence[Mapping[str, AttributionMap]] = ()) -> None:
        super().__init__("explanation cancelled by the caller")
        self.completed = tuple(dict(c) for c in completed)


@dataclass(frozen=True)
class ExplainModel:
    """A backbone plus its optional classifier (for ``LogitTarget``) and input card.

    Attributes:
        backbone: ``nn.Module`` with ``forward_maps(x) -> (N, C, h, w)`` and ``head(maps) -> (N, D)``.
        classifier: ``nn.Module`` mapping ``(N, D)`` embeddings to logits, or ``None``.
        card: the model's :class:`gmx.encode.ModelCard` (channel order, normalisation); ``None``
            means the iResNet default (RGB, ``(x / 255 - 0.5) / 0.5``).
    """

    backbone: nn.Module
    classifier: nn.Module | None = None
    card: Any = None


def as_explain_model(model: Any, classifier: nn.Module | None = None) -> ExplainModel:
    """Accept a backbone, an :class:`ExplainModel`, a ``GestaltModel`` or a ``LoadedModel``.

    Raises:
        ValueError: if no usable backbone is found.
    """
    if isinstance(model, ExplainModel):
        if classifier is None:
            return model
        return ExplainModel(model.backbone, classifier, model.card)
    card = getattr(model, "card", None)
    if card is not None and getattr(model, "model", None) is not None:  # LoadedModel
        inner = as_explain_model(model.model, classifier)
        return ExplainModel(inner.backbone, inner.classifier, card)
    if isinstance(model, nn.Module) and callable(getattr(model, "forward_maps", None)):
        return ExplainModel(check_backbone(model), classifier)
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        own = getattr(model, "classifier", None)
        return ExplainModel(check_backbone(backbone), classifier if classifier is not None else own)
    raise ValueError(
        f"cannot explain {type(model).__name__}: pass a backbone with forward_maps/head, an "
        "ExplainModel, a GestaltModel or a LoadedModel"
    )


def check_faces(faces: np.ndarray) -> np.ndarray:
    """``faces`` as an array, checked: ``(n, 112, 112, 3)`` uint8 RGB aligned faces (else ValueError)."""
    arr = np.asarray(faces)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (TEMPLATE_SIZE, TEMPLATE_SIZE, 3):
        raise ValueError(
            f"faces must be (n, 112, 112, 3) uint8 RGB aligned faces, got {arr.shape} {arr.dtype}"
        )
    return arr


def _check_face(face: ImageU8) -> np.ndarray:
    arr = np.asarray(face)
    if arr.dtype != np.uint8 or arr.shape != (TEMPLATE_SIZE, TEMPLATE_SIZE, 3):
        raise ValueError(
            f"face must be a (112, 112, 3) uint8 RGB aligned face, got {arr.shape} {arr.dtype}"
        )
    return arr


def variant_rows(faces: np.ndarray, variant: Variant, card: Any = None) -> torch.Tensor:
    """The encoder's input for one TTA variant of ``faces``: ``(n, 3, 112, 112)`` float32.

    Exactly what :mod:`gmx.encode` feeds the model, :func:`gmx.encode.preprocess` (grey, then the
    mirror, then the card's channel order and normalisation).

    Args:
        faces: ``(n, 112, 112, 3)`` uint8 RGB aligned faces; not modified.
        variant: which flip/grey (its ``model`` index is not used here).
        card: the model's ``ModelCard``; ``None`` for the iResNet default.

    Raises:
        ValueError: for bad faces, or a card the engine cannot explain (not 3x112x112).
    """
    arr = check_faces(faces)
    if card is not None and (card.channels != 3 or card.input_size != TEMPLATE_SIZE):
        raise ValueError(
            f"the engine explains 3x112x112 models; card {card.name!r} has "
            f"{card.channels} channel(s) at {card.input_size}px"
        )
    return preprocess(arr, card, flip=variant.flip, grey=variant.grey)


def variant_input(face: ImageU8, variant: Variant, card: Any = None) -> torch.Tensor:
    """:func:`variant_rows` of one ``(112, 112, 3)`` face: ``(1, 3, 112, 112)`` float32."""
    return variant_rows(_check_face(face)[None], variant, card)


def variant_to_face(raw: torch.Tensor, variant: Variant, grid: CellGrid) -> torch.Tensor:
    """Place maps ``(..., h, w)`` of one variant's input on the face: ``(..., 112, 112)``.

    The single place where the engine (one face) and :func:`explain_batch` (many faces) undo a
    variant's transform before averaging variants: the map is placed with its backbone's cell grid
    (:func:`gmx.encode.geometry.cell_grid`) in the frame it was computed in, then a flipped
    variant's pixels are mirrored back (docs/explain.md, "Map geometry").
    """
    return place_map(raw, grid, flip=variant.flip)


def _colour_order(pair: ExplainModel) -> str:
    return "RGB" if pair.card is None else str(pair.card.colour_order)


def _stop_checker(should_stop: Any) -> Callable[[], bool] | None:
    if should_stop is None:
        return None
    if callable(getattr(should_stop, "is_set", None)):
        return should_stop.is_set
    if callable(should_stop):
        return should_stop
    raise ValueError(f"should_stop must be a callable or a threading.Event, got {should_stop!r}")


def _smooth_key(spec: MethodSpec, params: Mapping[str, Any]) -> tuple[int, float, int] | None:
    if not spec.smoothable:
        return None
    n = params["smooth_samples"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"smooth_samples must be an int >= 0, got {n!r}")
    if n == 0:
        return None
    sigma = params["smooth_sigma"]
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"smooth_sigma must be > 0, got {sigma!r}")
    return n, float(sigma), int(params["seed"])


def smoothgrad_rows(x: torch.Tensor, samples: int, sigma: float, seed: int) -> torch.Tensor:
    """SmoothGrad inputs (Smilkov et al. 2017): ``samples`` noisy copies of ``x`` ``(1, 3, H, W)``.

    ``sigma`` is the noise standard deviation as a fraction of the input range (``[-1, 1]``, width 2).
    The noise comes from a CPU generator seeded with ``seed`` (same on every device).
    """
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((samples, *x.shape[1:]), generator=gen) * (2.0 * sigma)
    return x + noise.to(x.device)


@dataclass
class _Job:
    spec: MethodSpec
    params: Mapping[str, Any]
    acc: torch.Tensor | None = None
    placed: torch.Tensor | None = None
    frames: set[tuple[CellGrid, bool]] | None = None
    elapsed: float = 0.0
    averaged: bool = False  # acc is already the variant average on the face (a joint method)


def _resolve_jobs(
    methods: Sequence[str], params: Mapping[str, Mapping[str, Any]] | None
) -> list[_Job]:
    if isinstance(methods, str):
        methods = (methods,)
    if not methods:
        raise ValueError("no methods requested")
    params = params or {}
    for name in params:
        get_method(name)  # unknown names raise (typos); params of unrequested methods are ignored
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods listed twice: {list(methods)}")
    jobs = []
    for name in methods:
        spec = get_method(name)
        resolved = spec.resolve(params.get(name))
        _smooth_key(spec, resolved)  # validates
        jobs.append(_Job(spec, resolved))
    return jobs


def _units(job: _Job, hw: tuple[int, int], device: torch.device) -> int:
    return int(job.spec.units(job.params, hw, device)) if job.spec.units is not None else 1


def setup_models(
    models: Any, variants: Sequence[Variant] | None, classifiers: Sequence[nn.Module | None] | None
) -> tuple[list[ExplainModel], tuple[Variant, ...]]:
    """The models as :class:`ExplainModel` and the checked variants (default: model 0 as is)."""
    model_list = list(models) if isinstance(models, (list, tuple)) else [models]
    if not model_list:
        raise ValueError("need at least one model")
    if classifiers is not None and len(classifiers) != len(model_list):
        raise ValueError(f"{len(classifiers)} classifiers for {len(model_list)} models")
    pairs = [
        as_explain_model(m, None if classifiers is None else classifiers[i])
        for i, m in enumerate(model_list)
    ]
    variants = tuple(variants) if variants is not None else (Variant(0),)
    if not variants:
        raise ValueError("variants must not be empty")
    for v in variants:
        if not isinstance(v, Variant) or not 0 <= v.model < len(pairs):
            raise ValueError(f"variant {v!r} names no model (have {len(pairs)})")
    return pairs, variants


def _tracker(
    pairs: list[ExplainModel],
    jobs: list[_Job],
    variants: tuple[Variant, ...],
    progress: Callable[[int, int], None] | None,
    should_stop: Any,
    on_stop: Callable[[], BaseException],
) -> Progress:
    """The call's progress/cancellation counter (checked once before any work)."""
    hw = (TEMPLATE_SIZE, TEMPLATE_SIZE)
    devices = [device_of(p.backbone) for p in pairs]
    tracker = Progress(
        total=sum(_units(j, hw, devices[v.model]) for j in jobs for v in variants),
        callback=progress,
        should_stop=_stop_checker(should_stop),
        on_stop=on_stop,
    )
    tracker.check()
    return tracker


def _accumulate(
    job: _Job,
    raw: torch.Tensor,
    variant: Variant,
    backbone: nn.Module,
    elapsed: float,
    n_targets: int,
    mean_rows: bool,
) -> None:
    """Add one variant's ``(n, T, h, w)`` maps to ``job.acc`` (as computed, flips mirrored only for
    pixel maps) and, placed on the face (:func:`variant_to_face`), to ``job.placed``."""
    if raw.dim() != 4 or raw.shape[1] != n_targets:
        raise RuntimeError(
            f"method {job.spec.name!r} returned shape {tuple(raw.shape)}, expected (n, T, h, w)"
        )
    raw = raw.detach().float()
    if mean_rows:  # one face: average SmoothGrad's rows
        raw = raw.mean(dim=0, keepdim=True)
    raw = raw.cpu()
    grid = cell_grid(backbone, tuple(raw.shape[-2:]))
    placed = variant_to_face(raw, variant, grid)
    if tuple(raw.shape[-2:]) == (TEMPLATE_SIZE, TEMPLATE_SIZE) and variant.flip:
        raw = placed  # pixel maps: the mirror is exact
    job.acc = raw if job.acc is None else job.acc + raw
    job.placed = placed if job.placed is None else job.placed + placed
    job.frames = (job.frames or set()) | {(grid, variant.flip)}
    job.elapsed += elapsed


def _native(job: _Job, n_variants: int) -> torch.Tensor:
    """The variant average at native resolution where one cell grid holds every variant (all
    unflipped on one grid, or pixel maps whose mirror is exact); otherwise the placed average."""
    assert job.acc is not None and job.placed is not None and job.frames is not None
    (grid, flipped), *others = job.frames
    one_frame = not others and (not flipped or grid.shape == (TEMPLATE_SIZE, TEMPLATE_SIZE))
    return (job.acc if one_frame else job.placed) / n_variants


#: Input rows of one stacked pass of the shared methods: up to this many rows, the TTA variants of
#: one model run as one batch (:func:`stack_groups`); ``1`` runs every variant alone.
STACK_ROWS = 16


def stack_groups(
    variants: Sequence[Variant], rows: int, limit: int = STACK_ROWS
) -> list[tuple[int, ...]]:
    """Indices of ``variants`` in groups that run as one batch: variants of the same model, in
    order, at most ``max(1, limit // rows)`` per group (``rows``: input rows of one variant)."""
    per = max(1, limit // max(rows, 1))
    by_model: dict[int, list[int]] = {}
    for vi, variant in enumerate(variants):
        by_model.setdefault(variant.model, []).append(vi)
    return [
        tuple(indices[i : i + per])
        for indices in by_model.values()
        for i in range(0, len(indices), per)
    ]


def _variant_maps(
    pairs: list[ExplainModel],
    faces: np.ndarray,
    targets: tuple[Target, ...],
    variants: tuple[Variant, ...],
    jobs: list[_Job],
    tracker: Progress,
    *,
    mean_rows: bool,
) -> Iterator[_Job]:
    """Run every job on every variant (engine backend); yield each job once it has all variants.

    ``faces`` is ``(n, 112, 112, 3)``: one face (``mean_rows``: SmoothGrad's rows are averaged) or a
    batch (rows kept, one per face). A finished job's ``acc`` is the sum over variants of its
    ``(rows, T, h, w)`` maps in the face's frame. Methods that read the shared pass go first, all
    from one workspace per variant; the others follow, one workspace per variant each.
    """
    hw = (TEMPLATE_SIZE, TEMPLATE_SIZE)
    emodels: dict[int, EngineModel] = {}
    # DeepLIFT's reference pass depends on the model and baseline, not on the variant: one per model.
    reference_stores: dict[int, dict[tuple[str, tuple[int, ...]], ReferencePass]] = {}

    def workspace(group: tuple[int, ...], job: _Job) -> Workspace:
        """A fresh workspace for the variants ``group`` (all of one model), with the job's
        SmoothGrad rows if it has them: their inputs stacked as blocks of rows, each block scored
        against its own variant's target rows (one variant: its input and target as they are)."""
        model = variants[group[0]].model
        pair = pairs[model]
        if model not in emodels:
            emodels[model] = engine_model(pair.backbone, pair.classifier)
        emodel = emodels[model]
        blocks = [_rows(job, variant_rows(faces, variants[vi], pair.card)) for vi in group]
        return Workspace(
            emodel,
            blocks[0] if len(blocks) == 1 else torch.cat(blocks),
            tuple(
                stacked([t.bind(vi, emodel.classifier) for vi in group], blocks[0].shape[0])
                for t in targets
            ),
            tracker,
            _colour_order(pair),
            input_norm(pair.card),
            reference_store=reference_stores.setdefault(model, {}),
            groups=len(group),
        )

    def run(job: _Job, space: Workspace, variant: Variant) -> None:
        start = time.perf_counter()
        raw = job.spec.compute(space, job.params)
        backbone = pairs[variant.model].backbone
        _accumulate(
            job, raw, variant, backbone, time.perf_counter() - start, len(targets), mean_rows
        )

    shared = [j for j in jobs if j.spec.shared or j.spec.family == "baseline"]
    others = [j for j in jobs if not (j.spec.shared or j.spec.family == "baseline")]

    if shared:
        # The TTA variants of one model are independent inputs of an eval-mode network: they run
        # as one batch (one forward and one backward pass per target and rule serve them all).
        rows = len(faces) * max(
            (key[0] for key in (_smooth_key(j.spec, j.params) for j in shared) if key), default=1
        )
        maps: dict[tuple[int, int], tuple[torch.Tensor, float]] = {}  # (job, variant) -> map, s
        for group in stack_groups(variants, rows, STACK_ROWS):
            # One workspace (one shared forward pass) per group of variants and SmoothGrad setting.
            spaces: dict[tuple[int, float, int] | None, Workspace] = {}
            for job in shared:
                key = _smooth_key(job.spec, job.params)
                if key not in spaces:
                    spaces[key] = workspace(group, job)
                if job.spec.plan is not None:
                    job.spec.plan(spaces[key], job.params)
            try:
                for ji, job in enumerate(shared):
                    space = spaces[_smooth_key(job.spec, job.params)]
                    start = time.perf_counter()
                    raw = job.spec.compute(space, job.params)
                    elapsed = (time.perf_counter() - start) / len(group)
                    for vi, block in zip(group, raw.chunk(len(group)), strict=True):
                        maps[ji, vi] = block, elapsed
                    tracker.step(_units(job, hw, space.device) * len(group))
            finally:
                for space in spaces.values():
                    space.release()
        for ji, job in enumerate(shared):  # in variant order: the sums are the unstacked ones
            for vi, variant in enumerate(variants):
                raw, elapsed = maps.pop((ji, vi))
                backbone = pairs[variant.model].backbone
                _accumulate(job, raw, variant, backbone, elapsed, len(targets), mean_rows)
        yield from shared

    for job in others:
        joint = job.spec.joint_fn(job.params)
        if joint is not None:  # the score couples the variants: one call sees them all
            spaces = [workspace((vi,), job) for vi in range(len(variants))]
            start = time.perf_counter()
            try:
                raw = joint(spaces, targets, [v.flip for v in variants], job.params)
            finally:
                for space in spaces:
                    space.release()
            raw = raw.detach().float().cpu()
            if tuple(raw.shape[-2:]) != hw:
                raise RuntimeError(f"joint method {job.spec.name!r} must return {hw} pixel maps")
            job.acc = job.placed = raw[None] if raw.dim() == 3 else raw
            job.averaged = True
            job.elapsed += time.perf_counter() - start
            yield job
            continue
        for vi, variant in enumerate(variants):
            space = workspace((vi,), job)
            try:
                run(job, space, variant)
            finally:
                space.release()
            if job.spec.units is None:  # methods without batches count one unit per variant
                tracker.step()
        yield job


def iter_explain(
    models: Any,
    face: ImageU8,
    targets: Sequence[Target],
    variants: Sequence[Variant] | None = None,
    *,
    methods: Sequence[str] = THESIS_PANEL,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
    backend: Backend = "engine",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | Any | None = None,
) -> Iterator[tuple[int, AttributionMap]]:
    """Yield ``(target_index, map)`` pairs as methods finish (shared-pass methods first).

    Arguments as :func:`explain_targets`; they are validated before the first item is requested
    (``ValueError`` at call time). Raises :class:`ExplanationCancelled` when stopped.
    """
    pairs, variants = setup_models(models, variants, classifiers)
    targets = tuple(targets)
    if not targets or not all(isinstance(t, Target) for t in targets):
        raise ValueError(f"targets must be a non-empty sequence of Target, got {targets!r}")
    if backend not in ("engine", "reference"):
        raise ValueError(f"backend must be 'engine' or 'reference', got {backend!r}")
    jobs = _resolve_jobs(methods, params)
    for job in jobs:
        if backend == "reference" and job.spec.reference is None:
            raise ValueError(f"method {job.spec.name!r} has no reference implementation")
        if backend == "reference" and job.spec.joint_fn(job.params) is not None:
            raise ValueError(
                f"method {job.spec.name!r} with {dict(job.params)} couples the variants and has "
                "no reference implementation: use backend='engine'"
            )
    face = _check_face(face)
    return _run(pairs, face, targets, variants, jobs, backend, progress, should_stop)


def _run(
    pairs: list[ExplainModel],
    face: np.ndarray,
    targets: tuple[Target, ...],
    variants: tuple[Variant, ...],
    jobs: list[_Job],
    backend: Backend,
    progress: Callable[[int, int], None] | None,
    should_stop: Any,
) -> Iterator[tuple[int, AttributionMap]]:
    hw = (TEMPLATE_SIZE, TEMPLATE_SIZE)
    devices = [device_of(p.backbone) for p in pairs]
    completed: list[dict[str, AttributionMap]] = [{} for _ in targets]
    tracker = _tracker(
        pairs, jobs, variants, progress, should_stop, lambda: ExplanationCancelled(completed)
    )

    def finish(job: _Job) -> Iterator[tuple[int, AttributionMap]]:
        assert job.acc is not None and job.placed is not None
        if job.averaged:  # a joint method: already the variant average on the face's pixels
            raw = values = job.acc[0]
        else:
            values = job.placed[0] / len(variants)
            raw = _native(job, len(variants))[0]
        for ti, target in enumerate(targets):
            amap = AttributionMap(
                method=job.spec.name,
                display_name=job.spec.display_name,
                target_description=target.description,
                values=values[ti].detach().cpu().numpy(),
                raw=raw[ti].detach().cpu().numpy(),
                signed=job.spec.is_signed(job.params),
                params=job.params,
                elapsed_s=job.elapsed,
                variants=variants,
                backend=backend,
            )
            completed[ti][job.spec.name] = amap
            yield ti, amap

    if backend == "engine":
        for job in _variant_maps(
            pairs, face[None], targets, variants, jobs, tracker, mean_rows=True
        ):
            yield from finish(job)
        return

    for job in jobs:
        for vi, variant in enumerate(variants):
            pair = pairs[variant.model]
            rmodel = reference_model(pair.backbone, pair.classifier)
            start = time.perf_counter()
            with rmodel.lock:
                ctx = ReferenceContext(
                    model=rmodel,
                    x=_rows(job, variant_input(face, variant, pair.card)).to(rmodel.device),
                    targets=tuple(t.bind(vi, rmodel.classifier) for t in targets),
                    colour_order=_colour_order(pair),
                    norm=input_norm(pair.card),
                )
                raw = job.spec.reference(ctx, job.params)  # type: ignore[misc]
            # Reference adapters return the mean over their rows, (T, h, w).
            elapsed = time.perf_counter() - start
            _accumulate(
                job, raw[None], variant, pair.backbone, elapsed, len(targets), mean_rows=True
            )
            tracker.step(_units(job, hw, devices[variant.model]))
        yield from finish(job)


def _rows(job: _Job, x_v: torch.Tensor) -> torch.Tensor:
    key = _smooth_key(job.spec, job.params)
    return x_v if key is None else smoothgrad_rows(x_v, *key)


#: Faces per :func:`explain_batch` call on (CPU, CUDA) when the caller asks for automatic batches.
AUTO_BATCH_FACES: tuple[int, int] = (32, 256)


def batch_faces(models: Any, batch_size: int = 0) -> int:
    """Faces per :func:`explain_batch` call: ``batch_size``, or for ``0`` :data:`AUTO_BATCH_FACES`
    on the first model's device.

    Raises:
        ValueError: for a negative or non-int ``batch_size``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"batch_size must be an int >= 0, got {batch_size!r}")
    if batch_size:
        return batch_size
    pairs, _ = setup_models(models, None, None)
    cpu, cuda = AUTO_BATCH_FACES
    return cuda if device_of(pairs[0].backbone).type == "cuda" else cpu


def explain_batch(
    models: Any,
    faces: np.ndarray,
    target: Target,
    variants: Sequence[Variant] | None = None,
    *,
    methods: Sequence[str],
    params: Mapping[str, Mapping[str, Any]] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | Any | None = None,
    native: bool = False,
) -> dict[str, np.ndarray]:
    """Explain ``n`` faces at once: one forward and backward pass per variant serves every face.

    Row ``i`` of every map is what :func:`explain` gives face ``i`` (its ``values`` map, up to
    float rounding): the same registered methods on the same per-variant loop, with the rows kept apart
    instead of averaged. Only methods registered ``batchable=True`` qualify (their row ``i``
    depends only on face ``i``); SmoothGrad is not supported here.

    Args:
        models: as :func:`explain_targets`; never modified.
        faces: ``(n, 112, 112, 3)`` uint8 RGB aligned faces; not modified.
        target: a :class:`~gmx.explain.targets.RowTarget` (face ``i`` against its row ``i``) or any
            target that every face is explained against.
        variants: model/TTA variants to average (default: model 0, no flip, colour).
        methods: batchable registry names.
        params: per-method parameter overrides.
        classifiers: per-model classifiers, overriding those found on ``models``.
        progress: called as ``progress(done, total)`` after each method and variant.
        should_stop: callable or ``threading.Event``; checked between passes.
        native: return what :func:`explain`'s ``raw`` holds instead: the variant average at the
            method's native resolution (e.g. 7x7 cells) where one cell grid holds every variant,
            else the placed average.

    Returns:
        method -> ``(n, 112, 112)`` float32 maps in engine units, each variant placed on the face
        with its backbone's cell grid (mirrored back at pixel level if flipped), then averaged
        (``native``: ``(n, h, w)`` as described there).

    Raises:
        ExplanationCancelled: if ``should_stop`` fired.
        ValueError: for bad faces, a method that is unknown or not batchable, SmoothGrad, or a
            target that does not fit.
    """
    pairs, variants = setup_models(models, variants, classifiers)
    arr = check_faces(faces)
    if len(arr) == 0:
        raise ValueError("no faces given")
    if not isinstance(target, Target):
        raise ValueError(f"target must be a Target, got {target!r}")
    if isinstance(target, RowTarget) and len(target) not in (1, len(arr)):
        raise ValueError(f"RowTarget has {len(target)} rows for {len(arr)} faces")
    jobs = _resolve_jobs(methods, params)
    for job in jobs:
        if not job.spec.batchable:
            raise ValueError(
                f"method {job.spec.name!r} is not batchable (batchable: "
                f"{[m for m in list_methods() if get_method(m).batchable]}); use explain per face"
            )
        if _smooth_key(job.spec, job.params) is not None:
            raise ValueError(f"SmoothGrad is not supported in a batch ({job.spec.name})")
    tracker = _tracker(pairs, jobs, variants, progress, should_stop, ExplanationCancelled)
    out: dict[str, np.ndarray] = {}
    for job in _variant_maps(pairs, arr, (target,), variants, jobs, tracker, mean_rows=False):
        assert job.acc is not None
        assert job.placed is not None
        maps = _native(job, len(variants)) if native else job.placed / len(variants)
        out[job.spec.name] = maps[:, 0].numpy().astype(np.float32)
    return {job.spec.name: out[job.spec.name] for job in jobs}


def explain_targets(
    models: Any,
    face: ImageU8,
    targets: Sequence[Target],
    variants: Sequence[Variant] | None = None,
    *,
    methods: Sequence[str] = THESIS_PANEL,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
    backend: Backend = "engine",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | Any | None = None,
) -> tuple[dict[str, AttributionMap], ...]:
    """Explain several targets (e.g. the top-5 syndromes) of one face, sharing every forward pass.

    Args:
        models: one backbone / :class:`ExplainModel` / ``GestaltModel``, or a sequence (an
            ensemble); never modified (the engine works on private cached copies).
        face: ``(112, 112, 3)`` uint8 RGB aligned face.
        targets: what to explain; a ``SimilarityTarget`` holds one gallery row per variant.
        variants: model/TTA variants to average (default: model 0, no flip, colour).
        methods: registry names (see :func:`~gmx.explain.registry.list_methods`).
        params: per-method parameter overrides, e.g. ``{"occlusion": {"stride": 8}}``.
        classifiers: per-model classifiers, overriding those found on ``models``.
        backend: ``"engine"`` (batched, shared passes) or ``"reference"`` (captum/grad-cam).
        progress: called as ``progress(done, total)`` after each batch.
        should_stop: callable or ``threading.Event``; checked between batches.

    Returns:
        One dict per target, method name -> :class:`AttributionMap`, in the requested order.

    Raises:
        ExplanationCancelled: if ``should_stop`` fired (finished maps attached).
        ValueError: for an unknown method/parameter, a bad face, or a target that does not fit.
    """
    out: list[dict[str, AttributionMap]] = [{} for _ in targets]
    for ti, amap in iter_explain(
        models,
        face,
        targets,
        variants,
        methods=methods,
        params=params,
        classifiers=classifiers,
        backend=backend,
        progress=progress,
        should_stop=should_stop,
    ):
        out[ti][amap.method] = amap
    names = [methods] if isinstance(methods, str) else list(methods)
    return tuple({n: d[n] for n in names} for d in out)


def explain(
    models: Any,
    face: ImageU8,
    target: Target,
    variants: Sequence[Variant] | None = None,
    *,
    methods: Sequence[str] = THESIS_PANEL,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
    backend: Backend = "engine",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | Any | None = None,
) -> dict[str, AttributionMap]:
    """Explain one target of one face with several methods, averaged over ``variants``.

    See :func:`explain_targets` for the arguments. Returns method name -> :class:`AttributionMap`.
    """
    return explain_targets(
        models,
        face,
        (target,),
        variants,
        methods=methods,
        params=params,
        classifiers=classifiers,
        backend=backend,
        progress=progress,
        should_stop=should_stop,
    )[0]


__all__ = [
    "AUTO_BATCH_FACES",
    "THESIS_PANEL",
    "ExplainModel",
    "ExplanationCancelled",
    "as_explain_model",
    "batch_faces",
    "check_faces",
    "explain",
    "explain_batch",
    "explain_targets",
    "iter_explain",
    "setup_models",
    "smoothgrad_rows",
    "variant_input",
    "variant_rows",
    "variant_to_face",
]
