"""Similarity transforms and warps between photo pixels and the ArcFace template.

Conventions: points are ``(x, y)`` in pixels with the centre of pixel ``(col=i, row=j)`` at
``(i, j)`` (OpenCV's convention, so a transform here can be passed to ``cv2.warpAffine``
unchanged). Affine matrices are ``(2, 3)`` float64 and map ``(x, y, 1)`` column vectors.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from gmx._typing import Affine, ImageU8, Points
from gmx.constants import ARCFACE_TEMPLATE, GM_INPUT_SIZE, TEMPLATE_SIZE


def _as_points(name: str, pts: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(pts, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must be an (N, 2) array of (x, y) points, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains non-finite values: {arr!r}")
    return arr


def estimate_similarity(src: npt.ArrayLike, dst: npt.ArrayLike) -> Affine:
    """Least-squares similarity transform (rotation, uniform scale, translation) from src to dst.

    Closed form of Umeyama (1991), "Least-squares estimation of transformation parameters between
    two point patterns", IEEE TPAMI 13(4), with the reflection guard, so the result is a proper
    rotation (never a mirror).

    Args:
        src: ``(N, 2)`` source points ``(x, y)``, ``N >= 2``.
        dst: ``(N, 2)`` destination points, same order.

    Returns:
        ``(2, 3)`` float64 matrix ``M`` minimising ``sum ||M @ [x, y, 1] - dst||^2``.

    Raises:
        ValueError: shapes differ, fewer than 2 points, non-finite values, or all src points equal.
    """
    s = _as_points("src", src)
    d = _as_points("dst", dst)
    if s.shape != d.shape:
        raise ValueError(f"src and dst must have the same shape, got {s.shape} and {d.shape}")
    if s.shape[0] < 2:
        raise ValueError(f"need at least 2 point pairs, got {s.shape[0]}")
    mu_s = s.mean(axis=0)
    mu_d = d.mean(axis=0)
    sc = s - mu_s
    dc = d - mu_d
    var_s = float((sc**2).sum() / s.shape[0])
    if var_s <= 1e-24:
        raise ValueError(f"src points are all identical ({mu_s.tolist()}); no unique transform")
    cov = dc.T @ sc / s.shape[0]
    u, sing, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = float((sing * sign).sum() / var_s)
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = scale * rot
    out[:, 2] = mu_d - scale * rot @ mu_s
    return out


def transform_points(transform: npt.ArrayLike, points: npt.ArrayLike) -> Points:
    """Apply a ``(2, 3)`` affine to ``(N, 2)`` points; returns a new ``(N, 2)`` float64 array."""
    m = np.asarray(transform, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"transform must be (2, 3), got shape {m.shape}")
    p = _as_points("points", points)
    return p @ m[:, :2].T + m[:, 2]


def invert_affine(transform: npt.ArrayLike) -> Affine:
    """Inverse of a ``(2, 3)`` affine (template -> image for an alignment transform)."""
    m = np.asarray(transform, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"transform must be (2, 3), got shape {m.shape}")
    a = m[:, :2]
    if abs(np.linalg.det(a)) < 1e-12:
        raise ValueError(f"transform is singular: {m.tolist()}")
    inv = np.linalg.inv(a)
    return np.hstack([inv, -(inv @ m[:, 2])[:, None]])


def warp_to_template(rgb: ImageU8, transform: npt.ArrayLike, size: int = TEMPLATE_SIZE) -> ImageU8:
    """Resample a photo into the ``size x size`` template frame (bilinear, black border).

    Args:
        rgb: ``(H, W, 3)`` uint8 RGB photo (or ``(H, W)`` grey); not modified.
        transform: ``(2, 3)`` image -> template matrix (as :func:`estimate_similarity` returns).
        size: output side in pixels.

    Returns:
        ``(size, size, 3)`` (or ``(size, size)``) uint8 array, a fresh copy.
    """
    img = np.asarray(rgb)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(
            f"rgb must be an (H, W, 3) or (H, W) uint8 array, got {img.dtype} {img.shape}"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive int, got {size!r}")
    m = np.asarray(transform, dtype=np.float64)
    if m.shape != (2, 3) or not np.isfinite(m).all():
        raise ValueError(f"transform must be a finite (2, 3) matrix, got {m!r}")
    return cv2.warpAffine(
        np.ascontiguousarray(img),
        m,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def gm_transform(transform: npt.ArrayLike) -> Affine:
    """Image -> 100x100 GestaltMatcher-input transform from an image -> ArcFace-template transform.

    The original GestaltMatcher crop is defined here as the *same face region* as the 112x112
    ArcFace crop, resampled to ``GM_INPUT_SIZE`` (the template scaled by 100/112 about the origin).
    This approximates upstream's dlib-based face crop; it is not bit-identical to it.
    """
    m = np.asarray(transform, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"transform must be (2, 3), got shape {m.shape}")
    return m * (GM_INPUT_SIZE / TEMPLATE_SIZE)


def to_grey(rgb: ImageU8) -> ImageU8:
    """ITU-R BT.601 luma of an ``(H, W, 3)`` uint8 RGB image -> ``(H, W)`` uint8 (OpenCV's)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def template_points(size: int = TEMPLATE_SIZE) -> Points:
    """The five ArcFace points scaled to a ``size x size`` template (``(5, 2)`` float64 copy)."""
    return ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)


def rotation_to_euler(matrix: npt.ArrayLike) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees from MediaPipe's facial transformation matrix.

    MediaPipe's metric space is right-handed with x to the image's right, y up and z towards the
    camera; an upright frontal face has the identity rotation. The rotation is decomposed as
    ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (roll outermost), so an in-plane rotation of the photo
    changes only the roll. Signs are given in image terms: yaw > 0 when the face turns towards the
    image's right, pitch > 0 when it tilts up (chin forward), roll > 0 when it is rotated clockwise
    in the image (the image-right eye lower).

    Args:
        matrix: ``(4, 4)`` (or ``(3, 3)``) pose matrix; only its rotation part is used (columns
            are normalised, so a uniform scale does not matter).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape not in ((4, 4), (3, 3)):
        raise ValueError(f"matrix must be (4, 4) or (3, 3), got shape {m.shape}")
    r = m[:3, :3]
    norms = np.linalg.norm(r, axis=0)
    if not (np.isfinite(r).all() and np.all(norms > 1e-9)):
        raise ValueError(f"matrix has a degenerate rotation part: {r.tolist()}")
    r = r / norms
    yaw = np.degrees(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0)))
    pitch = -np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = -np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


__all__ = [
    "estimate_similarity",
    "gm_transform",
    "invert_affine",
    "rotation_to_euler",
    "template_points",
    "to_grey",
    "transform_points",
    "warp_to_template",
]
