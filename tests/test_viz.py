from __future__ import annotations

import numpy as np
import pytest

from gmx import viz


def test_shared_signed_scale_is_symmetric_and_covers_both_maps():
    a = np.array([[0.0, 1.0], [-2.0, 0.5]], dtype=np.float32)
    b = np.array([[4.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    s = viz.Scale.for_maps([a, b], signed=True, percentile=100)
    assert s.vmin == -4.0 and s.vmax == 4.0


def test_colorize_ends_and_middle_of_diverging_map():
    scale = viz.Scale(-1.0, 1.0)
    lut = viz.colormap_lut("PiYG")
    out = viz.colorize(np.array([[-1.0, 0.0, 1.0]]), scale, "PiYG")
    assert out.dtype == np.uint8 and out.shape == (1, 3, 3)
    assert tuple(out[0, 0]) == tuple(lut[0])  # most negative -> pink end
    assert tuple(out[0, 2]) == tuple(lut[-1])  # most positive -> green end
    assert tuple(out[0, 1]) == (247, 247, 247)  # zero -> neutral


def test_overlay_leaves_face_where_signed_map_is_zero_and_does_not_mutate():
    face = np.full((8, 8, 3), 100, dtype=np.uint8)
    values = np.zeros((8, 8), dtype=np.float32)
    values[0, 0] = 1.0
    face_before, values_before = face.copy(), values.copy()
    out = viz.overlay(face, values, viz.Scale(-1, 1), cmap="PiYG", opacity=1.0)
    assert np.array_equal(out[4, 4], face[4, 4])
    assert not np.array_equal(out[0, 0], face[0, 0])
    assert np.array_equal(face, face_before) and np.array_equal(values, values_before)


def test_sign_filter_modes():
    v = np.array([[-1.0, 2.0]], dtype=np.float32)
    assert viz.sign_filter(v, "positive").tolist() == [[0.0, 2.0]]
    assert viz.sign_filter(v, "negative").tolist() == [[-1.0, 0.0]]
    assert viz.sign_filter(v, "both").tolist() == [[-1.0, 2.0]]
    with pytest.raises(ValueError, match="sign mode"):
        viz.sign_filter(v, "abs")


def test_map_figure_hover_carries_raw_values():
    face = np.zeros((14, 14, 3), dtype=np.uint8)
    values = np.arange(49, dtype=np.float32).reshape(7, 7) - 24
    fig = viz.map_figure(face, values, viz.Scale(-24, 24))
    data = np.asarray(fig.data[0].customdata)
    assert data.shape == (14, 14, 1)
    assert data.min() < 0 < data.max()


def test_montage_layout():
    ims = [np.full((4, 5, 3), i, dtype=np.uint8) for i in range(3)]
    m = viz.montage(ims, columns=2, pad=1)
    assert m.shape == (2 * 5 + 1, 2 * 6 + 1, 3)
    assert m[1, 1, 0] == 0 and m[1, 7, 0] == 1 and m[6, 1, 0] == 2
