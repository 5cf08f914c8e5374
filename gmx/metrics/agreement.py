"""How far attribution methods agree on one face: rank correlation and top-k IoU of every pair.

:func:`map_agreement` compares two maps: Spearman rank correlation of all pixels, and the IoU of
their top :data:`TOP_FRACTION` pixels (ties at the cut broken in raster order, a stable sort).
:func:`agreement_matrix` does it for every pair of a set of maps (symmetric, 1 on the diagonal).
Maps keep their sign: a signed map's "top" pixels are its most positive ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

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
    k = max(1, round(top * x.size))
    ta = set(np.argsort(-x, kind="stable")[:k].tolist())
    tb = set(np.argsort(-y, kind="stable")[:k].tolist())
    return rho, len(ta & tb) / len(ta | tb)


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


__all__ = ["TOP_FRACTION", "Agreement", "agreement_matrix", "map_agreement"]
