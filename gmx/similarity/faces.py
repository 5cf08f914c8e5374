"""What the gallery side of a pair is drawn on: the photo, a syndrome composite, or a template face.

Privacy: a gallery photo is shown only when the gallery allows it (:attr:`Gallery.photos_visible`) and
the caller does not forbid it (``GmxConfig.photos_visible``). Otherwise the gallery side is drawn on
the syndrome's composite face (the pixel mean of its aligned photos, only when they come from at least
:data:`MIN_COMPOSITE_SUBJECTS` different patients, so that no single patient's face shows through), or,
when the photos are not stored or too few patients have them, on a neutral outline face drawn from the
ArcFace template points. All three are in the 112x112 template frame, so the maps line up with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from gmx._typing import ImageU8, Points
from gmx.constants import ARCFACE_TEMPLATE, TEMPLATE_SIZE
from gmx.gallery import Gallery

#: Fewest distinct patients whose photos may be averaged into a displayed composite.
MIN_COMPOSITE_SUBJECTS = 5

FaceKind = Literal["photo", "composite", "template"]


@dataclass(frozen=True, eq=False)
class GalleryFace:
    """The picture the gallery side of a pair is drawn on.

    Attributes:
        image: ``(112, 112, 3)`` uint8 RGB, read-only, in the ArcFace template frame.
        kind: ``"photo"`` (the patient's own aligned photo), ``"composite"`` (mean of the
            syndrome's photos) or ``"template"`` (neutral outline face).
        landmarks: ``(5, 2)`` float64 ``(x, y)`` template points (eyes, nose tip, mouth corners)
            to draw on composites and templates; every aligned photo is warped onto them.
        caption: one line for the user saying what is shown and why.
    """

    image: ImageU8
    kind: FaceKind
    landmarks: Points
    caption: str


def template_face(size: int = TEMPLATE_SIZE) -> ImageU8:
    """A neutral outline face on the ArcFace template points (no patient data), ``(size, size, 3)``."""
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    f = size / TEMPLATE_SIZE
    img = np.full((size, size, 3), 236, dtype=np.uint8)
    line = (120, 120, 120)
    pts = ARCFACE_TEMPLATE * f
    eye_l, eye_r, nose, mouth_l, mouth_r = pts
    cx = float((eye_l[0] + eye_r[0]) / 2)

    def p(x: float, y: float) -> tuple[int, int]:
        return round(x), round(y)

    cv2.ellipse(img, p(cx, 62 * f), p(40 * f, 53 * f), 0, 0, 360, (226, 214, 205), -1, cv2.LINE_AA)
    cv2.ellipse(img, p(cx, 62 * f), p(40 * f, 53 * f), 0, 0, 360, line, 1, cv2.LINE_AA)
    for eye in (eye_l, eye_r):
        cv2.ellipse(img, p(*eye), p(8 * f, 3.5 * f), 0, 0, 360, line, 1, cv2.LINE_AA)
        cv2.circle(img, p(*eye), max(1, round(2 * f)), line, -1, cv2.LINE_AA)
        cv2.ellipse(
            img, p(eye[0], eye[1] - 8 * f), p(10 * f, 4 * f), 0, 200, 340, line, 1, cv2.LINE_AA
        )
    cv2.line(img, p(cx, eye_l[1] + 2 * f), p(nose[0], nose[1] - 2 * f), line, 1, cv2.LINE_AA)
    cv2.ellipse(img, p(*nose), p(7 * f, 3 * f), 0, 0, 180, line, 1, cv2.LINE_AA)
    mid = (mouth_l + mouth_r) / 2
    half = float(np.linalg.norm(mouth_r - mouth_l) / 2)
    cv2.ellipse(img, p(*mid), p(half, 4 * f), 0, 0, 180, line, 1, cv2.LINE_AA)
    cv2.line(img, p(*mouth_l), p(*mouth_r), line, 1, cv2.LINE_AA)
    img.setflags(write=False)
    return img


def composite_face(
    gallery: Gallery, syndrome_id: str, *, min_subjects: int = MIN_COMPOSITE_SUBJECTS
) -> ImageU8 | None:
    """Pixel mean of a syndrome's aligned gallery photos, or ``None``.

    ``None`` when the gallery stores no photos or they come from fewer than ``min_subjects``
    distinct patients.

    Returns:
        ``(112, 112, 3)`` uint8 RGB, read-only.
    """
    if min_subjects < 1:
        raise ValueError(f"min_subjects must be >= 1, got {min_subjects}")
    if gallery.photos is None:
        return None
    idx = gallery.images_of(syndrome_id)
    subjects = {gallery.images[int(i)].subject_id for i in idx}
    if len(subjects) < min_subjects:
        return None
    mean = gallery.photos[idx].astype(np.float64).mean(axis=0)
    out = np.clip(np.rint(mean), 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def gallery_face(
    gallery: Gallery,
    index: int,
    *,
    show_photo: bool | None = None,
    min_subjects: int = MIN_COMPOSITE_SUBJECTS,
) -> GalleryFace:
    """The picture for the gallery side of a pair with image ``index``.

    Args:
        gallery: the gallery.
        index: the gallery image.
        show_photo: the caller's setting (``GmxConfig.photos_visible``): ``False`` forbids photos,
            ``None``/``True`` defer to the gallery. It can never show photos the gallery restricts.
        min_subjects: see :func:`composite_face`.
    """
    if not 0 <= index < len(gallery):
        raise ValueError(f"index {index} out of range for {len(gallery)} gallery images")
    im = gallery.images[index]
    landmarks = np.array(ARCFACE_TEMPLATE, dtype=np.float64)
    allowed = gallery.photos is not None and gallery.photos_visible and show_photo is not False
    if allowed:
        photo = np.array(gallery.photos[index])
        photo.setflags(write=False)
        return GalleryFace(
            photo, "photo", landmarks, f"patient {im.subject_id}, photo {im.image_id}"
        )
    name = gallery.syndromes[im.syndrome_id].name
    composite = composite_face(gallery, im.syndrome_id, min_subjects=min_subjects)
    if composite is not None:
        return GalleryFace(
            composite,
            "composite",
            landmarks,
            f"gallery photos are restricted: maps of patient {im.subject_id} drawn on the composite "
            f"face of {name}",
        )
    why = "not stored" if gallery.photos is None else "restricted"
    return GalleryFace(
        template_face(),
        "template",
        landmarks,
        f"gallery photos are {why}: maps of patient {im.subject_id} drawn on a template face",
    )


__all__ = [
    "MIN_COMPOSITE_SUBJECTS",
    "FaceKind",
    "GalleryFace",
    "composite_face",
    "gallery_face",
    "template_face",
]
