"""How well syndrome maps find the known causal region, against nulls, on held-out images.

A raw "map vs region" score says little on its own: a generic face prior (every syndrome's map
emphasises the eyes and mouth) can score as well as a syndrome-specific map. So every score here is
reported beside the same score of maps and masks that carry no information about the syndrome, and
as the difference ``own - null`` with a bootstrap confidence interval:

* ``other_maps``: the mean maps of the *other* syndromes scored against this syndrome's region
  (median over them): does this syndrome's map find its region better than other syndromes' maps?
* ``unaffected``: the unaffected cohort explained against this syndrome's target, scored against
  this syndrome's region: is the map about the syndrome, or about the target image's face?
* ``grand_mean``: the mean of the other syndromes' mean maps (leave-one-out): the generic prior.
* ``other_masks``: this syndrome's map scored against the *other* syndromes' regions (median):
  does the map prefer its own region to any region of similar kind?

Scores (``METRICS``): ``auroc`` (map value as a score for "pixel in region", Mann-Whitney, ties
averaged; 0.5 = chance) and ``mass_inside`` (share of the positive attribution mass inside the
region; chance = the region's area fraction).

Maps must come from faces the model was not trained on (the demo's frequent ``test`` split and the
rare test images); the caller chooses them (:func:`explain_held_out`). Bootstrap: patients are
resampled with replacement within each syndrome and within the reference cohort (all images of a
patient together), the mean maps recomputed, and every score and difference recomputed; the
interval is the percentile interval of the differences. A syndrome "localises" only where the
interval of ``own - null`` lies above 0.

Conventions: maps and masks are ``(112, 112)`` template pixels; inputs are never modified.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gmx.aggregate.batch import batch_maps
from gmx.aggregate.stats import auroc_matrix, to_template
from gmx.aggregate.targets import TargetMode, syndrome_targets
from gmx.gallery import Gallery

Metric = Literal["auroc", "mass_inside"]
METRICS: tuple[Metric, ...] = ("auroc", "mass_inside")
NullName = Literal["other_maps", "unaffected", "grand_mean", "other_masks"]
NULLS: tuple[NullName, ...] = ("other_maps", "unaffected", "grand_mean", "other_masks")

NULL_LABELS: Mapping[str, str] = {
    "other_maps": "other syndromes' maps",
    "unaffected": "unaffected cohort's map",
    "grand_mean": "mean of other syndromes' maps",
    "other_masks": "other syndromes' regions",
}


@dataclass(frozen=True)
class NullComparison:
    """One null for one syndrome, method and metric.

    Attributes:
        null: the null's name (one of :data:`NULLS`).
        value: the null's score (NaN if it cannot be formed, e.g. no reference cohort).
        difference: ``own - value``.
        ci_low, ci_high: bootstrap percentile interval of the difference.
    """

    null: str
    value: float
    difference: float
    ci_low: float
    ci_high: float

    @property
    def above(self) -> bool:
        """True when the whole interval of ``own - null`` is above 0."""
        return bool(np.isfinite(self.ci_low) and self.ci_low > 0)


@dataclass(frozen=True)
class LocalisationScore:
    """A syndrome's held-out mean map against its region, beside every null.

    Attributes:
        syndrome, method, metric: what was scored.
        n_images, n_patients: held-out images and patients behind the mean map.
        region_area: fraction of the template inside the region (chance level of ``mass_inside``).
        own: the score of the syndrome's own mean map.
        nulls: one :class:`NullComparison` per null, in :data:`NULLS` order.
    """

    syndrome: str
    method: str
    metric: str
    n_images: int
    n_patients: int
    region_area: float
    own: float
    nulls: tuple[NullComparison, ...]

    def null(self, name: str) -> NullComparison:
        """The comparison with null ``name``."""
        for c in self.nulls:
            if c.null == name:
                return c
        raise KeyError(f"no null {name!r}; have {[c.null for c in self.nulls]}")


@dataclass(frozen=True)
class LocalisationSummary:
    """Over syndromes, for one method, metric and null: the mean of ``own - null``.

    Attributes:
        method, metric, null: what is summarised.
        mean_own, mean_null: means over the syndromes of the two scores.
        mean_difference: mean over syndromes of ``own - null``.
        ci_low, ci_high: bootstrap percentile interval of ``mean_difference``.
        n_syndromes: syndromes with a finite difference.
        n_above: syndromes whose own interval lies above 0.
    """

    method: str
    metric: str
    null: str
    mean_own: float
    mean_null: float
    mean_difference: float
    ci_low: float
    ci_high: float
    n_syndromes: int
    n_above: int


@dataclass(frozen=True)
class Localisation:
    """Per-syndrome scores and per-method summaries (see the module docstring)."""

    scores: tuple[LocalisationScore, ...]
    summaries: tuple[LocalisationSummary, ...]
    n_boot: int
    level: float

    def summary(self, method: str, metric: str, null: str) -> LocalisationSummary:
        """The summary of one method, metric and null."""
        for s in self.summaries:
            if (s.method, s.metric, s.null) == (method, metric, null):
                return s
        raise KeyError(f"no summary for {(method, metric, null)}")

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per syndrome, method and metric (for tables, CSV and JSON)."""
        out = []
        for sc in self.scores:
            row: dict[str, Any] = {
                "syndrome": sc.syndrome,
                "method": sc.method,
                "metric": sc.metric,
                "images": sc.n_images,
                "patients": sc.n_patients,
                "region_area": sc.region_area,
                "own": sc.own,
            }
            for c in sc.nulls:
                row[f"{c.null}"] = c.value
                row[f"{c.null}_diff"] = c.difference
                row[f"{c.null}_ci"] = [c.ci_low, c.ci_high]
            out.append(row)
        return out


