"""MediaPipe face-mesh regions and a dense piecewise-affine warp.

Conventions: points are ``(x, y)`` pixels (column, row); images ``(H, W, 3)`` uint8 RGB. The 478
landmark indices are those of the MediaPipe Face Landmarker (468 mesh points + 10 iris points).
"Right" and "left" are the *subject's*: the subject's right eye is on the image's left.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gmx._typing import ImageU8, Points

N_LANDMARKS = 478

#: Face oval, clockwise from the top of the forehead.
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
RIGHT_EYE_UPPER: tuple[int, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER: tuple[int, ...] = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER: tuple[int, ...] = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER: tuple[int, ...] = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_BROW: tuple[int, ...] = (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)
LEFT_BROW: tuple[int, ...] = (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)
LIPS_UPPER_OUTER: tuple[int, ...] = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_LOWER_OUTER: tuple[int, ...] = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
LIPS_UPPER_INNER: tuple[int, ...] = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_LOWER_INNER: tuple[int, ...] = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
RIGHT_IRIS_CENTRE = 468
LEFT_IRIS_CENTRE = 473
NOSE_TIP = 1
SUBNASALE = 2
UPPER_LIP_TOP = 0
LOWER_LIP_BOTTOM = 17
CHIN = 152
MOUTH_RIGHT = 61
MOUTH_LEFT = 291
RIGHT_BROW_INNER = 55
LEFT_BROW_INNER = 285
#: Lateral points of the nasal alae (subject's right, left).
ALA_RIGHT = 64
ALA_LEFT = 294
#: Mid-cheek points (subject's right, left).
CHEEK_RIGHT = 50
CHEEK_LEFT = 280

RIGHT_EYE: tuple[int, ...] = tuple(sorted(set(RIGHT_EYE_UPPER) | set(RIGHT_EYE_LOWER)))
LEFT_EYE: tuple[int, ...] = tuple(sorted(set(LEFT_EYE_UPPER) | set(LEFT_EYE_LOWER)))


def eye_centres(points: Points) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the subject's right and left eye (mean of each eye contour), ``(x, y)``."""
    return points[list(RIGHT_EYE)].mean(axis=0), points[list(LEFT_EYE)].mean(axis=0)


def five_points(points: Points) -> Points:
    """The ArcFace five points from a 478-point mesh, in ``gmx.constants.ARCFACE_TEMPLATE`` order.

    Image-left eye (subject's right), image-right eye, nose tip, image-left mouth corner,
    image-right mouth corner.
    """
    right, left = eye_centres(points)
    return np.stack([right, left, points[NOSE_TIP], points[MOUTH_RIGHT], points[MOUTH_LEFT]])


def _ring(points: Points, scale: float) -> Points:
    """Face-oval points pushed outwards from the oval's centre by ``scale`` (hair, ears, neck)."""
    oval = points[list(FACE_OVAL)]
    centre = oval.mean(axis=0)
    return centre + (oval - centre) * scale


def rings(points: Points) -> Points:
    """The two outer rings (hair, ears, neck) of a mesh, ``(72, 2)``."""
    return np.concatenate([_ring(points, 1.25), _ring(points, 1.6)])


def augment(points: Points, border: Points) -> Points:
    """Mesh points + two outer rings + fixed canvas border points, for a warp of the whole canvas.

    Args:
        points: ``(478, 2)`` mesh landmarks in canvas pixels.
        border: ``(B, 2)`` canvas border anchors in the same frame.

    Returns:
        ``(478 + 72 + B, 2)`` float64.
    """
    return np.concatenate([points, rings(points), border]).astype(np.float64)


def border_points(size: int, per_side: int = 5) -> Points:
    """Anchors on the border of a ``size`` x ``size`` canvas (corners included), ``(4*(n-1), 2)``."""
    t = np.linspace(0.0, size - 1.0, per_side)
    lo, hi = np.zeros_like(t), np.full_like(t, size - 1.0)
    pts = np.concatenate(
        [
            np.stack([t, lo], 1),
            np.stack([hi, t], 1)[1:],
            np.stack([t[::-1], hi], 1)[1:],
            np.stack([lo, t[::-1]], 1)[1:-1],
        ]
    )
    return pts


