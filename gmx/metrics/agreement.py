"""How far attribution methods agree on one face: rank correlation and top-k IoU of every pair.

:func:`map_agreement` compares two maps: Spearman rank correlation of all pixels, and the IoU of
their top :data:`TOP_FRACTION` pixels (ties at the cut broken in raster order, a stable sort).
:func:`agreement_matrix` does it for every pair of a set of maps (symmetric, 1 on the diagonal).
Maps keep their sign: a signed map's "top" pixels are its most positive ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from gmx.explain.compare import top_mask

#: Top fraction of pixels compared by the top-k IoU.
TOP_FRACTION = 0.10


def map_agreement(a: np.ndarray, b: np.ndarray, top: float = TOP_FRACTION) -> tuple[float, float]:
    """Spearman rank correlation and IoU of the top ``top`` fraction of pixels of two maps.

    NaN Spearman when either map is constant.
    """
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {np.shape(a)} and {np.shape(b)}")
    rho = float("nan") if np.ptp(x) == 0 or np.ptp(y) == 0 else float(spearmanr(x, y).statistic)
    ta, tb = top_mask(x, top), top_mask(y, top)
    return rho, float((ta & tb).sum() / (ta | tb).sum())


@dataclass(frozen=True, eq=False)
class Agreement:
    """Pairwise agreement of ``methods``: ``(k, k)`` Spearman and top-k IoU matrices."""

    methods: tuple[str, ...]
    spearman: np.ndarray
    iou: np.ndarray
    top: float = TOP_FRACTION


def agreement_matrix(maps: Mapping[str, np.ndarray], top: float = TOP_FRACTION) -> Agreement:
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
    return Agreement(names, rho, iou, top)


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


def mean_agreement(per_face: Sequence[Agreement]) -> SplitAgreement:
    """The mean of per-face :class:`Agreement` matrices over the same methods (NaN skipped).

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
    "Agreement",
    "SplitAgreement",
    "agreement_matrix",
    "map_agreement",
    "mean_agreement",
    "split_agreement",
]
