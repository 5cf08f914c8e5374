"""Display scaling of attribution maps (the library itself never normalises maps).

Signed maps use a symmetric diverging range ``[-L, L]`` so that zero stays the neutral colour;
unsigned maps use ``[0, L]``. ``L`` is a robust maximum (a high percentile of ``|values|``,
:func:`gmx.viz.robust_limit`), either per map, shared by the maps of one method (e.g. across
syndromes, so their strengths compare), or shared by all maps given (only meaningful when the maps
have the same units). A range is a :class:`gmx.viz.Scale`, the one colour-range type of gmx
(``DisplayRange`` is the same class under its explain name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from gmx.explain.result import AttributionMap
from gmx.viz import Scale, robust_limit

Share = Literal["map", "method", "all"]

#: The colour range of a map: :class:`gmx.viz.Scale` (``vmin``, ``vmax``, ``diverging``).
DisplayRange = Scale


def display_ranges(
    maps: Sequence[AttributionMap], share: Share = "map", percentile: float = 99.5
) -> list[Scale]:
    """One colour range (:class:`gmx.viz.Scale`) per map.

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
        Scale(-lim if m.signed else 0.0, lim, m.signed) for m, lim in zip(maps, limits, strict=True)
    ]


def normalize_for_display(amap: AttributionMap, rng: Scale | None = None) -> np.ndarray:
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
