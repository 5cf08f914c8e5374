"""Localisation of one map against a binary region mask (a known causal region).

* ``relevance_mass`` (Arras et al. 2022): share of the positive relevance inside the mask; chance =
  the mask's area fraction. The same score as ``"mass_inside"`` of
  :func:`gmx.aggregate.localisation.score_matrix`, which computes it (one implementation).
* ``relevance_rank`` (Arras et al., relevance rank accuracy): of the ``K`` most relevant pixels,
  ``K`` = the mask's size, the share inside the mask; chance = the area fraction. Ties at the cut
  are broken in raster order (stable sort).
* ``pointing_game`` (Zhang et al. 2018): whether the maximum falls inside the mask; with tied maxima,
  the share of them inside (so 1 or 0 without ties); chance = the area fraction.
* ``auroc``: the map's values as a score for "pixel inside" (Mann-Whitney, ties averaged); chance
  0.5. Computed by :func:`gmx.aggregate.localisation.score_matrix` (``"auroc"``).

Maps and masks are the same ``(H, W)`` shape (template pixels); nothing is modified. A mask that is
empty or covers everything makes every score NaN (nothing to localise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gmx.aggregate.localisation import score_matrix


@dataclass(frozen=True)
class LocalisationMetrics:
    """The four localisation scores of one map and mask, and their chance level ``area``."""

    relevance_mass: float
    relevance_rank: float
    pointing_game: float
    auroc: float
    area: float


def _checked(attribution: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(attribution, np.float64)
    m = np.asarray(mask)
    if m.dtype != bool:
        raise ValueError(f"mask must be bool, got {m.dtype}")
    if a.shape != m.shape or a.ndim != 2:
        raise ValueError(f"attribution {a.shape} and mask {m.shape} must be the same (H, W)")
    if not np.all(np.isfinite(a)):
        raise ValueError("attribution contains NaN or inf")
    return a.ravel(), m.ravel()


def _degenerate(m: np.ndarray) -> bool:
    return bool(m.all() or not m.any())


def relevance_mass(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Share of the positive relevance inside ``mask`` (NaN without positive relevance)."""
    a, m = _checked(attribution, mask)
    if _degenerate(m):
        return float("nan")
    return float(score_matrix(a[None], m[None], "mass_inside")[0, 0])


def relevance_rank(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Share of the ``mask.sum()`` most relevant pixels that lie inside ``mask``."""
    a, m = _checked(attribution, mask)
    if _degenerate(m):
        return float("nan")
    k = int(m.sum())
    top = np.argsort(-a, kind="stable")[:k]
    return float(m[top].mean())


def pointing_game(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's maximal pixels inside ``mask`` (1.0 / 0.0 for a unique maximum)."""
    a, m = _checked(attribution, mask)
    if _degenerate(m):
        return float("nan")
    return float(m[a == a.max()].mean())


def auroc(attribution: np.ndarray, mask: np.ndarray) -> float:
    """AUROC of the map's values for "pixel inside ``mask``" (0.5 = chance)."""
    a, m = _checked(attribution, mask)
    if _degenerate(m):
        return float("nan")
    return float(score_matrix(a[None], m[None], "auroc")[0, 0])


def localisation_metrics(attribution: np.ndarray, mask: np.ndarray) -> LocalisationMetrics:
    """All four scores of one map against one mask."""
    _, m = _checked(attribution, mask)
    return LocalisationMetrics(
        relevance_mass(attribution, mask),
        relevance_rank(attribution, mask),
        pointing_game(attribution, mask),
        auroc(attribution, mask),
        float(m.mean()),
    )


__all__ = [
    "LocalisationMetrics",
    "auroc",
    "localisation_metrics",
    "pointing_game",
    "relevance_mass",
    "relevance_rank",
]
