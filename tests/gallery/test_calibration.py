"""Calibration (leave-one-patient-out own vs other-syndrome distances) with hand-computed values.

Mean (over the 2 variants) cosine distances between the tiny gallery's images (see
``_gallery_fixtures``), worked by hand from the vectors:

    b1 (s2, B): a1 0.4, a2 0.2, b2 1.1, c1 1.6, c2 0.04  -> own 1.1, other 0.04
    b2 (s3, B): a1 0.5, a2 1.5, b1 1.1, c1 1.5, c2 0.9   -> own 1.1, other 0.5
    c1 (s4, C): a1 2.0, a2 1.0, b1 1.6, b2 1.5, c2 1.8   -> own 1.8, other 1.0
    c2 (s5, C): a1 0.2, a2 0.4, b1 0.04, b2 0.9, c1 1.8  -> own 1.8, other 0.04

A's two images are one patient (s1): A has no other patient, so a1/a2 are skipped (if the same
patient were not excluded, a1 and a2 would be each other's own match at distance 1.0).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from gmx.gallery import GalleryImage, calibrate, rank, to_service_json, wilson_interval
from tests.gallery._gallery_fixtures import EMBEDDINGS, IMAGES, QUERY, make_tiny, random_gallery

OWN = [1.1, 1.1, 1.8, 1.8]
OTHER = [0.04, 0.04, 0.5, 1.0]


def test_tiny_distributions_are_the_hand_computed_ones() -> None:
    g = make_tiny()
    before = g.embeddings.copy()
    c = calibrate(g)
    np.testing.assert_allclose(c.own_distances, OWN, atol=1e-6)
    np.testing.assert_allclose(c.other_distances, OTHER, atol=1e-6)
    assert (c.n_images, c.n_skipped_images, c.skipped_syndromes) == (4, 2, ("A",))
    assert c.gallery_name == "tiny" and c.unaffected_distances is None
    np.testing.assert_array_equal(g.embeddings, before)  # input not mutated
    assert not c.own_distances.flags.writeable


def test_statement_counts_ppv_and_wilson_interval() -> None:
    s = calibrate(make_tiny()).statement(1.1 + 1e-6)
    assert (s.n_own, s.n_own_within, s.n_other, s.n_other_within) == (4, 2, 4, 4)
    assert s.frac_own_within == 0.5 and s.frac_other_within == 1.0
    assert s.ppv == pytest.approx(2 / 6)
    # Wilson 95 % for 2 of 6 (textbook: 0.0968 - 0.7000).
    assert (s.ppv_low, s.ppv_high) == pytest.approx((0.09677, 0.70001), abs=1e-4)
    # median of the other-syndrome distances is (0.04 + 0.5) / 2 = 0.27 <= 1.1: flagged.
    assert s.not_closer_than_typical and s.null == "other_syndrome"
    assert "2 of 4" in s.sentence and "4 of 4" in s.sentence and "not closer" in s.sentence
    assert "probability" not in s.sentence.lower()


def test_statement_close_match_and_nothing_close() -> None:
    c = calibrate(make_tiny())
    s = c.statement(0.04 + 1e-6)
    assert (s.n_own_within, s.n_other_within, s.ppv) == (0, 2, 0.0)
    assert s.ppv_low == 0.0 and s.ppv_high == pytest.approx(3.8415 / 5.8415, abs=1e-4)
    assert not s.not_closer_than_typical  # 0.04 < median 0.27
    none = c.statement(0.0)
    assert none.ppv is None and (none.ppv_low, none.ppv_high) == (0.0, 1.0)
    assert "no PPV" in none.sentence
    with pytest.raises(ValueError):
        c.statement(math.nan)


def test_unaffected_cohort_is_counted_and_is_the_null() -> None:
    c = calibrate(make_tiny(), unaffected=[0.3, 0.6, 0.9])
    s = c.statement(0.6)
    assert (s.n_unaffected, s.n_unaffected_within) == (3, 2)
    assert s.frac_unaffected_within == pytest.approx(2 / 3)
    assert s.null == "unaffected" and s.not_closer_than_typical  # median 0.6
    assert not c.statement(0.5).not_closer_than_typical
    assert "unaffected" in s.sentence
    with pytest.raises(ValueError):
        calibrate(make_tiny(), unaffected=[[0.1]])


def test_same_patient_images_are_excluded() -> None:
    # A second photo of patient s2 (B), identical to b1: counted with the patient, it would be b1's
    # own match at distance 0; leave-one-patient-out keeps b1's own distance at 1.1 (b2).
    images = (*IMAGES, GalleryImage("b1bis", "s2", "B"))
    emb = np.concatenate([EMBEDDINGS, EMBEDDINGS[2:3]])
    c = calibrate(make_tiny(images=images, embeddings=emb))
    assert c.n_images == 5 and c.own_distances.min() == pytest.approx(1.1, abs=1e-6)
    np.testing.assert_allclose(c.own_distances, [1.1, 1.1, 1.1, 1.8, 1.8], atol=1e-6)


def test_same_distance_as_the_ranking() -> None:
    g = random_gallery(40, 3, 8, 4, seed=3)
    c = calibrate(g)
    own, other = [], []
    for i, im in enumerate(g.images):
        r = rank(g.embeddings[i], g, exclude_subjects=[im.subject_id])
        mine = [m.distance for m in r.syndromes if m.syndrome_id == im.syndrome_id]
        if not mine:
            continue
        own.append(mine[0])
        other.append(min(m.distance for m in r.syndromes if m.syndrome_id != im.syndrome_id))
    np.testing.assert_allclose(c.own_distances, sorted(own), atol=1e-12)
    np.testing.assert_allclose(c.other_distances, sorted(other), atol=1e-12)


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(5, 5)
    assert high == 1.0 and low == pytest.approx(5 / (5 + 1.959963984540054**2), abs=1e-9)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_service_json_carries_the_calibration_in_gmx_only() -> None:
    g = make_tiny()
    r = rank(QUERY, g)
    c = calibrate(g)
    plain = to_service_json(r, case_id="q", model_version="m", gallery_version="t1")
    cal = to_service_json(r, case_id="q", model_version="m", gallery_version="t1", calibration=c)
    assert {k: v for k, v in cal.items() if k != "gmx"} == {
        k: v for k, v in plain.items() if k != "gmx"
    }
    assert "calibration" not in plain["gmx"]
    json.dumps(cal)  # plain JSON types only
    block = cal["gmx"]["calibration"]
    assert block["n_images"] == 4 and block["skipped_syndromes"] == ["A"]
    stmts = [s["calibration"] for s in cal["gmx"]["syndromes"]]
    assert [s["distance"] for s in stmts] == [m.distance for m in r.syndromes]
    assert stmts[0] == c.statement(r.syndromes[0].distance).to_dict()
    with pytest.raises(ValueError):
        to_service_json(
            r,
            case_id="q",
            model_version="m",
            gallery_version="t1",
            calibration=calibrate(random_gallery(20, 2, 4, 3)),
        )


def test_demo_gallery_figures() -> None:
    from gmx.config import DEMO_GALLERY
    from gmx.gallery import load_gallery

    g = load_gallery(DEMO_GALLERY)
    c = calibrate(g)
    # Measured on the shipped demo (1150 images, 15 syndromes): 1145 counted, 5 skipped (one
    # single-patient syndrome); own median 0.204, other median 0.398, own nearer for 98.6 %; PPV 0.978
    # (0.962-0.987) at the median leave-one-out top-1 distance 0.204 (docs/gallery.md).
    assert c.n_images + c.n_skipped_images == len(g) and len(c.skipped_syndromes) == 1
    assert np.median(c.own_distances) < np.median(c.other_distances)
    top1 = float(np.median(np.minimum(c.own_distances, c.other_distances)))
    s = c.statement(top1)
    assert s.ppv is not None and s.ppv_low > 0.9 and not s.not_closer_than_typical
    assert c.statement(float(np.median(c.other_distances))).not_closer_than_typical


# --- issue 12: held-out queries, unaffected cohort, the flag rule, AUROC ---------------------------
def test_nearest_distances_are_the_smaller_of_own_and_other() -> None:
    c = calibrate(make_tiny())
    # b1 min(1.1, 0.04), b2 min(1.1, 0.5), c1 min(1.8, 1.0), c2 min(1.8, 0.04)
    np.testing.assert_allclose(c.nearest_distances, [0.04, 0.04, 0.5, 1.0], atol=1e-6)
    assert c.method == "leave-one-patient-out" and c.model_fingerprint == "f" * 64


def test_nearest_syndrome_distances_hand_computed() -> None:
    from gmx.gallery import nearest_syndrome_distances

    g = make_tiny()
    # QUERY is a1's direction in both variants (mean distance 0.0); c1 against the gallery without
    # c1: a1 2.0, a2 1.0, b1 1.6, b2 1.5, c2 1.8 -> 1.0.
    np.testing.assert_allclose(nearest_syndrome_distances(QUERY[None], g), [0.0], atol=1e-12)
    without_c1 = g.subset([0, 1, 2, 3, 5])
    np.testing.assert_allclose(
        nearest_syndrome_distances(EMBEDDINGS[4:5], without_c1), [1.0], atol=1e-6
    )
    with pytest.raises(ValueError, match="like the gallery"):
        nearest_syndrome_distances(QUERY, g)


def test_held_out_queries_hand_computed() -> None:
    from gmx.gallery import calibrate_held_out

    g = make_tiny()
    # QUERY's mean distances: a1 0.0, a2 1.0, b1 0.4, b2 0.5, c1 2.0, c2 0.2.
    # As B of patient s2 (b1's patient, left out): own b2 0.5, other a1 0.0.
    # As C of a new patient: own c2 0.2, other a1 0.0.
    # As A of patient s1: A's only patient is left out -> skipped. As Z (not in the gallery): skipped.
    q = np.stack([QUERY] * 4)
    c = calibrate_held_out(
        g, q, ["B", "C", "A", "Z"], subjects=["s2", "new", "s1", "z"], unaffected=[0.3]
    )
    np.testing.assert_allclose(c.own_distances, [0.2, 0.5], atol=1e-6)
    np.testing.assert_allclose(c.other_distances, [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(c.nearest_distances, [0.0, 0.0], atol=1e-6)
    assert (c.n_images, c.n_skipped_images, c.skipped_syndromes) == (2, 2, ("A", "Z"))
    assert c.method == "held-out"
    # without subjects nothing is left out: as B, own is b1 0.4
    c2 = calibrate_held_out(g, q[:1], ["B"])
    np.testing.assert_allclose(c2.own_distances, [0.4], atol=1e-6)
    s = c.statement(0.5)
    assert (s.n_own_within, s.n_other_within, s.n_unaffected_within) == (2, 2, 1)
    assert s.sentence.startswith("Of 2 held-out images") and s.method == "held-out"
    with pytest.raises(ValueError, match="labels"):
        calibrate_held_out(g, q, ["B"])
    with pytest.raises(ValueError, match="nothing to calibrate"):
        calibrate_held_out(g, q[:1], ["Z"])


def test_flag_rule_is_at_or_above_the_unaffected_median() -> None:
    from gmx.gallery import NOT_CLOSER_THAN_UNAFFECTED

    c = calibrate(make_tiny(), unaffected=[0.9, 0.3, 0.6])  # median 0.6
    assert c.typical_distance == 0.6 and c.null == "unaffected" and c.n_unaffected == 3
    at, below = c.statement(0.6), c.statement(0.599)
    assert at.not_closer_than_typical and not below.not_closer_than_typical
    assert at.typical_distance == 0.6 and "(median 0.600)" in at.sentence
    assert (below.n_unaffected_within, below.frac_unaffected_within) == (1, pytest.approx(1 / 3))
    assert "1 of 3 unaffected people (33%) were this close to some syndrome" in below.sentence
    message = c.not_closer_message(0.6)
    assert message is not None and message.startswith(NOT_CLOSER_THAN_UNAFFECTED)
    assert "0.600" in message and "3 unaffected" in message
    assert c.not_closer_message(0.599) is None
    # even cohort: the median is the mean of the middle two
    assert calibrate(make_tiny(), unaffected=[0.2, 0.4, 0.6, 0.8]).typical_distance == 0.5
    # no cohort: the null is the other-syndrome distances, median (0.04 + 0.5) / 2 = 0.27
    plain = calibrate(make_tiny())
    assert plain.typical_distance == pytest.approx(0.27) and plain.n_unaffected is None
    assert "different syndrome" in plain.not_closer_message(0.27)
    assert plain.not_closer_message(0.26) is None


def test_auroc_affected_vs_unaffected_hand_computed() -> None:
    # nearest [0.04, 0.04, 0.5, 1.0] vs unaffected [0.3, 0.6, 0.9]: pairs where the affected face is
    # closer: 3 + 3 + 2 + 0 = 8 of 12.
    c = calibrate(make_tiny(), unaffected=[0.3, 0.6, 0.9])
    assert c.auroc() == pytest.approx(8 / 12)
    # a tie counts half: unaffected [0.5] -> 1 + 1 + 0.5 + 0 = 2.5 of 4
    assert calibrate(make_tiny(), unaffected=[0.5]).auroc() == pytest.approx(2.5 / 4)
    assert calibrate(make_tiny()).auroc() is None


def test_service_json_face_flag() -> None:
    g = make_tiny()
    r = rank(QUERY, g)  # top-1 distance 0.0 (a1)
    far = calibrate(g, unaffected=[0.0, 0.0, 0.1])  # median 0.0: a face at 0.0 is not closer
    near = calibrate(g, unaffected=[0.3, 0.6, 0.9])
    block = to_service_json(r, case_id="q", model_version="m", gallery_version="t", calibration=far)
    cal = block["gmx"]["calibration"]
    assert cal["not_closer_than_typical"] is True and cal["typical_distance"] == 0.0
    assert cal["method"] == "leave-one-patient-out" and cal["null"] == "unaffected"
    assert cal["message"].startswith("This face is not closer to any syndrome")
    block = to_service_json(
        r, case_id="q", model_version="m", gallery_version="t", calibration=near
    )
    assert block["gmx"]["calibration"]["not_closer_than_typical"] is False
    assert block["gmx"]["calibration"]["message"] is None
    json.dumps(block)


def test_demo_gallery_ships_its_held_out_calibration() -> None:
    """The committed demo gallery stores the calibration that docs/calibration.json reports
    (``python -m gmx.demo calibrate --report docs/calibration.json``)."""
    from pathlib import Path

    from gmx.config import DEMO_GALLERY
    from gmx.gallery import calibration_summary, load_gallery

    c = load_gallery(DEMO_GALLERY).calibration
    assert c is not None and c.method == "held-out"
    recorded = json.loads(
        (Path(__file__).resolve().parents[2] / "docs" / "calibration.json").read_text("utf-8")
    )
    assert c.provenance == recorded["provenance"]
    assert (c.n_images, c.n_skipped_images, c.n_unaffected) == (
        recorded["n_images"],
        recorded["n_skipped_images"],
        recorded["distributions"]["unaffected"]["n"],
    )
    now = calibration_summary(c).to_dict()
    assert now["auroc_affected_vs_unaffected"] == pytest.approx(
        recorded["auroc_affected_vs_unaffected"], abs=1e-4
    )
    assert now["typical_distance"] == pytest.approx(recorded["typical_distance"], abs=1e-4)
    for key in ("own", "other", "nearest", "unaffected"):
        assert now["distributions"][key] == pytest.approx(recorded["distributions"][key], abs=1e-4)
    counts = ("distance", "n_own_within", "n_other_within", "n_unaffected_within")
    assert [[p[k] for k in counts] for p in now["ppv_curve"]] == [
        [p[k] for k in counts] for p in recorded["ppv_curve"]
    ]
    # the published shape: affected faces are closer to a syndrome than unaffected ones
    assert 0.7 < c.auroc() < 0.9
