"""Agreement between two maps of the same thing (engine vs reference, fp32 vs bf16)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Agreement:
    """How closely two maps agree.

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


def top_mask(values: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ``fraction`` largest values (ties broken by a stable sort)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    k = max(1, round(fraction * flat.size))
    idx = np.argsort(-flat, kind="stable")[:k]
    mask = np.zeros(flat.size, dtype=bool)
    mask[idx] = True
    return mask.reshape(np.shape(values))


def agreement(candidate: np.ndarray, reference: np.ndarray, top_fraction: float = 0.1) -> Agreement:
    """Compare ``candidate`` with ``reference`` (same shape); ``pearson`` is NaN for a constant map."""
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    r = pearson(a, b)
    ma, mb = top_mask(a, top_fraction), top_mask(b, top_fraction)
    iou = float((ma & mb).sum() / max(1, (ma | mb).sum()))
    scale = float(np.abs(b).max()) or 1.0
    return Agreement(r, iou, float(np.abs(a - b).max()) / scale)


__all__ = ["Agreement", "agreement", "pearson", "top_mask"]
