"""Landmark index groups of MediaPipe's 478-point face mesh (data, not code).

Every group below was derived once from the connection lists of MediaPipe Tasks
(``mediapipe.tasks.python.vision.FaceLandmarksConnections``, mediapipe 1.2.3, Apache-2.0) by walking
each closed loop of edges; ``tests/align/test_align_mesh.py`` re-derives them and checks they still
match. Indices refer to ``AlignedFace.landmarks_image`` / ``landmarks_template`` rows.

Side convention: MediaPipe names sides **anatomically** (the subject's left/right). For an upright,
unmirrored photo the subject's right eye (``RIGHT_EYE``, iris centre 468) is on the **image's left**,
and is the first ArcFace point. Names ending in ``_POLYGON`` or loops marked "loop" are closed
polygons in walking order (ready for ``cv2.fillPoly``); the others are unordered index sets.
"""

from __future__ import annotations

#: Number of points of the mesh with irises (468 face points + 2 x 5 iris points).
NUM_LANDMARKS: int = 478

#: Face outline, loop of 36 points, starting at the top of the forehead (10), going over the
#: image-left side (the subject's right cheek, 234) to the chin (152) and back up.
FACE_OVAL: tuple[int, ...] = (
    10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148,
    152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338,
)  # fmt: skip

#: Subject's right eye (image left), eyelid loop of 16 points from the outer corner (33).
RIGHT_EYE: tuple[int, ...] = (
    33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7,
)  # fmt: skip

#: Subject's left eye (image right), eyelid loop of 16 points from the outer corner (263).
LEFT_EYE: tuple[int, ...] = (
    263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249,
)  # fmt: skip

#: Subject's right iris: centre first, then its 4-point ring (loop).
RIGHT_IRIS: tuple[int, ...] = (468, 469, 470, 471, 472)

#: Subject's left iris: centre first, then its 4-point ring (loop).
LEFT_IRIS: tuple[int, ...] = (473, 474, 475, 476, 477)

#: Outer lip contour, loop of 20 points from the upper-lip midline (0) over the image-left corner (61).
LIPS_OUTER: tuple[int, ...] = (
    0, 37, 39, 40, 185, 61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267,
)  # fmt: skip

#: Inner lip contour (mouth opening), loop of 20 points from the upper midline (13).
LIPS_INNER: tuple[int, ...] = (
    13, 82, 81, 80, 191, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312,
)  # fmt: skip

#: Every lip point (outer then inner contour). Fill ``LIPS_OUTER`` for a mouth-region mask.
LIPS: tuple[int, ...] = LIPS_OUTER + LIPS_INNER

#: Subject's right eyebrow (image left) as a closed polygon: upper edge outer->inner, then lower
#: edge inner->outer (MediaPipe lists the two edges as separate paths; joined here at their ends).
RIGHT_EYEBROW: tuple[int, ...] = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)

#: Subject's left eyebrow (image right), same construction as ``RIGHT_EYEBROW``.
LEFT_EYEBROW: tuple[int, ...] = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)

#: Nose points of MediaPipe's nose connections (bridge 168 -> tip 4/1 -> base, and both alae).
#: An unordered set: use its convex hull for a region mask.
NOSE: tuple[int, ...] = (
    1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294,
    326, 327, 344, 440,
)  # fmt: skip

#: Mesh points used for the five ArcFace points, in template order (image-left eye first).
#: Eyes are the mean of each iris group; nose tip is landmark 4 (it lands ~1 px from the template's
#: nose point where landmark 1 lands ~2.4 px below it, measured on 76 frontal faces); mouth corners
#: are the outer lip corners 61 (image left) and 291.
FIVE_POINT_GROUPS: tuple[tuple[int, ...], ...] = (RIGHT_IRIS, LEFT_IRIS, (4,), (61,), (291,))

#: Cheek points at the widest part of the face oval (image left, image right): face width.
FACE_WIDTH_PAIR: tuple[int, int] = (234, 454)

__all__ = [
    "FACE_OVAL",
    "FACE_WIDTH_PAIR",
    "FIVE_POINT_GROUPS",
    "LEFT_EYE",
    "LEFT_EYEBROW",
    "LEFT_IRIS",
    "LIPS",
    "LIPS_INNER",
    "LIPS_OUTER",
    "NOSE",
    "NUM_LANDMARKS",
    "RIGHT_EYE",
    "RIGHT_EYEBROW",
    "RIGHT_IRIS",
]
