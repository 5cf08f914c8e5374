"""What the Syndromes page draws, computed here so that the page only lays it out.

A :class:`MapTile` is one syndrome map of one method (mean, spread or contrast) in template
coordinates, drawn over the syndrome's composite face (or the neutral template face) with its own
robust colour scale, and, where the syndrome's causal region is known (the synthetic demo), that
region's outline on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gmx._typing import ImageU8
from gmx.aggregate.results import SyndromeResults
from gmx.aggregate.stats import to_template
from gmx.gallery import template_face
from gmx.synth.montage import draw_outline
from gmx.viz import Scale, overlay

MapKind = Literal["mean", "std", "contrast"]
MAP_KINDS: tuple[MapKind, ...] = ("mean", "std", "contrast")

#: Outline of the known causal region on a tile (RGB): cyan, apart from every colour map's colours.
REGION_COLOUR: tuple[int, int, int] = (0, 229, 255)
#: Grey level that means "no difference" in :func:`composite_difference_image`.
DIFFERENCE_GREY = 128
#: Contrast gain of :func:`composite_difference_image` (a 64-level difference reaches the ends).
DIFFERENCE_GAIN = 2.0


@dataclass(frozen=True)
class MapTile:
    """One drawn syndrome map.

    Attributes:
        image: ``(112, 112, 3)`` uint8 RGB, the map over the background, region outlined if known.
        scale: the colour scale of the map (its own robust range).
        signed: the map has both signs (drawn with a diverging colour map centred on zero).
        cmap: the colour map it is drawn with.
        region: the known causal region is outlined on it.
    """

    image: ImageU8
    scale: Scale
    signed: bool
    cmap: str
    region: bool


def background(results: SyndromeResults, syndrome: str) -> ImageU8:
    """What syndrome maps are drawn on: the composite face where the gallery-picture policy allows
    one (at least ``MIN_COMPOSITE_SUBJECTS`` patients), else the neutral template face."""
    face = results.composites.get(syndrome)
    return template_face() if face is None else face


def display_map(
    results: SyndromeResults, syndrome: str, method: str, kind: str
) -> np.ndarray | None:
    """``(112, 112)`` float32 map of ``kind`` in template coordinates, or ``None`` if absent."""
    sm = results.maps.get((syndrome, method))
    if sm is None:
        return None
    if kind == "mean":
        raw = sm.mean
    elif kind == "std":
        raw = sm.std
    elif kind == "contrast":
        raw = results.contrast(syndrome, method)
        if raw is None:
            return None
    else:
        raise ValueError(f"kind must be one of {MAP_KINDS}, got {kind!r}")
    return to_template(raw)


def is_signed(values: np.ndarray, kind: str) -> bool:
    """Contrasts are always signed; other maps when they hold a negative value."""
    return kind == "contrast" or bool(np.nanmin(values) < 0)


def map_tile(
    results: SyndromeResults,
    syndrome: str,
    method: str,
    kind: str,
    *,
    signed_cmap: str,
    unsigned_cmap: str,
    opacity: float,
    region: bool = True,
) -> MapTile | None:
    """The map of ``kind`` over :func:`background`, or ``None`` when it does not exist.

    Args:
        signed_cmap / unsigned_cmap: colour maps for signed and unsigned maps.
        region: outline the syndrome's known causal region (``results.masks``) when there is one.
    """
    values = display_map(results, syndrome, method, kind)
    if values is None:
        return None
    signed = is_signed(values, kind)
    scale = Scale.for_maps([values], signed=signed)
    cmap = signed_cmap if signed else unsigned_cmap
    image = overlay(background(results, syndrome), values, scale, cmap=cmap, opacity=opacity)
    mask = results.masks.get(syndrome)
    outlined = bool(region and mask is not None and np.any(mask))
    if outlined:
        image = draw_outline(image, np.asarray(mask), REGION_COLOUR)
    return MapTile(image, scale, signed, cmap, outlined)


def composite_difference_image(results: SyndromeResults, syndrome: str) -> ImageU8 | None:
    """Composite minus the unaffected composite as grey-centred RGB (``128`` = no difference)."""
    diff = results.composite_difference(syndrome)
    if diff is None:
        return None
    shown = DIFFERENCE_GREY + DIFFERENCE_GAIN * diff
    return np.clip(np.rint(shown), 0, 255).astype(np.uint8)


__all__ = [
    "DIFFERENCE_GAIN",
    "DIFFERENCE_GREY",
    "MAP_KINDS",
    "REGION_COLOUR",
    "MapKind",
    "MapTile",
    "background",
    "composite_difference_image",
    "display_map",
    "is_signed",
    "map_tile",
]
