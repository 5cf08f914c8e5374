"""Privacy: photos only when allowed; composites of enough patients; a neutral template otherwise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gmx.constants import ARCFACE_TEMPLATE
from gmx.similarity import composite_face, gallery_face, template_face

from .conftest import make_gallery, noisy_faces


@pytest.fixture(scope="module")
def restricted(tta_setup):
    """8 images: syndrome A from 5 patients (one with two photos), syndrome B from 2; photos hidden."""
    subjects = ["a1", "a1", "a2", "a3", "a4", "a5", "b1", "b2"]
    syndromes = ["A"] * 6 + ["B"] * 2
    photos = noisy_faces(tta_setup.face, 8, seed=3)
    return make_gallery(
        tta_setup.ensemble, photos, subjects=subjects, syndromes=syndromes, photos_visible=False
    )


def test_visible_photos_are_shown_unless_the_configuration_forbids(tta_setup):
    gallery = tta_setup.gallery
    assert gallery.photos_visible
    face = gallery_face(gallery, 2)
    assert face.kind == "photo" and np.array_equal(face.image, gallery.photos[2])
    assert not face.image.flags.writeable
    hidden = gallery_face(gallery, 2, show_photo=False)
    assert hidden.kind != "photo"


def test_restricted_photos_give_a_composite_of_enough_patients(restricted):
    face = gallery_face(restricted, 3, show_photo=True)  # the caller cannot override the gallery
    assert face.kind == "composite" and "restricted" in face.caption
    want = np.rint(restricted.photos[:6].astype(np.float64).mean(0)).astype(np.uint8)
    np.testing.assert_array_equal(face.image, want)
    np.testing.assert_allclose(face.landmarks, ARCFACE_TEMPLATE)
    assert "a3" in face.caption and "i3" not in face.caption  # patient id, not the photo id


def test_too_few_patients_or_no_photos_give_the_template(restricted):
    few = gallery_face(restricted, 7)
    assert few.kind == "template" and "restricted" in few.caption
    assert composite_face(restricted, "B") is None
    assert composite_face(restricted, "B", min_subjects=2) is not None
    bare = dataclasses.replace(restricted, photos=None)
    none = gallery_face(bare, 0)
    assert none.kind == "template" and "not stored" in none.caption
    np.testing.assert_array_equal(none.image, template_face())


def test_template_face_is_deterministic_and_has_no_patient_data(restricted):
    a, b = template_face(), template_face()
    assert a.shape == (112, 112, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 3  # an actual drawing
    assert template_face(224).shape == (224, 224, 3)
    with pytest.raises(ValueError):
        template_face(8)
    with pytest.raises(ValueError):
        composite_face(restricted, "A", min_subjects=0)
