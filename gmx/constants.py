"""Constants written once (insightface ``face_align.py`` / GestaltMatcher-Arc conventions)."""

from __future__ import annotations

import numpy as np

#: Side of the ArcFace-aligned face, in pixels.
TEMPLATE_SIZE: int = 112

#: The five ArcFace reference points in the 112x112 template, ``(x, y)`` pixels, in this order:
#: left eye, right eye, nose tip, left mouth corner, right mouth corner. "Left" is the image's left
#: (the subject's right).
ARCFACE_TEMPLATE: np.ndarray = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_TEMPLATE.setflags(write=False)

#: Side of the original GestaltMatcher (FaceRecogNet) grey input.
GM_INPUT_SIZE: int = 100

#: Input normalisation of every iResNet: ``(x / 255 - MEAN) / STD`` gives ``[-1, 1]``.
NORM_MEAN: float = 0.5
NORM_STD: float = 0.5

#: Side of the last iResNet feature map at 112x112 input (7x7 cells).
FEATURE_GRID: int = 7

#: Test-time augmentation order of GestaltMatcher-Arc, inside each model: (flip, grey).
TTA_ORDER: tuple[tuple[bool, bool], ...] = (
    (False, False),
    (False, True),
    (True, False),
    (True, True),
)

#: GestaltMatcher service v1.1.2: ``gestalt_score = GESTALT_SCORE_OFFSET - distance``.
GESTALT_SCORE_OFFSET: float = 1.3

#: GestaltMatcher service v1.1.2 drops gallery matches at or below this cosine distance.
NEAR_DUPLICATE_DISTANCE: float = 0.3

__all__ = [
    "ARCFACE_TEMPLATE",
    "FEATURE_GRID",
    "GESTALT_SCORE_OFFSET",
    "GM_INPUT_SIZE",
    "NEAR_DUPLICATE_DISTANCE",
    "NORM_MEAN",
    "NORM_STD",
    "TEMPLATE_SIZE",
    "TTA_ORDER",
]
