"""Every feature changes pixels inside its own region and (almost) nothing outside it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gmx.synth import mesh
from gmx.synth.features import FEATURES, get_feature
from gmx.synth.generate import DIFF_THRESHOLD, make_face
from gmx.synth.identity import sample_identity
from gmx.synth.sources import CANVAS
from gmx.synth.syndromes import SyntheticSyndrome

EYES = [*mesh.RIGHT_EYE, *mesh.LEFT_EYE, *range(468, 478), *mesh.RIGHT_BROW, *mesh.LEFT_BROW]
BROWS = [*mesh.RIGHT_BROW, *mesh.LEFT_BROW, 9, 8, 168]
LIPS = [*mesh.LIPS_UPPER_OUTER, *mesh.LIPS_LOWER_OUTER]
LOWER_OVAL = [58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288]
NOSE = [1, 2, 4, 5, 64, 294, 98, 327, 48, 278, 129, 358, 195]
CHEEKS = [234, 93, 132, 58, 454, 323, 361, 288, 127, 356, 50, 280, 205, 425, 172, 397]

#: Landmarks whose hull (plus a margin of 0.3 IOD) bounds what each feature may change.
REGION: dict[str, list[int]] = {
    "hypertelorism": EYES,
    "hypotelorism": EYES,
    "downslanted_pf": EYES,
    "upslanted_pf": EYES,
    "short_pf": EYES,
    "ptosis": EYES,
    "synophrys": BROWS,
    "thick_eyebrow": BROWS,
    "long_philtrum": [mesh.SUBNASALE, *LIPS, *LOWER_OVAL],
    "thin_upper_lip": [mesh.SUBNASALE, *LIPS],
    "thick_lower_lip": [*LIPS, mesh.CHIN],
    "wide_mouth": LIPS,
    "narrow_mouth": LIPS,
    "micrognathia": [*mesh.LIPS_LOWER_OUTER, *LOWER_OVAL],
    "broad_nasal_tip": NOSE,
    "full_cheeks": CHEEKS,
}


def test_every_feature_has_a_region_and_an_hpo_id():
    assert set(REGION) == {f.key for f in FEATURES}
    for f in FEATURES:
        assert f.hpo_id.startswith("HP:") and len(f.hpo_id) == 10
        assert f.shape is not None or f.texture is not None


#: Margin around the region, in IODs: lifting the chin also stretches the neck just below it.
MARGIN: dict[str, float] = {"micrognathia": 0.5}


def _region(points: np.ndarray, keys: list[int], margin_iod: float = 0.3) -> np.ndarray:
    right, left = mesh.eye_centres(points)
    margin = int(np.rint(margin_iod * np.linalg.norm(left - right)))
    hull = cv2.convexHull(np.round(points[keys]).astype(np.int32))
    m = np.zeros((CANVAS, CANVAS), np.uint8)
    cv2.fillConvexPoly(m, hull, 1)
    return cv2.dilate(m, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)).astype(bool)


@pytest.mark.parametrize("key", [f.key for f in FEATURES])
def test_feature_changes_its_region_only(renderer, tiny_bank, key):
    feat = get_feature(key)
    syn = SyntheticSyndrome("SYN:9999", "test", (key,), 1)
    idt = sample_identity(tiny_bank, np.random.default_rng(3))
    face = make_face(renderer, syn, idt, {key: 1.0}, texture_seed=1)
    diff = np.abs(face.canvas.astype(int) - face.reference.astype(int)).max(axis=2)
    changed = diff > DIFF_THRESHOLD
    assert changed.sum() >= 40, f"{key} is invisible ({changed.sum()} pixels changed)"
    # The ground-truth mask covers every changed pixel.
    assert not (changed & ~face.mask).any()
    margin = MARGIN.get(key, 0.3)
    region = _region(idt.shape, REGION[key], margin) | _region(face.shape, REGION[key], margin)
    outside = changed & ~region
    assert outside.sum() <= 0.05 * changed.sum(), (
        f"{key}: {outside.sum()} of {changed.sum()} outside"
    )
    # The mask itself is local: well under half of the canvas.
    assert face.mask.mean() < 0.3
    del feat


@pytest.mark.parametrize("key", [f.key for f in FEATURES if f.shape is not None])
def test_shape_features_are_pure_and_vanish_at_zero_strength(tiny_bank, key):
    feat = get_feature(key)
    pts = np.concatenate([tiny_bank.mean_shape, mesh.rings(tiny_bank.mean_shape)])
    before = pts.copy()
    out = feat.shape(pts, 1.0)
    np.testing.assert_array_equal(pts, before)
    assert out.shape == pts.shape and np.isfinite(out).all()
    assert np.abs(out - pts).max() > 0.5
    np.testing.assert_allclose(feat.shape(pts, 0.0), pts, atol=1e-9)


def test_stronger_features_change_more(renderer, tiny_bank):
    idt = sample_identity(tiny_bank, np.random.default_rng(4))
    syn = SyntheticSyndrome("SYN:9999", "test", ("hypertelorism",), 1)
    weak = make_face(renderer, syn, idt, {"hypertelorism": 0.7}, 0)
    strong = make_face(renderer, syn, idt, {"hypertelorism": 1.3}, 0)

    def amount(f):
        return np.abs(f.canvas.astype(int) - f.reference.astype(int)).sum()

    assert amount(strong) > 1.3 * amount(weak)


def test_unknown_feature_raises():
    with pytest.raises(ValueError, match="unknown feature"):
        get_feature("third_eye")
