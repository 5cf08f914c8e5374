"""The one gallery-picture policy: mean_face / composite_face with hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.gallery import (
    MIN_COMPOSITE_SUBJECTS,
    GalleryImage,
    Syndrome,
    composite_face,
    gallery_face,
    may_show_photos,
    mean_face,
    template_face,
)

from ._gallery_fixtures import make_tiny


def test_mean_face_rounds_half_to_even_and_needs_enough_patients() -> None:
    a = np.zeros((2, 112, 112, 3), np.uint8)
    a[1] = 101
    before = a.copy()
    assert mean_face(a, ["p", "q"], min_subjects=2)[0, 0, 0] == 50  # rint(50.5) -> 50
    assert mean_face(a[1:], ["p"], min_subjects=1)[5, 5, 2] == 101
    assert mean_face(a, ["p", "p"], min_subjects=2) is None  # one patient twice
    assert mean_face(a, ["p", "q"]) is None and MIN_COMPOSITE_SUBJECTS == 5
    out = mean_face(a, ["p", "q"], min_subjects=2)
    assert out is not None and not out.flags.writeable and np.array_equal(a, before)
    with pytest.raises(ValueError, match="one subject id each"):
        mean_face(a, ["p"], min_subjects=1)
    with pytest.raises(ValueError, match="min_subjects"):
        mean_face(a, ["p", "q"], min_subjects=0)


def _five_patient_gallery(photos_visible: bool):
    """Syndrome A: images 0-5 of patients s0..s4 (s0 twice); syndrome B: one patient."""
    photos = np.zeros((8, 112, 112, 3), np.uint8)
    for k in range(8):
        photos[k] = 10 * k
    images = tuple(
        GalleryImage(f"i{k}", f"s{max(k - 1, 0)}" if k < 6 else "solo", "A" if k < 6 else "B")
        for k in range(8)
    )
    rng = np.random.default_rng(0)
    return make_tiny(
        images=images,
        syndromes=(Syndrome("A", "Alpha"), Syndrome("B", "Beta")),
        embeddings=rng.standard_normal((8, 2, 2)).astype(np.float32),
        photos=photos,
        photos_visible=photos_visible,
    )


@pytest.mark.parametrize("visible", [True, False])
def test_composite_face_counts_patients_of_the_averaged_images(visible: bool) -> None:
    g = _five_patient_gallery(visible)
    full = composite_face(g, "A")
    assert full is not None and full[0, 0, 0] == 25  # mean(0, 10, ..., 50) = 25
    assert composite_face(g, "A", indices=[0, 2, 3, 4, 5])[0, 0, 0] == 28  # type: ignore[index]
    assert composite_face(g, "A", indices=[0, 1, 2, 3, 4]) is None  # s0 twice: 4 patients
    assert composite_face(g, "B") is None and composite_face(g, "B", min_subjects=1) is not None
    with pytest.raises(ValueError, match="are not 'A' images"):
        composite_face(g, "A", indices=[0, 6])


def test_gallery_face_never_shows_a_restricted_single_patient() -> None:
    g = _five_patient_gallery(False)
    solo = gallery_face(g, 7, show_photo=True)
    assert solo.kind == "template" and np.array_equal(solo.image, template_face())
    assert gallery_face(g, 1).kind == "composite"
    visible = _five_patient_gallery(True)
    assert gallery_face(visible, 7).kind == "photo"
    assert gallery_face(visible, 7, show_photo=False).kind == "template"


def test_may_show_photos_needs_stored_visible_photos_and_no_veto() -> None:
    visible, hidden = _five_patient_gallery(True), _five_patient_gallery(False)
    assert may_show_photos(visible) and may_show_photos(visible, True)
    assert not may_show_photos(visible, False)
    assert not any(may_show_photos(hidden, s) for s in (None, True, False))
    assert not may_show_photos(make_tiny())  # no photos stored