def syndrome_masks(labels: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per syndrome, the pixels inside the masks of at least half of its images (empty: dropped)."""
    out = {}
    for s in np.unique(labels):
        m = np.asarray(masks[labels == s], np.float32).mean(0) >= 0.5
        if m.any():
            out[str(s)] = m
    return out


def score_matrix(maps: np.ndarray, masks: np.ndarray, metric: Metric) -> np.ndarray:
    """``scores[i, j]`` = score of ``maps[i]`` against ``masks[j]``.

    Args:
        maps: ``(k, H, W)`` float maps (or ``(k, P)``); NaN maps give NaN rows.
        masks: ``(S, H, W)`` bool regions (or ``(S, P)``).
        metric: ``"auroc"`` (ties averaged; NaN for an empty or full mask) or ``"mass_inside"``
            (NaN for a map without positive mass).

    Returns:
        ``(k, S)`` float64.
    """
    m = np.asarray(maps, np.float64).reshape(len(maps), -1)
    k = np.asarray(masks, bool).reshape(len(masks), -1)
    if m.shape[1] != k.shape[1]:
        raise ValueError(f"maps have {m.shape[1]} pixels, masks {k.shape[1]}")
    if metric == "auroc":
        return auroc_matrix(m, k)
    if metric != "mass_inside":
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    bad = ~np.isfinite(m).all(axis=1)
    pos = np.maximum(np.where(bad[:, None], 0.0, m), 0.0)
    total = pos.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (pos @ k.T.astype(np.float64)) / total
    out[total[:, 0] <= 0] = np.nan
    out[bad] = np.nan
    return out


def _offdiag_median(a: np.ndarray, axis: int) -> np.ndarray:
    """Median over the other rows (axis 0) or columns (axis 1) of a square matrix, per diagonal."""
    b = a.astype(np.float64).copy()
    np.fill_diagonal(b, np.nan)
    if b.shape[0] < 2:
        return np.full(b.shape[0], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(b, axis=axis)


def _null_scores(
    means: np.ndarray, ref_means: np.ndarray | None, masks: np.ndarray, metric: Metric
) -> tuple[np.ndarray, np.ndarray]:
    """Own scores ``(S,)`` and null scores ``(len(NULLS), S)`` for one set of mean maps."""
    s = len(means)
    loo = (means.sum(axis=0)[None] - means) / (s - 1) if s >= 2 else None
    stack = [means] + [x for x in (ref_means, loo) if x is not None]
    allscores = score_matrix(np.concatenate(stack), masks, metric)  # one ranking pass
    cross = allscores[:s]  # [map i, mask j]
    own = np.diag(cross).copy()
    nulls = np.full((len(NULLS), s), np.nan)
    nulls[0] = _offdiag_median(cross, axis=0)  # other syndromes' maps on mask j
    k = s
    if ref_means is not None:
        nulls[1] = np.diag(allscores[k : k + s])
        k += s
    if loo is not None:
        nulls[2] = np.diag(allscores[k : k + s])
    nulls[3] = _offdiag_median(cross, axis=1)  # own map on the other masks
    return own, nulls


class _PatientSums:
    """Per-patient sums of one group's maps: a bootstrap mean is one weighted sum (a matmul).

    NaN maps (rows without a target) are left out, as ``nanmean`` over rows would.
    """

    def __init__(self, maps: np.ndarray, patients: np.ndarray) -> None:
        flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
        ok = np.isfinite(flat).all(axis=1)
        uniq, inverse = np.unique(np.asarray(patients), return_inverse=True)
        self.n = len(uniq)
        self.sums = np.zeros((self.n, flat.shape[1]))
        np.add.at(self.sums, inverse[ok], flat[ok])
        self.counts = np.bincount(inverse[ok], minlength=self.n).astype(np.float64)

    def mean(self, weights: np.ndarray | None = None) -> np.ndarray:
        w = np.ones(self.n) if weights is None else weights
        total = w @ self.counts
        if total <= 0:
            return np.full(self.sums.shape[1], np.nan)
        return (w @ self.sums) / total

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Weights of a patient-level bootstrap sample (how often each patient was drawn)."""
        return np.bincount(rng.integers(0, self.n, self.n), minlength=self.n).astype(np.float64)


def localisation(
    maps: Mapping[str, np.ndarray],
    patients: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    *,
    method: str,
    reference: Mapping[str, np.ndarray] | None = None,
    reference_patients: np.ndarray | None = None,
    metrics: Sequence[Metric] = METRICS,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Localisation:
    """Score every syndrome's held-out mean map against its region, beside the nulls.

    Args:
        maps: syndrome -> ``(n_s, H, W)`` maps of that syndrome's held-out images, each explained
            against its own syndrome's target.
        patients: syndrome -> ``(n_s,)`` patient ids of those images (the bootstrap unit).
        masks: syndrome -> ``(H, W)`` bool region; syndromes without a region (or without maps)
            are left out.
        method: the method name recorded in the results.
        reference: syndrome -> ``(m, H, W)`` maps of one reference cohort (the unaffected) explained
            against that syndrome's target; the same ``m`` faces for every syndrome. ``None``: the
            ``unaffected`` null is NaN.
        reference_patients: ``(m,)`` patient ids of the reference cohort.
        metrics: which scores.
        n_boot: bootstrap replicates (``0``: no intervals).
        level: confidence level of the intervals.
        seed: of the bootstrap.

    Raises:
        ValueError: for mismatched shapes, fewer than two syndromes, or a bad level.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot must be an int >= 0, got {n_boot!r}")
    syn = [s for s in maps if s in masks and len(maps[s]) and np.asarray(masks[s]).any()]
    if len(syn) < 2:
        raise ValueError(f"need at least two syndromes with maps and regions, got {syn}")
    arrs = [np.asarray(maps[s], np.float32) for s in syn]
    pats = [np.asarray(patients[s]) for s in syn]
    for s, a, p in zip(syn, arrs, pats, strict=True):
        if a.ndim != 3 or len(p) != len(a):
            raise ValueError(f"{s}: maps {a.shape} and {len(p)} patient ids do not fit")
    kmask = np.stack([np.asarray(masks[s], bool) for s in syn])
    if kmask.shape[1:] != arrs[0].shape[1:]:
        raise ValueError(f"masks {kmask.shape[1:]} do not fit maps {arrs[0].shape[1:]}")
    refs = None
    if reference is not None:
        if reference_patients is None:
            raise ValueError("reference_patients is required with reference")
        missing = [s for s in syn if s not in reference]
        if missing:
            raise ValueError(f"reference maps missing for {missing}")
        refs = [np.asarray(reference[s], np.float32) for s in syn]
        rp = np.asarray(reference_patients)
        if any(r.shape[0] != len(rp) for r in refs):
            raise ValueError("every syndrome's reference maps must hold the same cohort")

    groups = [_PatientSums(a, p) for a, p in zip(arrs, pats, strict=True)]
    ref_groups = (
        None if refs is None else [_PatientSums(a, np.asarray(reference_patients)) for a in refs]
    )
    flat_masks = kmask.reshape(len(syn), -1)

    def means(rng: np.random.Generator | None):
        m = np.stack([g.mean(None if rng is None else g.draw(rng)) for g in groups])
        r = None
        if ref_groups is not None:
            # One draw of the cohort, shared by every syndrome (they are the same faces).
            w = None if rng is None else ref_groups[0].draw(rng)
            r = np.stack([g.mean(w) for g in ref_groups])
        return m, r

    point_m, point_r = means(None)
    point = {mt: _null_scores(point_m, point_r, flat_masks, mt) for mt in metrics}
    boots: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {mt: [] for mt in metrics}
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        bm, br = means(rng)
        for mt in metrics:
            boots[mt].append(_null_scores(bm, br, flat_masks, mt))

    alpha = (1 - level) / 2
    scores: list[LocalisationScore] = []
    summaries: list[LocalisationSummary] = []
    area = kmask.reshape(len(syn), -1).mean(axis=1)
    for mt in metrics:
        own, nulls = point[mt]
        diff = own[None] - nulls  # (nulls, S)
        if boots[mt]:
            b_own = np.stack([o for o, _ in boots[mt]])  # (B, S)
            b_null = np.stack([n for _, n in boots[mt]])  # (B, nulls, S)
            b_diff = b_own[:, None] - b_null
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                lo = np.nanquantile(b_diff, alpha, axis=0)
                hi = np.nanquantile(b_diff, 1 - alpha, axis=0)
                b_mean = np.nanmean(b_diff, axis=2)  # (B, nulls)
                m_lo = np.nanquantile(b_mean, alpha, axis=0)
                m_hi = np.nanquantile(b_mean, 1 - alpha, axis=0)
        else:
            lo = hi = np.full_like(diff, np.nan)
            m_lo = m_hi = np.full(len(NULLS), np.nan)
        for j, s in enumerate(syn):
            comps = tuple(
                NullComparison(name, float(nulls[i, j]), float(diff[i, j]), float(lo[i, j]),
                               float(hi[i, j]))
                for i, name in enumerate(NULLS)
            )  # fmt: skip
            scores.append(
                LocalisationScore(
                    syndrome=s,
                    method=method,
                    metric=mt,
                    n_images=len(arrs[j]),
                    n_patients=len(np.unique(pats[j])),
                    region_area=float(area[j]),
                    own=float(own[j]),
                    nulls=comps,
                )
            )
        for i, name in enumerate(NULLS):
            finite = np.isfinite(diff[i])
            if not finite.any():
                summaries.append(
                    LocalisationSummary(method, mt, name, float(np.nanmean(own)), float("nan"),
                                        float("nan"), float("nan"), float("nan"), 0, 0)
                )  # fmt: skip
                continue
            summaries.append(
                LocalisationSummary(
                    method=method,
                    metric=mt,
                    null=name,
                    mean_own=float(own[finite].mean()),
                    mean_null=float(nulls[i][finite].mean()),
                    mean_difference=float(diff[i][finite].mean()),
                    ci_low=float(m_lo[i]),
                    ci_high=float(m_hi[i]),
                    n_syndromes=int(finite.sum()),
                    n_above=int((np.isfinite(lo[i]) & (lo[i] > 0)).sum()),
                )
            )
    return Localisation(tuple(scores), tuple(summaries), n_boot, level)


def merge(parts: Sequence[Localisation]) -> Localisation:
    """One :class:`Localisation` from per-method parts (same bootstrap settings)."""
    if not parts:
        raise ValueError("nothing to merge")
    if len({(p.n_boot, p.level) for p in parts}) != 1:
        raise ValueError("parts were computed with different bootstrap settings")
    return Localisation(
        tuple(s for p in parts for s in p.scores),
        tuple(s for p in parts for s in p.summaries),
        parts[0].n_boot,
        parts[0].level,
    )


def to_json(loc: Localisation) -> dict[str, Any]:
    """A JSON-ready dict of ``loc`` (NaN stays NaN; write with ``allow_nan=True``)."""
    return {
        "n_boot": loc.n_boot,
        "level": loc.level,
        "scores": [
            {**{k: v for k, v in sc.__dict__.items() if k != "nulls"},
             "nulls": [c.__dict__ for c in sc.nulls]}
            for sc in loc.scores
        ],
        "summaries": [s.__dict__ for s in loc.summaries],
    }  # fmt: skip


def from_json(data: Mapping[str, Any]) -> Localisation:
    """Inverse of :func:`to_json`.

    Raises:
        ValueError: if ``data`` is not a localisation record.
    """
    try:
        scores = tuple(
            LocalisationScore(
                **{k: v for k, v in sc.items() if k != "nulls"},
                nulls=tuple(NullComparison(**c) for c in sc["nulls"]),
            )
            for sc in data["scores"]
        )
        summaries = tuple(LocalisationSummary(**s) for s in data["summaries"])
        return Localisation(scores, summaries, int(data["n_boot"]), float(data["level"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a localisation record: {exc}") from exc


def summary_markdown(loc: Localisation, metric: Metric = "auroc") -> str:
    """A markdown table: per method, the mean own score and ``own - null`` [interval] per null,
    and how many syndromes localise beyond that null (their own interval above 0)."""
    methods = list(dict.fromkeys(s.method for s in loc.summaries if s.metric == metric))
    head = ["method", f"mean {metric}"] + [f"minus {NULL_LABELS[n]}" for n in NULLS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells = [m]
        first = True
        for n in NULLS:
            s = loc.summary(m, metric, n)
            if first:
                cells.append(f"{s.mean_own:.3f}")
                first = False
            if not np.isfinite(s.mean_difference):
                cells.append("n/a")
                continue
            cells.append(
                f"{s.mean_difference:+.3f} [{s.ci_low:+.3f}, {s.ci_high:+.3f}] "
                f"({s.n_above}/{s.n_syndromes})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def explain_against(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    embeddings: np.ndarray,
    syndrome_id: str,
    *,
    methods: Sequence[str],
    target: TargetMode = "similarity",
    variants: Sequence[int] | None = None,
    batch_size: int = 0,
) -> dict[str, np.ndarray]:
    """Template maps of outside faces explained against one syndrome's target.

    Args:
        models: the gallery's model(s).
        gallery: the gallery (for the nearest-image target).
        faces: ``(n, 112, 112, 3)`` uint8 aligned faces (not in the gallery); not modified.
        embeddings: ``(n, V, D)`` their embeddings with the gallery's variants.
        syndrome_id: the syndrome to explain against.
        methods, target, variants, batch_size: as :func:`~gmx.aggregate.run.run_batch`.

    Returns:
        method -> ``(n, 112, 112)`` float32 maps placed on the template with the backbone's
        measured cell grid (:func:`gmx.aggregate.batch_maps`); rows without a target are NaN.
    """
    first = models[0] if isinstance(models, (list, tuple)) else models
    classes = tuple(getattr(getattr(first, "card", None), "classes", ()) or ())
    var = [0] if variants is None else list(variants)
    t = syndrome_targets(gallery, embeddings, syndrome_id, target, classes=classes, variants=var)
    return batch_maps(
        models,
        faces,
        t,
        methods=methods,
        variants=[gallery.variants[v] for v in var],
        batch_size=batch_size,
    )


def template_maps(raw: np.ndarray) -> np.ndarray:
    """``(n, h, w)`` maps -> ``(n, 112, 112)`` float32 template maps (placed maps are copied)."""
    return np.stack([to_template(r) for r in np.asarray(raw)])


def explain_held_out(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    *,
    methods: Sequence[str],
    target: TargetMode = "similarity",
    variants: Sequence[int] | None = None,
    batch_size: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Template maps of held-out faces, each explained against its own syndrome's target.

    Args:
        models, gallery, methods, target, variants, batch_size: as :func:`explain_against`.
        faces: ``(n, 112, 112, 3)`` uint8 held-out faces (not in the gallery).
        embeddings: ``(n, V, D)`` their embeddings.
        labels: ``(n,)`` their syndrome ids; syndromes absent from the gallery are skipped.
        progress: ``progress(done_syndromes, total)``.

    Returns:
        method -> syndrome -> ``(n_s, 112, 112)`` float32 maps, rows in ``labels`` order.
    """
    labels = np.asarray(labels)
    present = [s for s in dict.fromkeys(labels.tolist()) if s in gallery.syndromes]
    out: dict[str, dict[str, np.ndarray]] = {m: {} for m in methods}
    for i, s in enumerate(present):
        rows = np.flatnonzero(labels == s)
        got = explain_against(
            models,
            gallery,
            faces[rows],
            embeddings[rows],
            s,
            methods=methods,
            target=target,
            variants=variants,
            batch_size=batch_size,
        )
        for m, arr in got.items():
            out[m][s] = template_maps(arr)
        if progress is not None:
            progress(i + 1, len(present))
    return out


@dataclass(frozen=True, eq=False)
class HeldOutStudy:
    """What :func:`held_out_study` computed.

    Attributes:
        localisation: scores against nulls for every method.
        reference_maps: ``(syndrome, method)`` -> ``(112, 112)`` mean map of the reference cohort
            explained against that syndrome (as :func:`gmx.aggregate.cohort_maps`), for contrasts.
        regions: syndrome -> ``(112, 112)`` bool region scored (majority of its held-out masks).
    """

    localisation: Localisation
    reference_maps: Mapping[tuple[str, str], np.ndarray]
    regions: Mapping[str, np.ndarray]


def held_out_study(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    labels: np.ndarray,
    patients: np.ndarray,
    masks: np.ndarray,
    reference_faces: np.ndarray,
    reference_patients: np.ndarray,
    *,
    methods: Sequence[str],
    target: TargetMode = "similarity",
    variants: Sequence[int] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 0,
    progress: Callable[[str], None] | None = None,
) -> HeldOutStudy:
    """Explain held-out faces and a reference cohort, then score localisation against nulls.

    Args:
        models: the gallery's model(s).
        gallery: the gallery (none of ``faces`` may be in it).
        faces: ``(n, 112, 112, 3)`` uint8 held-out faces with known regions.
        labels, patients: ``(n,)`` their syndrome and patient ids.
        masks: ``(n, 112, 112)`` bool their per-image regions.
        reference_faces: ``(m, 112, 112, 3)`` uint8 unaffected faces (the ``unaffected`` null).
        reference_patients: ``(m,)`` their patient ids.
        methods, target, variants, batch_size: as :func:`explain_against`.
        n_boot, seed: of the bootstrap.
        progress: called with a short message before each step.
    """
    from gmx.aggregate.run import gallery_ensemble

    labels = np.asarray(labels)
    patients = np.asarray(patients)
    say = progress or (lambda _msg: None)
    ensemble = gallery_ensemble(models, gallery)
    say(f"embedding {len(faces)} held-out and {len(reference_faces)} reference faces")
    emb = ensemble.embed(faces)
    ref_emb = ensemble.embed(reference_faces)
    regions = syndrome_masks(labels, np.asarray(masks))
    syn = [s for s in dict.fromkeys(labels.tolist()) if s in regions and s in gallery.syndromes]
    keep = np.isin(labels, syn)
    say(f"explaining {int(keep.sum())} held-out faces of {len(syn)} syndromes")
    held = explain_held_out(
        models, gallery, faces[keep], emb[keep], labels[keep], methods=methods, target=target,
        variants=variants, batch_size=batch_size,
        progress=lambda done, total: say(f"held-out syndromes explained: {done}/{total}"),
    )  # fmt: skip
    ref_raw = {}
    for i, s in enumerate(syn):
        say(f"explaining the reference cohort against {s} ({i + 1}/{len(syn)})")
        ref_raw[s] = explain_against(
            models, gallery, reference_faces, ref_emb, s, methods=methods, target=target,
            variants=variants, batch_size=batch_size,
        )  # fmt: skip
    parts = []
    reference_maps = {}
    for m in methods:
        say(f"bootstrap of {m} ({n_boot} replicates)")
        for s in syn:
            arr = ref_raw[s][m]
            if np.isfinite(arr).reshape(len(arr), -1).all(axis=1).any():
                reference_maps[(s, m)] = np.nanmean(arr, axis=0).astype(np.float32)
        parts.append(
            localisation(
                held[m],
                {s: patients[labels == s] for s in syn},
                regions,
                method=m,
                reference={s: template_maps(ref_raw[s][m]) for s in syn},
                reference_patients=np.asarray(reference_patients),
                n_boot=n_boot,
                seed=seed,
            )
        )
    return HeldOutStudy(merge(parts), reference_maps, {s: regions[s] for s in syn})


__all__ = [
    "METRICS",
    "NULLS",
    "NULL_LABELS",
    "HeldOutStudy",
    "Localisation",
    "LocalisationScore",
    "LocalisationSummary",
    "NullComparison",
    "explain_against",
    "explain_held_out",
    "from_json",
    "held_out_study",
    "localisation",
    "merge",
    "score_matrix",
    "summary_markdown",
    "syndrome_masks",
    "template_maps",
    "to_json",
]