@dataclass(frozen=True)
class Triangulation:
    """Fixed triangle topology over augmented landmark sets.

    Attributes:
        triangles: ``(T, 3)`` int32 vertex indices.
    """

    triangles: npt.NDArray[np.int32]

    @classmethod
    def from_points(cls, points: Points) -> Triangulation:
        """Delaunay triangulation of a reference point set (e.g. the canonical mean shape)."""
        from scipy.spatial import Delaunay  # build-time dependency (via scikit-image)

        tri = Delaunay(np.asarray(points, dtype=np.float64))
        return cls(triangles=tri.simplices.astype(np.int32))


def _affines(src: Points, dst: Points, triangles: np.ndarray) -> np.ndarray:
    """Per-triangle affine maps dst -> src, ``(T, 2, 3)`` float64."""
    d = dst[triangles]  # (T, 3, 2)
    s = src[triangles]
    ones = np.ones((len(triangles), 3, 1))
    dh = np.concatenate([d, ones], axis=2)  # (T, 3, 3): rows are vertices
    # Solve dh @ M = s for M (3, 2); degenerate triangles get a least-squares answer.
    det = np.linalg.det(dh)
    ok = np.abs(det) > 1e-9
    m = np.zeros((len(triangles), 3, 2))
    m[ok] = np.linalg.solve(dh[ok], s[ok])
    return np.transpose(m, (0, 2, 1))  # (T, 2, 3)


def warp_maps(
    src: Points, dst: Points, tri: Triangulation, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps of the piecewise-affine warp that moves ``src`` points onto ``dst`` points.

    For every output pixel (in the ``dst`` frame) gives the ``(x, y)`` position to sample in the
    ``src`` frame. Pixels outside every triangle map to themselves.

    Args:
        src: ``(K, 2)`` points in the input image.
        dst: ``(K, 2)`` the same points where they should land in the output.
        tri: triangle topology over the K points.
        size: output ``(width, height)``.

    Returns:
        ``(map_x, map_y)``, each ``(height, width)`` float32, ready for ``cv2.remap``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ValueError(
            f"src and dst must be equal (K, 2) arrays, got {src.shape} and {dst.shape}"
        )
    w, h = size
    index = np.full((h, w), -1, dtype=np.int32)
    # Rasterise in 4x sub-pixel precision so shared edges leave no holes.
    shift = 2
    for t, verts in enumerate(dst[tri.triangles]):
        cv2.fillConvexPoly(index, np.round(verts * (1 << shift)).astype(np.int32), t, 8, shift)
    aff = _affines(src, dst, tri.triangles)
    ys, xs = np.mgrid[0:h, 0:w]
    map_x = xs.astype(np.float64)
    map_y = ys.astype(np.float64)
    inside = index >= 0
    a = aff[index[inside]]  # (P, 2, 3)
    px, py = xs[inside], ys[inside]
    map_x[inside] = a[:, 0, 0] * px + a[:, 0, 1] * py + a[:, 0, 2]
    map_y[inside] = a[:, 1, 0] * px + a[:, 1, 1] * py + a[:, 1, 2]
    return map_x.astype(np.float32), map_y.astype(np.float32)


def remap(image: np.ndarray, maps: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Sample ``image`` with backward maps (bilinear, edge pixels replicated). Returns a new array."""
    return cv2.remap(
        image, maps[0], maps[1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def warp_image(
    image: ImageU8, src: Points, dst: Points, tri: Triangulation, size: tuple[int, int]
) -> ImageU8:
    """Piecewise-affine warp of ``image`` moving ``src`` points to ``dst`` (see :func:`warp_maps`)."""
    return remap(image, warp_maps(src, dst, tri, size))


__all__ = [
    "FACE_OVAL",
    "LEFT_BROW",
    "LEFT_EYE",
    "N_LANDMARKS",
    "RIGHT_BROW",
    "RIGHT_EYE",
    "Triangulation",
    "augment",
    "border_points",
    "eye_centres",
    "five_points",
    "remap",
    "warp_image",
    "warp_maps",
]
