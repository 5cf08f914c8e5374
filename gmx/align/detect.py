"""Face detection at every scale: MediaPipe's BlazeFace on an image pyramid of overlapping tiles.

The only detector that ships with the project is the short-range BlazeFace inside
``face_landmarker.task`` (``face_detector.tflite``, 128x128 input). It finds a face reliably when
the face's interocular distance is at least ~5.5 % of the side of the image it sees (measured:
a 400 px tile found every face with >= 22 px between the eyes and missed 21 px ones). To reach
small faces in group photos the image is searched level by level: level 0 is the whole image,
level ``k`` is a grid of square tiles of side ``long_side / 2**k`` overlapping by a quarter,
down to tiles of :data:`TILE_PER_INTEROCULAR` times the smallest interocular distance wanted.
Boxes from all tiles are merged by non-maximum suppression.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import mediapipe as mp
import numpy as np

from gmx._typing import ImageU8

#: Tile side per pixel of the smallest interocular distance to find (1 / 0.0625; measured
#: detection limit ~1 / 0.055, so this keeps a margin).
TILE_PER_INTEROCULAR: float = 16.0

#: Tiles step by this fraction of their side (0.75: neighbours overlap by a quarter).
TILE_STRIDE: float = 0.75

#: Each level is shrunk so that its tiles (and the whole image) are at most this side before
#: detection (the detector itself works at 128x128; area-averaging here avoids aliasing).
DETECT_SIDE: int = 256

#: The search floor is at least ``long_side / SEARCH_FLOOR_DIVISOR`` between the eyes, which caps
#: the finest level at about 100 tiles (a 4000 px photo is searched down to ~33 px between the eyes).
SEARCH_FLOOR_DIVISOR: float = 120.0

#: Smallest tile side searched, in pixels.
MIN_TILE: int = 96


@dataclass(frozen=True)
class Detection:
    """A BlazeFace box in photo pixels.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in photo pixels.
        score: detector confidence in ``[0, 1]``.
        tile: side of the tile it was found in (the photo's long side for level 0).
    """

    box: tuple[float, float, float, float]
    score: float
    tile: int

    @property
    def size(self) -> float:
        """Larger side of the box in pixels."""
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def center(self) -> tuple[float, float]:
        """Box centre ``(x, y)``."""
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def pyramid_tiles(width: int, height: int, min_interocular_px: float) -> list[int]:
    """Tile sides to search, largest (the whole image) first.

    Args:
        width: photo width in pixels.
        height: photo height in pixels.
        min_interocular_px: smallest distance between the eyes to find. The floor is raised to
            ``long_side / 120`` so that huge photos do not explode into thousands of tiles.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not np.isfinite(min_interocular_px) or min_interocular_px <= 0:
        raise ValueError(f"min_interocular_px must be positive, got {min_interocular_px!r}")
    long_side = max(width, height)
    floor = max(float(min_interocular_px), long_side / SEARCH_FLOOR_DIVISOR)
    smallest = max(MIN_TILE, floor * TILE_PER_INTEROCULAR)
    if smallest >= long_side:
        return [long_side]
    # halve the tile down to `smallest`; the last level may be up to ~19 % coarser than
    # `smallest` (2**0.25), which TILE_PER_INTEROCULAR's margin over the measured limit absorbs
    n_levels = max(1, int(np.ceil(np.log2(long_side / smallest) - 0.25)))
    return [max(1, round(long_side / 2**k)) for k in range(n_levels + 1)]


def tile_grid(width: int, height: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles ``(x, y, w, h)`` covering the image (edge tiles are flush).

    A tile at least as long as the image's long side is the whole image.
    """
    if tile >= max(width, height):
        return [(0, 0, width, height)]
    step = max(1, int(tile * TILE_STRIDE))

    def starts(extent: int) -> list[int]:
        if tile >= extent:
            return [0]
        out = list(range(0, extent - tile + 1, step))
        if out[-1] + tile < extent:
            out.append(extent - tile)
        return out

    return [
        (x, y, min(tile, width), min(tile, height)) for y in starts(height) for x in starts(width)
    ]


def non_max_suppression(
    dets: list[Detection], iou: float = 0.3, containment: float = 0.7
) -> list[Detection]:
    """Greedy NMS by score; a box is dropped when it overlaps a kept one by IoU > ``iou`` or when
    more than ``containment`` of the smaller box lies inside the other. Returns kept detections,
    best score first."""
    order = sorted(dets, key=lambda d: -d.score)
    kept: list[Detection] = []
    for d in order:
        ax0, ay0, ax1, ay1 = d.box
        area_a = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0)
        duplicate = False
        for k in kept:
            bx0, by0, bx1, by1 = k.box
            area_b = max(0.0, bx1 - bx0) * max(0.0, by1 - by0)
            inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(
                0.0, min(ay1, by1) - max(ay0, by0)
            )
            if inter <= 0:
                continue
            union = area_a + area_b - inter
            if inter / union > iou or inter / max(min(area_a, area_b), 1e-9) > containment:
                duplicate = True
                break
        if not duplicate:
            kept.append(d)
    return kept


class TileDetector:
    """Runs a MediaPipe ``FaceDetector`` task (IMAGE mode) over one pyramid level.

    Not thread-safe; :class:`gmx.align.FaceAligner` serialises calls.
    """

    def __init__(self, detector: mp.tasks.vision.FaceDetector) -> None:
        self._detector = detector

    def detect_level(self, rgb: ImageU8, tile: int) -> list[Detection]:
        """All boxes found in the tiles of one level (not yet merged across tiles).

        The photo is shrunk once per level (area averaging) so that a tile becomes at most
        :data:`DETECT_SIDE` pixels; tiles are then cut from the shrunk copy.
        """
        height, width = rgb.shape[:2]
        scale = min(1.0, DETECT_SIDE / tile)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        else:
            small = rgb
        sx = width / small.shape[1]
        sy = height / small.shape[0]
        side = max(1, round(tile * scale))
        out: list[Detection] = []
        for x, y, w, h in tile_grid(small.shape[1], small.shape[0], side):
            crop = np.ascontiguousarray(small[y : y + h, x : x + w])
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=crop)
            for det in self._detector.detect(image).detections:
                bb = det.bounding_box
                score = float(det.categories[0].score) if det.categories else 0.0
                out.append(
                    Detection(
                        box=(
                            (x + bb.origin_x) * sx,
                            (y + bb.origin_y) * sy,
                            (x + bb.origin_x + bb.width) * sx,
                            (y + bb.origin_y + bb.height) * sy,
                        ),
                        score=score,
                        tile=tile,
                    )
                )
        return out


__all__ = [
    "DETECT_SIDE",
    "SEARCH_FLOOR_DIVISOR",
    "TILE_PER_INTEROCULAR",
    "TILE_STRIDE",
    "Detection",
    "TileDetector",
    "non_max_suppression",
    "pyramid_tiles",
    "tile_grid",
]
