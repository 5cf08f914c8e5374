"""Display scaling of attribution maps (the library itself never normalises maps).

Signed maps use a symmetric diverging range ``[-L, L]`` so that zero stays the neutral colour;
unsigned maps use ``[0, L]``. ``L`` is a robust maximum (a high percentile of ``|values|``), either per
map, shared by the maps of one method (e.g. across syndromes, so their strengths compare), or shared
by all maps given (only meaningful when the maps have the same units).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gmx.explain.result import AttributionMap

Share = Literal["map", "method", "all"]


@dataclass(frozen=True)
class DisplayRange:
    """Colour range of one map.

    Attributes:
        vmin: value mapped to the low end (``-limit`` for signed maps, else 0).
        vmax: value mapped to the high end (``limit``).
        diverging: use a diverging colour scale centred on 0.
    """

    vmin: float
    vmax: float
    diverging: bool


def robust_limit(values: np.ndarray | Sequence[np.ndarray], percentile: float = 99.5) -> float:
    """``percentile`` of ``|values|`` (over all arrays given); 1.0 if that is 0 or not finite."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    arrays = [values] if isinstance(values, np.ndarray) else list(values)
    if not arrays:
        raise ValueError("no values given")
    flat = np.concatenate([np.abs(np.asarray(a, dtype=np.float64)).ravel() for a in arrays])
    flat = flat[np.isfinite(flat)]
    limit = float(np.percentile(flat, percentile)) if flat.size else 0.0
    return limit if limit > 0 and np.isfinite(limit) else 1.0


def display_ranges(
    maps: Sequence[AttributionMap], share: Share = "map", percentile: float = 99.5
) -> list[DisplayRange]:
    """One :class:`DisplayRange` per map.

    Args:
        maps: the maps to show together.
        share: ``"map"`` each its own limit; ``"method"`` one limit per method name (compare one
            method across syndromes/targets); ``"all"`` one limit for everything.
        percentile: robust maximum of ``|values|``.
    """
    if share not in ("map", "method", "all"):
        raise ValueError(f"share must be 'map', 'method' or 'all', got {share!r}")
    if share == "map":
        limits = [robust_limit(m.values, percentile) for m in maps]
    elif share == "all":
        limit = robust_limit([m.values for m in maps], percentile) if maps else 1.0
        limits = [limit] * len(maps)
    else:
        by_method: dict[str, float] = {}
        for name in {m.method for m in maps}:
            by_method[name] = robust_limit([m.values for m in maps if m.method == name], percentile)
        limits = [by_method[m.method] for m in maps]
    return [
        DisplayRange(-lim if m.signed else 0.0, lim, m.signed)
        for m, lim in zip(maps, limits, strict=True)
    ]


def normalize_for_display(amap: AttributionMap, rng: DisplayRange | None = None) -> np.ndarray:
    """New ``(112, 112)`` float32 array: signed maps in ``[-1, 1]``, unsigned in ``[0, 1]``.

    Args:
        amap: the map (not modified).
        rng: the range to use (default: the map's own, see :func:`display_ranges`).
    """
    rng = rng or display_ranges([amap])[0]
    scale = max(abs(rng.vmin), abs(rng.vmax)) or 1.0
    out = np.asarray(amap.values, dtype=np.float32) / np.float32(scale)
    return np.clip(out, -1.0 if rng.diverging else 0.0, 1.0).astype(np.float32)


def normalize_maps(
    maps: Sequence[AttributionMap], share: Share = "map", percentile: float = 99.5
) -> list[np.ndarray]:
    """:func:`normalize_for_display` for several maps with a shared-range policy."""
    return [
        normalize_for_display(m, r)
        for m, r in zip(maps, display_ranges(maps, share, percentile), strict=True)
    ]


__all__ = [
    "DisplayRange",
    "display_ranges",
    "normalize_for_display",
    "normalize_maps",
    "robust_limit",
]
