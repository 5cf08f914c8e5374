"""Cell maps of the similarity decomposition and the pair CAMs, placed on the faces.

Each variant's cell map is placed with its own grid: the measured grid of its model
(:func:`gmx.encode.geometry.cell_grid`), mirrored for flipped variants (their cells are listed in the
displayed order, so column ``c`` sits at ``111 - centre[w - 1 - c]``, about one cell right of the
plain variant's column ``c``). The placed maps are averaged.

Conventions: additive cell terms (the exact decomposition) are placed sum-preserving
(:meth:`~gmx.encode.geometry.CellGrid.place_additive`): a pixel holds similarity per pixel, and a map
sums to the sum of its cells (so ``query.sum() + query_constant == score`` in the ``complete``
split). Attributions that are values at a location (CAMs) are interpolated
(:meth:`~gmx.encode.geometry.CellGrid.place`), like :func:`gmx.explain.explain` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gmx.encode.geometry import CellGrid
from gmx.similarity.decompose import PairDecomposition
from gmx.variants import Variant


def variant_grids(
    model_grids: Sequence[CellGrid], variants: Sequence[Variant]
) -> tuple[CellGrid, ...]:
    """One grid per variant: its model's grid, mirrored for flipped variants (displayed order)."""
    out = []
    for v in variants:
        if not 0 <= v.model < len(model_grids):
            raise ValueError(f"variant {v!r} names no model (have {len(model_grids)} grids)")
        grid = model_grids[v.model]
        out.append(grid.mirrored() if v.flip else grid)
    return tuple(out)


def _check(maps: np.ndarray, grids: Sequence[CellGrid]) -> np.ndarray:
    arr = np.asarray(maps, np.float64)
    if arr.ndim < 3 or len(arr) != len(grids):
        raise ValueError(f"need one (…, h, w) map per grid ({len(grids)}), got shape {arr.shape}")
    return arr


def place_terms(maps: np.ndarray, grids: Sequence[CellGrid]) -> np.ndarray:
    """``(V, ..., h, w)`` additive cell terms -> ``(..., size, size)`` float32, sum-preserving mean."""
    arr = _check(maps, grids)
    return np.mean([g.place_additive(m) for g, m in zip(grids, arr, strict=True)], axis=0).astype(
        np.float32
    )


def place_values(maps: np.ndarray, grids: Sequence[CellGrid]) -> np.ndarray:
    """``(V, ..., h, w)`` cell values -> ``(..., size, size)`` float32, interpolated, mean."""
    arr = _check(maps, grids)
    return np.mean([g.place(m) for g, m in zip(grids, arr, strict=True)], axis=0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Correspondence:
    """Where on the gallery face one location of the query face matches.

    Attributes:
        query_xy: the query location, pixel ``(x, y)`` (the centre of the selected cell).
        values: ``(size, size)`` float32 read-only, the cell-pair terms ``K`` of the query cell at
            ``query_xy`` in each variant (its nearest cell on that variant's grid), placed
            sum-preserving on the gallery face with the variant's grid and averaged.
        best_xy: pixel ``(x, y)`` of the largest value on the gallery face.
    """

    query_xy: tuple[float, float]
    values: np.ndarray
    best_xy: tuple[int, int]


def correspondence_at(
    decomposition: PairDecomposition,
    query_xy: tuple[float, float],
    grids: Sequence[CellGrid],
) -> Correspondence:
    """The gallery picture of the query location ``query_xy`` (see :class:`Correspondence`).

    Args:
        decomposition: one pair's exact decomposition (its per-variant ``K``).
        query_xy: pixel ``(x, y)`` on the query face.
        grids: one grid per variant of the decomposition (:func:`variant_grids`).
    """
    k_v = decomposition.per_variant_correspondence
    if len(grids) != len(k_v):
        raise ValueError(f"{len(grids)} grids for {len(k_v)} variants")
    x, y = float(query_xy[0]), float(query_xy[1])
    rows = np.stack([k[g.cell_at(x, y)] for k, g in zip(k_v, grids, strict=True)])
    values = place_terms(rows.reshape(len(rows), *decomposition.grid), grids)
    values.setflags(write=False)
    by, bx = np.unravel_index(int(np.argmax(values)), values.shape)
    return Correspondence((x, y), values, (int(bx), int(by)))


__all__ = ["Correspondence", "correspondence_at", "place_terms", "place_values", "variant_grids"]
