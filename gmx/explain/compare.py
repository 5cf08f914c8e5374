"""Agreement between two maps of the same thing (engine vs reference, fp32 vs bf16)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Agreement:
    """How closely two maps agree.

    Attributes:
        pearson: Pearson correlation of the values (scale- and offset-free).
        top_iou: intersection over union of the top ``top_fraction`` pixels of each map.
        max_abs_diff: maximum absolute difference relative to ``max |reference|``.
    """

    pearson: float
    top_iou: float
    max_abs_diff: float


def top_mask(values: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ``fraction`` largest values (ties broken by a stable sort)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    k = max(1, round(fraction * flat.size))
    idx = np.argsort(-flat, kind="stable")[:k]
    mask = np.zeros(flat.size, dtype=bool)
    mask[idx] = True
    return mask.reshape(np.shape(values))


def agreement(candidate: np.ndarray, reference: np.ndarray, top_fraction: float = 0.1) -> Agreement:
    """Compare ``candidate`` with ``reference`` (same shape).

    A constant map correlates perfectly only with a constant map.
    """
    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        pearson = 1.0 if sa == sb and np.allclose(a, b) else 0.0
    else:
        pearson = float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb))
    ma, mb = top_mask(a, top_fraction), top_mask(b, top_fraction)
    iou = float((ma & mb).sum() / max(1, (ma | mb).sum()))
    scale = float(np.abs(b).max()) or 1.0
    return Agreement(pearson, iou, float(np.abs(a - b).max()) / scale)


__all__ = ["Agreement", "agreement", "top_mask"]
