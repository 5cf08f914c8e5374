"""How closely attribution maps agree: one implementation for gmx.

* A map with a reference of the same thing (engine vs reference, fp32 vs bf16):
  :func:`agreement` -> :class:`ReferenceAgreement` (Pearson r, top-pixel IoU, largest difference).
* Attribution methods with each other on one face: :func:`map_agreement` (Spearman rank correlation
  of all pixels and the IoU of their top :data:`TOP_FRACTION` pixels), :func:`agreement_matrix`
  -> :class:`MethodAgreement` for every pair of a set of maps (symmetric, 1 on the diagonal), and
  over many faces :func:`split_agreement` / :func:`mean_agreement` -> :class:`SplitAgreement`.

Top pixels (:func:`top_mask`) break ties at the cut in raster order (a stable sort). Maps keep
their sign: a signed map's "top" pixels are its most positive ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

#: Top fraction of pixels compared by the top-k IoU.
TOP_FRACTION = 0.10

#: How :func:`top_mask` turns a fraction of the pixels into a count: ``"round"`` (to the nearest,
#: at least one: map agreement) or ``"ceil"`` (every started pixel counts: the study's top-k %).
TopRounding = Literal["round", "ceil"]

#: Decimals the ``"ceil"`` count is rounded to first, so that 7 % of 100 pixels is 7 and not 8
#: (``0.07 * 100`` is ``7.000000000000001`` in floating point).
_CEIL_DECIMALS = 9


@dataclass(frozen=True)
class ReferenceAgreement:
    """How closely a map agrees with a reference map of the same thing (:func:`agreement`).

    Attributes:
        pearson: Pearson correlation of the values (scale- and offset-free), NaN if either map
            is constant (see :func:`pearson`; ``max_abs_diff`` still says whether they agree).
        top_iou: intersection over union of the top ``top_fraction`` pixels of each map.
        max_abs_diff: maximum absolute difference relative to ``max |reference|``.
    """

    pearson: float
    top_iou: float
    max_abs_diff: float


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two maps of the same size (flattened, float64).

    The one implementation in gmx (method agreement here, split-half stability in
    :mod:`gmx.aggregate.stats`). A constant map has no correlation with anything: the result is NaN
    if either map is constant (zero variance), never a made-up 0 or 1, so averages must skip it
    (``np.nanmean``) and reports can show it as undefined.

    Raises:
        ValueError: if the maps differ in size.
    """
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"maps differ in size: {x.size} vs {y.size} values")
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def top_mask(values: np.ndarray, fraction: float, *, rounding: TopRounding = "round") -> np.ndarray:
    """Boolean mask of the ``fraction`` largest values (ties broken by a stable sort).

    Args:
        values: a map (any shape; the mask has its shape).
        fraction: the share of the values kept, in ``(0, 1]``.
        rounding: how ``fraction * values.size`` becomes a count (:data:`TopRounding`):
            ``"round"`` or ``"ceil"``; at least one value either way.

    Raises:
        ValueError: for a fraction outside ``(0, 1]`` or an unknown rounding.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if not 0 < fraction <= 1:
        raise ValueError(f"the top fraction must be in (0, 1], got {fraction}")
    if rounding == "round":
        k = max(1, round(fraction * flat.size))
    elif rounding == "ceil":
        k = max(1, math.ceil(round(fraction * flat.size, _CEIL_DECIMALS)))
    else:
        raise ValueError(f"unknown rounding {rounding!r}; use 'round' or 'ceil'")
    idx = np.argsort(-flat, kind="stable")[:k]
    mask = np.zeros(flat.size, dtype=bool)
    mask[idx] = True
    return mask.reshape(np.shape(values))


def agreement(
    candidate: np.ndarray, reference: np.ndarray, top_fraction: float = TOP_FRACTION
) -> ReferenceAgreement:
    """Compare ``candidate`` with ``reference`` (same shape); ``pearson`` is NaN for a constant map."""
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    r = pearson(a, b)
    ma, mb = top_mask(a, top_fraction), top_mask(b, top_fraction)
    iou = float((ma & mb).sum() / max(1, (ma | mb).sum()))
    scale = float(np.abs(b).max()) or 1.0
    return ReferenceAgreement(r, iou, float(np.abs(a - b).max()) / scale)


def map_agreement(a: np.ndarray, b: np.ndarray, top: float = TOP_FRACTION) -> tuple[float, float]:
    """Spearman rank correlation and IoU of the top ``top`` fraction of pixels of two maps.

    NaN Spearman when either map is constant.
    """
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {np.shape(a)} and {np.shape(b)}")
    from scipy.stats import spearmanr  # scipy.stats only where method agreement is computed

    rho = float("nan") if np.ptp(x) == 0 or np.ptp(y) == 0 else float(spearmanr(x, y).statistic)
    ta, tb = top_mask(x, top), top_mask(y, top)
    return rho, float((ta & tb).sum() / (ta | tb).sum())


@dataclass(frozen=True, eq=False)
class MethodAgreement:
    """Pairwise agreement of ``methods``: ``(k, k)`` Spearman and top-k IoU matrices."""

    methods: tuple[str, ...]
    spearman: np.ndarray
    iou: np.ndarray
    top: float = TOP_FRACTION


def agreement_matrix(maps: Mapping[str, np.ndarray], top: float = TOP_FRACTION) -> MethodAgreement:
    """Every pair of ``maps`` (method -> ``(H, W)`` map of the same face); inputs not modified."""
    names = tuple(maps)
    k = len(names)
    rho = np.eye(k)
    iou = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            rho[i, j], iou[i, j] = map_agreement(maps[names[i]], maps[names[j]], top)
            rho[j, i], iou[j, i] = rho[i, j], iou[i, j]
    for arr in (rho, iou):
        arr.setflags(write=False)
    return MethodAgreement(names, rho, iou, top)


@dataclass(frozen=True, eq=False)
class SplitAgreement:
    """Pairwise agreement averaged over ``n`` faces (NaN pairs skipped): ``(k, k)`` mean Spearman
    and mean top-k IoU; ``n_pairs[i, j]``: faces where the pair's Spearman was defined."""

    methods: tuple[str, ...]
    spearman: np.ndarray
    iou: np.ndarray
    n: int
    n_pairs: np.ndarray
    top: float = TOP_FRACTION

    def to_json(self) -> dict[str, Any]:
        def grid(a: np.ndarray) -> list[list[float | None]]:
            return [[None if not np.isfinite(x) else round(float(x), 6) for x in r] for r in a]

        return {
            "methods": list(self.methods), "spearman": grid(self.spearman), "iou": grid(self.iou),
            "n": self.n, "n_pairs": self.n_pairs.astype(int).tolist(), "top": self.top,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SplitAgreement:
        def arr(x: Any) -> np.ndarray:
            a = np.array([[np.nan if v is None else float(v) for v in r] for r in x], np.float64)
            a.setflags(write=False)
            return a

        return cls(
            tuple(data["methods"]), arr(data["spearman"]), arr(data["iou"]), int(data["n"]),
            np.asarray(data["n_pairs"], np.int64), float(data.get("top", TOP_FRACTION)),
        )  # fmt: skip


def mean_agreement(per_face: Sequence[MethodAgreement]) -> SplitAgreement:
    """The mean of per-face :class:`MethodAgreement` matrices over the same methods (NaN skipped).

    Raises:
        ValueError: with no faces, or faces over different methods.
    """
    if not per_face:
        raise ValueError("no faces to average")
    names = per_face[0].methods
    if any(a.methods != names for a in per_face):
        raise ValueError("every face must compare the same methods")
    rho = np.stack([a.spearman for a in per_face])
    iou = np.stack([a.iou for a in per_face])
    ok = np.isfinite(rho)
    with np.errstate(invalid="ignore"):
        mean_rho = np.where(ok.any(0), np.nansum(rho, 0) / np.maximum(ok.sum(0), 1), np.nan)
    mean_iou = iou.mean(0)
    for arr in (mean_rho, mean_iou):
        arr.setflags(write=False)
    return SplitAgreement(names, mean_rho, mean_iou, len(per_face), ok.sum(0), per_face[0].top)


def split_agreement(maps: Mapping[str, np.ndarray], top: float = TOP_FRACTION) -> SplitAgreement:
    """Agreement of every pair of methods averaged over faces: ``maps`` method -> ``(n, H, W)``
    (face ``i`` of every method explains the same face and target)."""
    names = tuple(maps)
    n = {len(np.asarray(maps[m])) for m in names}
    if len(n) != 1:
        raise ValueError(f"every method needs the same faces, got counts {sorted(n)}")
    count = n.pop()
    return mean_agreement(
        [agreement_matrix({m: np.asarray(maps[m])[i] for m in names}, top) for i in range(count)]
    )


__all__ = [
    "TOP_FRACTION",
    "MethodAgreement",
    "ReferenceAgreement",
    "SplitAgreement",
    "TopRounding",
    "agreement",
    "agreement_matrix",
    "map_agreement",
    "mean_agreement",
    "pearson",
    "split_agreement",
    "top_mask",
]
