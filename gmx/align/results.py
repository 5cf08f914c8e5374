"""Frozen result types of the alignment stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gmx._typing import Affine, ImageU8, Points
from gmx.align.geometry import gm_transform


@dataclass(frozen=True)
class FaceQuality:
    """How usable a detected face is for GestaltMatcher.

    Attributes:
        face_width_px: cheek-to-cheek distance (mesh points 234-454) in photo pixels.
        interocular_px: distance between the two iris centres in photo pixels (the ArcFace
            template has 35.2 px; below that the 112x112 crop is upsampled).
        yaw_deg: head turn from MediaPipe's pose matrix; positive = face turned to the image's right.
        roll_deg: in-plane tilt of the eye line; positive = clockwise (image-right eye lower).
            Alignment removes it.
        pitch_deg: head nod from the pose matrix; positive = face tilted up.
        detection_score: confidence of the BlazeFace detector for this face, in ``[0, 1]``.
        warnings: short human-readable notes ("small face ...", "strong yaw ..."), empty if none.
    """

    face_width_px: float
    interocular_px: float
    yaw_deg: float
    roll_deg: float
    pitch_deg: float
    detection_score: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """One face of a photo, aligned to the ArcFace template. All arrays are read-only.

    Attributes:
        image: ``(112, 112, 3)`` uint8 RGB ArcFace-aligned crop (bilinear, black border).
        gm_image: ``(100, 100)`` uint8 grey crop for the original GestaltMatcher (FaceRecogNet):
            the same face region as ``image`` resampled to 100x100 (see :attr:`gm_transform`).
        transform: ``(2, 3)`` float64 photo -> 112x112 template similarity.
        landmarks_image: ``(478, 2)`` float64 MediaPipe mesh points ``(x, y)`` in photo pixels.
        landmarks_template: ``(478, 2)`` float64, the same points mapped by ``transform``.
        five_points: ``(5, 2)`` float64 ArcFace points in photo pixels, template order: image-left
            eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner.
        box: ``(x0, y0, x1, y1)`` bounding box of the mesh points in photo pixels (floats).
        quality: :class:`FaceQuality` numbers and warnings.
    """

    image: ImageU8
    gm_image: ImageU8
    transform: Affine
    landmarks_image: Points
    landmarks_template: Points
    five_points: Points
    box: tuple[float, float, float, float]
    quality: FaceQuality

    @property
    def gm_transform(self) -> Affine:
        """``(2, 3)`` photo -> 100x100 ``gm_image`` transform (``transform`` scaled by 100/112)."""
        out = gm_transform(self.transform)
        out.setflags(write=False)
        return out

    @property
    def area(self) -> float:
        """Area of :attr:`box` in square photo pixels (faces are sorted by it, largest first)."""
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@dataclass(frozen=True)
class AlignmentResult:
    """Every face found in one photo, largest first.

    Attributes:
        faces: aligned faces sorted by box area, largest first; ``()`` when none was found.
        image_size: ``(width, height)`` of the photo in pixels.
        message: why no face was returned, or a note on the search (e.g. more faces than
            ``max_faces``); ``None`` when there is nothing to say.
    """

    faces: tuple[AlignedFace, ...]
    image_size: tuple[int, int]
    message: str | None = None

    @property
    def primary(self) -> AlignedFace | None:
        """The largest face, or ``None`` if no face was found."""
        return self.faces[0] if self.faces else None


def readonly(arr: np.ndarray) -> np.ndarray:
    """Return ``arr`` itself marked read-only (callers pass arrays they own)."""
    arr.setflags(write=False)
    return arr


__all__ = ["AlignedFace", "AlignmentResult", "FaceQuality"]
