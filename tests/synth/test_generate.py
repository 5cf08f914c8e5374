"""Ground-truth masks, photo rendering and the real alignment pipeline."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from gmx.constants import ARCFACE_TEMPLATE, TEMPLATE_SIZE
from gmx.synth.generate import (
    SPILL_THRESHOLD,
    make_face,
    photograph,
    sample_face,
    template_homography,
)
from gmx.synth.identity import sample_identity
from gmx.synth.render import PHOTO_SIZE, render_photo, sample_photo_params, warp_mask
from gmx.synth.sources import CANONICAL_FIVE
from gmx.synth.syndromes import SYNDROMES, UNAFFECTED, SyntheticSyndrome


def test_unaffected_face_has_empty_mask_and_equals_reference(renderer):
    face = sample_face(renderer, UNAFFECTED, np.random.default_rng(0))
    assert not face.mask.any()
    np.testing.assert_array_equal(face.canvas, face.reference)


@pytest.mark.parametrize("syndrome", SYNDROMES, ids=lambda s: s.syndrome_id)
def test_mask_covers_changed_pixels_in_template_coordinates(renderer, syndrome):
    face = sample_face(renderer, syndrome, np.random.default_rng(11))
    params = sample_photo_params(np.random.default_rng(12))
    _, h = render_photo(face.canvas, params)
    # Any photo -> template similarity; here the one that maps the canonical five points.
    five = cv2.perspectiveTransform(CANONICAL_FIVE[None].astype(np.float64), h)[0]
    t, _ = cv2.estimateAffinePartial2D(five, ARCFACE_TEMPLATE)
    full = template_homography(t, h)
    a = cv2.warpPerspective(
        face.canvas, full, (TEMPLATE_SIZE, TEMPLATE_SIZE), flags=cv2.INTER_LINEAR
    )
    b = cv2.warpPerspective(
        face.reference, full, (TEMPLATE_SIZE, TEMPLATE_SIZE), flags=cv2.INTER_LINEAR
    )
    changed = np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 10
    mask = cv2.dilate(
        warp_mask(face.mask, full, TEMPLATE_SIZE).astype(np.uint8), np.ones((3, 3), np.uint8)
    )
    assert changed.sum() > 10
    assert not (changed & ~mask.astype(bool)).any()


def test_render_photo_is_deterministic_and_pure(renderer):
    face = sample_face(renderer, SYNDROMES[0], np.random.default_rng(1))
    canvas = face.canvas.copy()
    params = sample_photo_params(np.random.default_rng(2))
    p1, h1 = render_photo(face.canvas, params)
    p2, h2 = render_photo(face.canvas, params)
    np.testing.assert_array_equal(canvas, face.canvas)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(h1, h2)
    assert p1.shape == (PHOTO_SIZE, PHOTO_SIZE, 3) and p1.dtype == np.uint8
    other, _ = render_photo(face.canvas, sample_photo_params(np.random.default_rng(3)))
    assert not np.array_equal(p1, other)


def test_render_photo_rejects_wrong_canvas():
    params = sample_photo_params(np.random.default_rng(0))
    with pytest.raises(ValueError, match="canvas"):
        render_photo(np.zeros((10, 10, 3), np.uint8), params)


def test_photograph_aligns_with_the_real_pipeline(renderer, aligner):
    syn = SyntheticSyndrome("SYN:9999", "test", ("hypertelorism", "wide_mouth"), 1)
    face = sample_face(renderer, syn, np.random.default_rng(7))
    img, why = photograph(face, sample_photo_params(np.random.default_rng(8)), aligner)
    assert why is None and img is not None
    assert img.image.shape == (112, 112, 3) and img.image.dtype == np.uint8
    assert img.mask.shape == (112, 112) and img.mask.dtype == bool
    assert 0.02 < img.mask.mean() < 0.5
    # The canonical eyes, carried through photo and alignment, land near the template's eyes.
    eyes = cv2.perspectiveTransform(
        CANONICAL_FIVE[None, :2], template_homography(img.transform, img.homography)
    )[0]
    if img.params.mirror:
        eyes = eyes[::-1]
    assert np.abs(eyes - ARCFACE_TEMPLATE[:2]).max() < 6.0


@pytest.mark.parametrize(
    "features", [("hypertelorism",), ("hypotelorism",), ("micrognathia",)], ids="+".join
)
def test_photograph_crop_does_not_depend_on_the_features(renderer, aligner, features):
    """Features that move the alignment landmarks must not move the crop (label leak).

    The patient's photo is cropped with the transform of its reference photo (same identity and
    photo conditions, no features): the transform is the one of the same patient without features,
    and outside the mask the aligned image differs from it by at most ``SPILL_THRESHOLD``.
    """
    syn = SyntheticSyndrome("SYN:9999", "test", features, 1)
    face = sample_face(renderer, syn, np.random.default_rng(5))
    plain = dataclasses.replace(face, canvas=face.reference, mask=np.zeros_like(face.mask))
    for k in range(3):
        params = sample_photo_params(np.random.default_rng(100 + k))
        img, _ = photograph(face, params, aligner)
        ref, _ = photograph(plain, params, aligner)
        assert img is not None and ref is not None
        np.testing.assert_array_equal(img.transform, ref.transform)
        diff = np.abs(img.image.astype(int) - ref.image.astype(int)).max(axis=2)
        assert (diff > 20).sum() > 20  # the features changed the face ...
        assert diff[~img.mask].max(initial=0) <= SPILL_THRESHOLD  # ... only inside the mask
        assert not ref.mask.any()


def test_photograph_reports_no_face(renderer, aligner):
    face = sample_face(renderer, UNAFFECTED, np.random.default_rng(0))
    grey = np.full_like(face.canvas, 128)
    blank = dataclasses.replace(face, canvas=grey, reference=grey)
    img, why = photograph(blank, sample_photo_params(np.random.default_rng(0)), aligner)
    assert img is None and why


def test_make_face_requires_all_strengths(renderer, tiny_bank):
    idt = sample_identity(tiny_bank, np.random.default_rng(0))
    with pytest.raises(ValueError, match="strengths"):
        make_face(renderer, SYNDROMES[0], idt, {}, 0)
