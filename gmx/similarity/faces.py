"""What the gallery side of a pair is drawn on: re-exported from the one gallery-picture policy in
:mod:`gmx.gallery` (photo only when allowed, composite of at least
:data:`~gmx.gallery.MIN_COMPOSITE_SUBJECTS` patients, else a template face)."""

from __future__ import annotations

from gmx.gallery import (
    MIN_COMPOSITE_SUBJECTS,
    FaceKind,
    GalleryFace,
    composite_face,
    gallery_face,
    template_face,
)

__all__ = [
    "MIN_COMPOSITE_SUBJECTS",
    "FaceKind",
    "GalleryFace",
    "composite_face",
    "gallery_face",
    "template_face",
]
