from __future__ import annotations

import numpy as np
import pytest

from gmx.synth import mesh


def _grid_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    inner = rng.uniform(10, 50, (30, 2))
    return np.concatenate([inner, mesh.border_points(64)])


def test_identity_warp_maps_every_pixel_to_itself():
    pts = _grid_points()
    tri = mesh.Triangulation.from_points(pts)
    mx, my = mesh.warp_maps(pts, pts, tri, (64, 64))
    ys, xs = np.mgrid[0:64, 0:64]
    np.testing.assert_allclose(mx, xs, atol=1e-4)
    np.testing.assert_allclose(my, ys, atol=1e-4)


def test_global_affine_is_reproduced_exactly():
    pts = _grid_points()
    tri = mesh.Triangulation.from_points(pts)
    a = np.array([[1.1, 0.1, -3.0], [-0.05, 0.95, 2.0]])
    src = pts @ a[:, :2].T + a[:, 2]
    mx, my = mesh.warp_maps(src, pts, tri, (64, 64))
    ys, xs = np.mgrid[0:64, 0:64]
    np.testing.assert_allclose(mx, a[0, 0] * xs + a[0, 1] * ys + a[0, 2], atol=1e-3)
    np.testing.assert_allclose(my, a[1, 0] * xs + a[1, 1] * ys + a[1, 2], atol=1e-3)


def test_warp_does_not_mutate_inputs():
    pts = _grid_points()
    before = pts.copy()
    tri = mesh.Triangulation.from_points(pts)
    img = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    img0 = img.copy()
    mesh.warp_image(img, pts, pts + 0.5, tri, (64, 64))
    np.testing.assert_array_equal(pts, before)
    np.testing.assert_array_equal(img, img0)


def test_mismatched_points_raise():
    pts = _grid_points()
    tri = mesh.Triangulation.from_points(pts)
    with pytest.raises(ValueError, match="equal"):
        mesh.warp_maps(pts, pts[:-1], tri, (64, 64))
