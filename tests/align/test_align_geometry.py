"""Similarity estimation, warps and pose angles on synthetic geometry with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.align import (
    estimate_similarity,
    gm_transform,
    invert_affine,
    rotation_to_euler,
    transform_points,
    warp_to_template,
)
from gmx.constants import ARCFACE_TEMPLATE


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([r, [[tx], [ty]]])


def test_hand_computed_case() -> None:
    # (0,0)->(1,1), (1,0)->(1,3): scale 2, rotation +90 degrees, translation (1, 1).
    m = estimate_similarity([[0, 0], [1, 0]], [[1, 1], [1, 3]])
    np.testing.assert_allclose(m, [[0, -2, 1], [2, 0, 1]], atol=1e-12)


@pytest.mark.parametrize(
    ("angle", "scale", "tx", "ty"),
    [
        (0.0, 1.0, 0.0, 0.0),
        (20.0, 0.37, -120.5, 33.0),
        (-135.0, 2.5, 7.0, -900.0),
        (179.0, 1e-2, 1, 2),
    ],
)
def test_known_transform_is_recovered(angle: float, scale: float, tx: float, ty: float) -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(-200, 800, size=(12, 2))
    truth = _similarity(angle, scale, tx, ty)
    dst = transform_points(truth, src)
    np.testing.assert_allclose(estimate_similarity(src, dst), truth, atol=1e-6)
    # and on the 5 ArcFace points, the case the aligner uses
    dst5 = transform_points(truth, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(estimate_similarity(ARCFACE_TEMPLATE, dst5), truth, atol=1e-6)


def test_least_squares_with_noise_and_no_reflection() -> None:
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, size=(50, 2))
    truth = _similarity(33.0, 1.7, 5.0, -4.0)
    dst = transform_points(truth, src) + rng.normal(0, 0.5, size=src.shape)
    m = estimate_similarity(src, dst)
    # independent optimum: linear least squares over (a, b, tx, ty), x' = a x - b y + tx,
    # y' = b x + a y + ty (the same problem, parametrised linearly)
    n = len(src)
    design = np.zeros((2 * n, 4))
    design[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(n), np.zeros(n)]
    design[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(n), np.ones(n)]
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, dst.reshape(-1), rcond=None)
    np.testing.assert_allclose(m, [[a, -b, tx], [b, a, ty]], atol=1e-9)
    np.testing.assert_allclose(m, truth, atol=0.2)
    # a mirrored point set cannot be matched by a reflection: the result is a proper rotation
    mirrored = dst * [-1, 1]
    m2 = estimate_similarity(src, mirrored)
    assert np.linalg.det(m2[:, :2]) > 0
    assert np.isclose(m2[0, 0], m2[1, 1]) and np.isclose(m2[0, 1], -m2[1, 0])


def test_inputs_not_mutated() -> None:
    src = np.array([[1.0, 2.0], [3.0, 5.0], [7.0, 1.0]])
    dst = src * 2
    s0, d0 = src.copy(), dst.copy()
    m = estimate_similarity(src, dst)
    transform_points(m, src)
    invert_affine(m)
    np.testing.assert_array_equal(src, s0)
    np.testing.assert_array_equal(dst, d0)


@pytest.mark.parametrize(
    ("src", "dst", "match"),
    [
        ([[0, 0], [1, 1]], [[0, 0]], "same shape"),
        ([[0, 0]], [[1, 1]], "at least 2"),
        ([[2, 2], [2, 2], [2, 2]], [[0, 0], [1, 0], [0, 1]], "identical"),
        ([[0, 0], [np.nan, 1]], [[0, 0], [1, 1]], "non-finite"),
        ([0, 1, 2], [0, 1, 2], r"\(N, 2\)"),
    ],
)
def test_bad_points_raise(src: object, dst: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate_similarity(src, dst)  # type: ignore[arg-type]


def test_invert_and_gm_transform() -> None:
    m = _similarity(-12.0, 0.8, 30.0, -7.0)
    pts = np.array([[0.0, 0.0], [10.0, -3.0], [55.5, 71.25]])
    back = transform_points(invert_affine(m), transform_points(m, pts))
    np.testing.assert_allclose(back, pts, atol=1e-10)
    np.testing.assert_allclose(gm_transform(m), m * 100 / 112)


def test_warp_pixel_convention_and_black_border() -> None:
    img = np.zeros((40, 50, 3), np.uint8)
    img[10, 20] = (255, 128, 7)
    m = np.array([[1.0, 0.0, -5.0], [0.0, 1.0, 3.0]])  # photo (20, 10) -> template (15, 13)
    before = img.copy()
    out = warp_to_template(img, m, size=32)
    np.testing.assert_array_equal(img, before)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert tuple(out[13, 15]) == (255, 128, 7)
    assert out.sum() == 255 + 128 + 7  # everything else, including the border, is black
    grey = warp_to_template(img[:, :, 0], m, size=32)
    assert grey.shape == (32, 32) and grey[13, 15] == 255


def test_warp_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        warp_to_template(np.zeros((4, 4, 3), np.float32), np.eye(2, 3))
    with pytest.raises(ValueError, match="transform"):
        warp_to_template(np.zeros((4, 4, 3), np.uint8), np.eye(3))
    with pytest.raises(ValueError, match="size"):
        warp_to_template(np.zeros((4, 4, 3), np.uint8), np.eye(2, 3), size=0)


def _rot(axis: str, deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def test_rotation_to_euler_signs_and_roll_invariance() -> None:
    # MediaPipe metric space: x right, y up, z towards the camera.
    yaw, pitch, roll = 17.0, -8.0, 25.0
    r = _rot("z", -roll) @ _rot("y", yaw) @ _rot("x", -pitch)
    m = np.eye(4)
    m[:3, :3] = 3.0 * r  # a uniform scale is ignored
    got = rotation_to_euler(m)
    np.testing.assert_allclose(got, (yaw, pitch, roll), atol=1e-9)
    # face turned to the image right: its forward axis (+z) gains +x
    fwd = (_rot("y", 10.0) @ [0, 0, 1])[0]
    assert fwd > 0 and rotation_to_euler(_rot("y", 10.0))[0] > 0
    # in-plane rotation changes only the roll
    for extra in (-60.0, 5.0, 90.0):
        y2, p2, r2 = rotation_to_euler(_rot("z", -extra) @ r)
        assert (y2, p2) == pytest.approx((yaw, pitch), abs=1e-9)
        assert r2 == pytest.approx(roll + extra, abs=1e-9)
    with pytest.raises(ValueError, match="matrix"):
        rotation_to_euler(np.zeros((2, 2)))
