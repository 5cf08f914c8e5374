"""Pair maps on the faces: per-variant grids, sum-preserving exact maps, the page's geometry from gmx."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.encode.geometry import CellGrid, cell_grid, stride_grid
from gmx.similarity import (
    PairExplainer,
    correspondence_at,
    correspondence_map,
    place_terms,
    variant_grids,
)
from gmx.variants import Variant


@pytest.fixture(scope="module")
def explainer(flip_setup) -> PairExplainer:
    return PairExplainer(flip_setup.ensemble, flip_setup.gallery)


def test_variant_grids_mirror_flipped_variants() -> None:
    grid = stride_grid((7, 7))
    plain, flipped = variant_grids([grid], [Variant(0), Variant(0, flip=True)])
    assert plain == grid
    assert flipped.centres_x == tuple(15.0 + 16 * j for j in range(7))  # 111 - 16 (6 - j)
    with pytest.raises(ValueError, match="names no model"):
        variant_grids([grid], [Variant(1)])


def test_exact_pixel_maps_keep_completeness(explainer, flip_setup) -> None:
    (p,) = explainer.explain(flip_setup.face, [2], split="complete")
    assert p.query.sum(dtype=np.float64) + p.query_constant == pytest.approx(p.score, abs=1e-5)
    assert p.gallery.sum(dtype=np.float64) + p.gallery_constant == pytest.approx(p.score, abs=1e-5)
    (s,) = explainer.explain(flip_setup.face, [2], split="shared")
    total = s.query.sum(dtype=np.float64) + s.gallery.sum(dtype=np.float64) + s.query_constant
    assert total == pytest.approx(s.score, abs=1e-5)


def test_exact_maps_place_each_variant_on_its_own_grid(explainer, flip_setup) -> None:
    (p,) = explainer.explain(flip_setup.face, [1])
    d = p.decomposition
    assert d is not None and [v.flip for v in d.variants] == [False, True]
    grid = cell_grid(flip_setup.ensemble.models[0].model.backbone)
    assert p.grid == grid and p.variant_grids == (grid, grid.mirrored())
    q = d.variant_query_maps()
    expect = (grid.place_additive(q[0]) + grid.mirrored().place_additive(q[1])) / 2
    np.testing.assert_allclose(p.query, expect, rtol=1e-5, atol=1e-9)
    # the cell-level mean placed on one grid is a different (wrong) picture
    assert not np.allclose(p.query, grid.place_additive(d.query_map()), rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(q.mean(0), d.query_map(), atol=1e-12)


def test_correspondence_picks_each_variants_cell_at_the_location() -> None:
    grid = CellGrid((8.0, 40.0), (10.0, 50.0), size=64)
    mirrored = grid.mirrored()  # columns at 13, 53

    class D:  # the two fields correspondence_at reads
        grid = (2, 2)
        per_variant_correspondence = np.zeros((2, 4, 4))

    D.per_variant_correspondence[0, 1, 3] = 1.0  # plain: query cell (0, 1) -> gallery cell (1, 1)
    D.per_variant_correspondence[1, 1, 2] = 2.0  # mirrored: the cell nearest (50, 8) is (0, 1)
    c = correspondence_at(D, (50.0, 8.0), [grid, mirrored])  # type: ignore[arg-type]
    assert c.values.shape == (64, 64) and not c.values.flags.writeable
    assert c.values.sum() == pytest.approx(1.5)  # (1 + 2) / 2, sum-preserving
    assert c.best_xy[1] >= 40  # the largest term is on the lower row


def test_correspondence_map_sums_to_the_variant_mean_of_k_rows(explainer, flip_setup) -> None:
    (p,) = explainer.explain(flip_setup.face, [3])
    d = p.decomposition
    cell = 24
    corr = correspondence_map(p, cell)
    x, y = p.grid.centre(cell)
    rows = [
        k[g.cell_at(x, y)]
        for k, g in zip(d.per_variant_correspondence, p.variant_grids, strict=True)
    ]
    assert corr.values.sum(dtype=np.float64) == pytest.approx(np.mean([r.sum() for r in rows]))
    np.testing.assert_allclose(
        corr.values, place_terms(np.stack(rows).reshape(2, 7, 7), p.variant_grids), atol=1e-9
    )
    (cam,) = explainer.explain(flip_setup.face, [3], method="hirescam")
    with pytest.raises(ValueError, match="no cell correspondence"):
        correspondence_map(cam, cell)


def test_similarity_page_draws_gmx_geometry(explainer, flip_setup) -> None:
    from gmx.viz import Scale
    from ui.similarity_view import cell_picker_figure

    (p,) = explainer.explain(flip_setup.face, [0])
    fig = cell_picker_figure(
        flip_setup.face, p, Scale.for_maps([p.query], signed=True), 10, opacity=0.5
    )
    markers = fig.data[-1]
    np.testing.assert_allclose(sorted(set(markers.x)), p.grid.centres_x)
    np.testing.assert_allclose(sorted(set(markers.y)), p.grid.centres_y)
    edges_y, edges_x = p.grid.edges()
    box = next(s for s in fig.layout.shapes if s.type == "rect")
    r, c = divmod(10, 7)
    assert (box.x0, box.x1, box.y0, box.y1) == pytest.approx(
        (edges_x[c], edges_x[c + 1], edges_y[r], edges_y[r + 1])
    )
    lines = sorted(s.x0 for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1)
    np.testing.assert_allclose(lines, edges_x[1:-1])
