"""Render a canonical synthetic face into a plausible photo (pose, lighting, blur, JPEG).

The geometric part is one homography ``canvas -> photo`` (scale, roll, a horizontal squash with a
little perspective standing in for small yaw, shift, optional mirror), so a ground-truth mask drawn
on the canvas follows the face exactly. The photometric part (background, lighting gradient,
gamma, colour cast, blur, noise, JPEG) never moves pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from gmx._typing import ImageU8
from gmx.synth.sources import CANONICAL_FIVE, CANVAS

#: Side of the rendered photos, pixels.
PHOTO_SIZE = 288
#: Inter-ocular distance of the canonical canvas (eye centre to eye centre), pixels.
CANVAS_IOD = float(np.linalg.norm(CANONICAL_FIVE[1] - CANONICAL_FIVE[0]))
#: Point of the canvas placed at the photo's centre (plus shift): the mean of the five points.
CANVAS_CENTRE = CANONICAL_FIVE.mean(axis=0)


@dataclass(frozen=True)
class PhotoParams:
    """Everything random about one photo of a face (all plain floats, JSON-able).

    Attributes:
        iod: inter-ocular distance in the photo, pixels.
        roll: in-plane rotation, degrees (positive = clockwise on screen).
        squash: horizontal scale of the face (< 1 mimics a turned head).
        perspective: horizontal perspective term (one side of the face larger), 1/pixels.
        shift_x, shift_y: offset of the face from the photo's centre, pixels.
        mirror: mirror the face horizontally.
        bg_top, bg_bottom: background colours (RGB 0..255) of a vertical gradient.
        light_amp, light_angle: strength (0..) and direction (degrees) of a linear lighting ramp.
        brightness, gamma: global exposure and gamma.
        cast: per-channel colour gains (RGB).
        blur: Gaussian blur sigma, pixels (0 = none).
        noise: Gaussian noise sigma, grey levels.
        jpeg: JPEG quality.
        seed: seed of the noise pattern.
    """

    iod: float
    roll: float
    squash: float
    perspective: float
    shift_x: float
    shift_y: float
    mirror: bool
    bg_top: tuple[float, float, float]
    bg_bottom: tuple[float, float, float]
    light_amp: float
    light_angle: float
    brightness: float
    gamma: float
    cast: tuple[float, float, float]
    blur: float
    noise: float
    jpeg: int
    seed: int

    def to_dict(self) -> dict[str, object]:
        """Plain dict (for metadata files)."""
        return asdict(self)


def sample_photo_params(rng: np.random.Generator) -> PhotoParams:
    """Draw the photo conditions of one picture."""

    def colour() -> tuple[float, float, float]:
        base = rng.uniform(40, 230)
        return tuple(float(np.clip(base + rng.normal(0, 25), 0, 255)) for _ in range(3))  # type: ignore[return-value]

    squash = float(rng.uniform(0.87, 1.0))
    return PhotoParams(
        iod=float(rng.uniform(42, 64)),
        roll=float(np.clip(rng.normal(0, 5), -10, 10)),
        squash=squash,
        perspective=float(rng.choice([-1, 1]) * (1.0 - squash) * rng.uniform(0.002, 0.005)),
        shift_x=float(rng.uniform(-14, 14)),
        shift_y=float(rng.uniform(-14, 14)),
        mirror=bool(rng.random() < 0.5),
        bg_top=colour(),
        bg_bottom=colour(),
        light_amp=float(rng.uniform(0.0, 0.45)),
        light_angle=float(rng.uniform(0, 360)),
        brightness=float(rng.uniform(0.8, 1.15)),
        gamma=float(rng.uniform(0.85, 1.2)),
        cast=tuple(float(c) for c in np.exp(rng.normal(0, 0.04, 3))),  # type: ignore[arg-type]
        blur=float(rng.choice([0.0, rng.uniform(0.3, 1.2)], p=[0.35, 0.65])),
        noise=float(rng.uniform(0.0, 3.5)),
        jpeg=int(rng.integers(55, 96)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def canvas_to_photo(params: PhotoParams) -> np.ndarray:
    """The ``(3, 3)`` homography from canvas pixels to photo pixels."""

    def t(dx: float, dy: float) -> np.ndarray:
        return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], dtype=np.float64)

    a = np.deg2rad(params.roll)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    s = params.iod / CANVAS_IOD
    scale = np.diag([s, s, 1.0])
    yaw = np.array([[params.squash, 0, 0], [0, 1, 0], [params.perspective, 0, 1]])
    mirror = np.diag([-1.0 if params.mirror else 1.0, 1.0, 1.0])
    c = PHOTO_SIZE / 2
    h = t(c + params.shift_x, c + params.shift_y) @ rot @ scale @ yaw @ mirror
    return h @ t(-CANVAS_CENTRE[0], -CANVAS_CENTRE[1])


def render_photo(canvas: ImageU8, params: PhotoParams) -> tuple[ImageU8, np.ndarray]:
    """Render a canvas into a ``PHOTO_SIZE`` x ``PHOTO_SIZE`` photo.

    Args:
        canvas: ``(CANVAS, CANVAS, 3)`` uint8 RGB face.
        params: photo conditions.

    Returns:
        The photo ``(PHOTO_SIZE, PHOTO_SIZE, 3)`` uint8 RGB and the ``(3, 3)`` canvas -> photo
        homography.
    """
    if canvas.shape != (CANVAS, CANVAS, 3) or canvas.dtype != np.uint8:
        raise ValueError(
            f"canvas must be ({CANVAS}, {CANVAS}, 3) uint8, got {canvas.shape} {canvas.dtype}"
        )
    h = canvas_to_photo(params)
    size = (PHOTO_SIZE, PHOTO_SIZE)
    face = cv2.warpPerspective(
        canvas, h, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # Feathered validity of the canvas inside the photo: the face fades into the background.
    valid = np.zeros((CANVAS, CANVAS), np.float32)
    valid[6:-6, 6:-6] = 1.0
    valid = cv2.GaussianBlur(valid, (0, 0), 5.0)
    alpha = cv2.warpPerspective(valid, h, size, flags=cv2.INTER_LINEAR)[..., None]
    ys = np.linspace(0.0, 1.0, PHOTO_SIZE, dtype=np.float32)[:, None, None]
    bg = (
        np.asarray(params.bg_top, np.float32) * (1 - ys)
        + np.asarray(params.bg_bottom, np.float32) * ys
    )
    bg = np.broadcast_to(bg, (PHOTO_SIZE, PHOTO_SIZE, 3))
    img = face.astype(np.float32) * alpha + bg * (1 - alpha)
    # Lighting: a linear ramp across the photo, exposure, gamma, colour cast.
    yy, xx = np.mgrid[0:PHOTO_SIZE, 0:PHOTO_SIZE].astype(np.float32) / PHOTO_SIZE - 0.5
    ang = np.deg2rad(params.light_angle)
    ramp = 1.0 + params.light_amp * (np.cos(ang) * xx + np.sin(ang) * yy)
    img = img * (params.brightness * ramp)[..., None] * np.asarray(params.cast, np.float32)
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** params.gamma
    if params.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), params.blur)
    if params.noise > 0:
        noise_rng = np.random.default_rng(params.seed)
        img = img + noise_rng.normal(0.0, params.noise, img.shape).astype(np.float32)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, params.jpeg]
    )
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    photo = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return photo, h


def warp_mask(
    mask: np.ndarray, homography: np.ndarray, size: int, threshold: float = 0.3
) -> np.ndarray:
    """Carry a boolean canvas mask through a homography and binarise it.

    Args:
        mask: ``(H, W)`` bool mask in the source frame.
        homography: ``(3, 3)`` source -> destination.
        size: side of the (square) destination.
        threshold: minimum bilinear coverage of a destination pixel.

    Returns:
        ``(size, size)`` bool.
    """
    warped = cv2.warpPerspective(
        mask.astype(np.float32), homography, (size, size), flags=cv2.INTER_LINEAR
    )
    return warped > threshold


__all__ = [
    "CANVAS_IOD",
    "PHOTO_SIZE",
    "PhotoParams",
    "canvas_to_photo",
    "render_photo",
    "sample_photo_params",
    "warp_mask",
]
