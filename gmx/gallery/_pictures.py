"""The one gallery-picture policy: which face a page may show for a gallery image or a syndrome.

Every page and library function that shows gallery pixels goes through here (the Similarity page's
gallery side, the Syndromes page's composites, :func:`gmx.aggregate.summarize`).

* A gallery **photo** is shown only when the gallery allows it (:attr:`Gallery.photos_visible`) and
  the caller does not forbid it (``GmxConfig.photos_visible``).
* A **composite** (the pixel mean of aligned photos) is made only from at least
  :data:`MIN_COMPOSITE_SUBJECTS` different patients, so that no single patient's face shows through;
  it is the fallback when photos are restricted and the background of syndrome-level maps.
* Otherwise a neutral **template** face drawn from the ArcFace template points (no patient data).

All three are in the 112x112 template frame, so maps line up with them. Photos are uint8 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from gmx._typing import ImageU8, Points
from gmx.constants import ARCFACE_TEMPLATE, TEMPLATE_SIZE
from gmx.gallery._model import Gallery

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


def mean_face(
    photos: np.ndarray,
    subject_ids: Sequence[str],
    *,
    min_subjects: int = MIN_COMPOSITE_SUBJECTS,
) -> ImageU8 | None:
    """Pixel mean of aligned photos, or ``None`` when they come from too few patients.

    Alignment (similarity transform to the ArcFace template) already normalises position, scale and
    roll, so the plain mean is a composite face.

    Args:
        photos: ``(n, 112, 112, 3)`` uint8 RGB aligned faces (not modified).
        subject_ids: the patient of each photo (``n`` ids).
        min_subjects: fewest distinct patients (default :data:`MIN_COMPOSITE_SUBJECTS`).

    Returns:
        ``(112, 112, 3)`` uint8 RGB, read-only (rounded half to even), or ``None`` when the photos
        come from fewer than ``min_subjects`` distinct patients.

    Raises:
        ValueError: ``min_subjects`` < 1, or photos and ids that do not fit.
    """
    if min_subjects < 1:
        raise ValueError(f"min_subjects must be >= 1, got {min_subjects}")
    arr = np.asarray(photos)
    if arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) != len(subject_ids):
        raise ValueError(
            f"photos must be (n, H, W, 3) with one subject id each, got {arr.shape} and "
            f"{len(subject_ids)} ids"
        )
    if len(set(subject_ids)) < min_subjects:
        return None
    out = np.clip(np.rint(arr.mean(axis=0, dtype=np.float64)), 0, 255).astype(np.uint8)
    out.setflags(write=False)
    return out


def composite_face(
    gallery: Gallery,
    syndrome_id: str,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
    min_subjects: int = MIN_COMPOSITE_SUBJECTS,
) -> ImageU8 | None:
    """A syndrome's composite face from its stored gallery photos, or ``None``.

    ``None`` when the gallery stores no photos or they come from fewer than ``min_subjects``
    distinct patients (whether the photos themselves are visible does not matter: a composite of
    enough patients is what is shown *instead* of restricted photos).

    Args:
        gallery: the gallery.
        syndrome_id: the syndrome.
        indices: average only these gallery images (e.g. those a batch run explained); each must be
            labelled ``syndrome_id``. Default: all of the syndrome's images.
        min_subjects: see :func:`mean_face`.

    Returns:
        ``(112, 112, 3)`` uint8 RGB, read-only.

    Raises:
        ValueError: ``min_subjects`` < 1, or an index of another syndrome.
        KeyError: an unknown syndrome.
    """
    if min_subjects < 1:
        raise ValueError(f"min_subjects must be >= 1, got {min_subjects}")
    own = gallery.images_of(syndrome_id)
    idx = own if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if indices is not None and not np.isin(idx, own).all():
        raise ValueError(
            f"indices {idx[~np.isin(idx, own)][:5].tolist()} are not {syndrome_id!r} images"
        )
    if gallery.photos is None or idx.size == 0:
        return None
    subjects = [gallery.images[int(i)].subject_id for i in idx]
    return mean_face(gallery.photos[idx], subjects, min_subjects=min_subjects)


def may_show_photos(gallery: Gallery, show_photo: bool | None = None) -> bool:
    """Whether the gallery's own photos may be shown: stored, allowed by the gallery
    (:attr:`Gallery.photos_visible`) and not forbidden by the caller (``GmxConfig.photos_visible``:
    ``False`` forbids, ``None``/``True`` defer to the gallery)."""
    return gallery.photos is not None and gallery.photos_visible and show_photo is not False


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
    if may_show_photos(gallery, show_photo):
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
    "may_show_photos",
    "mean_face",
    "template_face",
]
