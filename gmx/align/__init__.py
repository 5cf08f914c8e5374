"""Alignment stage: photo bytes -> faces aligned to the 112x112 ArcFace template.

* :func:`load_image` decodes any photo safely (EXIF orientation, colour modes, bombs).
* :class:`FaceAligner` (MediaPipe Tasks: BlazeFace pyramid + 478-point Face Landmarker) finds the
  faces and returns an :class:`AlignmentResult` of :class:`AlignedFace` records, largest first.
* :func:`estimate_similarity` / :func:`warp_to_template` are the geometry underneath.
* Landmark index groups (``FACE_OVAL``, ``LEFT_EYE``, ...) are MediaPipe mesh topology as data,
  for region masks. See ``docs/align.md`` for conventions.
"""

from __future__ import annotations

from gmx.align.aligner import (
    DEFAULT_MODEL_PATH,
    FaceAligner,
    align_image,
    five_points_from_mesh,
)
from gmx.align.geometry import (
    estimate_similarity,
    gm_transform,
    invert_affine,
    rotation_to_euler,
    transform_points,
    warp_to_template,
)
from gmx.align.io import ALPHA_BACKGROUND, DEFAULT_MAX_PIXELS, MIN_IMAGE_SIDE, load_image
from gmx.align.mesh import (
    FACE_OVAL,
    FIVE_POINT_GROUPS,
    LEFT_EYE,
    LEFT_EYEBROW,
    LEFT_IRIS,
    LIPS,
    LIPS_INNER,
    LIPS_OUTER,
    NOSE,
    NUM_LANDMARKS,
    RIGHT_EYE,
    RIGHT_EYEBROW,
    RIGHT_IRIS,
)
from gmx.align.results import AlignedFace, AlignmentResult, FaceQuality

__all__ = [
    "ALPHA_BACKGROUND",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MODEL_PATH",
    "FACE_OVAL",
    "FIVE_POINT_GROUPS",
    "LEFT_EYE",
    "LEFT_EYEBROW",
    "LEFT_IRIS",
    "LIPS",
    "LIPS_INNER",
    "LIPS_OUTER",
    "MIN_IMAGE_SIDE",
    "NOSE",
    "NUM_LANDMARKS",
    "RIGHT_EYE",
    "RIGHT_EYEBROW",
    "RIGHT_IRIS",
    "AlignedFace",
    "AlignmentResult",
    "FaceAligner",
    "FaceQuality",
    "align_image",
    "estimate_similarity",
    "five_points_from_mesh",
    "gm_transform",
    "invert_affine",
    "load_image",
    "rotation_to_euler",
    "transform_points",
    "warp_to_template",
]
