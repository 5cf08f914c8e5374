"""Region masks from hand-placed landmarks, region mass, and exact Shapley values (hand-computed)."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.align import mesh as amesh
from gmx.regions import (
    NO_REGION,
    REGIONS,
    RegionMasks,
    masked_faces,
    region_masks,
    region_mass,
    region_shapley,
    shapley_from_table,
    subsets,
)
from gmx.synth import mesh as smesh


def _square_loop(lo: int, hi: int, n: int) -> np.ndarray:
    """``n`` points going round the square ``[lo, hi]^2`` in order (n divisible by 4)."""
    k = n // 4
    t = np.linspace(lo, hi, k, endpoint=False)
    return np.concatenate([
        np.stack([t, np.full(k, lo)], 1),
        np.stack([np.full(k, hi), t], 1),
        np.stack([hi + lo - t, np.full(k, hi)], 1),
        np.stack([np.full(k, lo), hi + lo - t], 1),
    ])  # fmt: skip


def synthetic_face() -> np.ndarray:
    """A face with known geometry, every region an axis-aligned rectangle (template pixels):

    oval 10..101 square; brows y 30/32, x 30..44 and 68..82; eyes 30..44 / 68..82 x 40..46; nose
    50..62 x 50..70 (nose base at y 70); upper lip 40..72 x 76..80 (outer at 76, inner at 80);
    lower lip outer at y 86; mouth corners at y 76.
    """
    p = np.full((amesh.NUM_LANDMARKS, 2), 56.0)
    p[list(amesh.FACE_OVAL)] = _square_loop(10, 101, len(amesh.FACE_OVAL))
    for brow, (x0, x1) in ((amesh.RIGHT_EYEBROW, (30, 44)), (amesh.LEFT_EYEBROW, (68, 82))):
        xs = np.linspace(x0, x1, 5)
        p[list(brow[:5])] = np.stack([xs, np.full(5, 30.0)], 1)
        p[list(brow[5:])] = np.stack([xs[::-1], np.full(5, 32.0)], 1)
    for eye, corners in (
        (amesh.RIGHT_EYE, [(30, 40), (44, 40), (44, 46), (30, 46)]),
        (amesh.LEFT_EYE, [(82, 40), (68, 40), (68, 46), (82, 46)]),
    ):
        p[list(eye)] = np.repeat(np.array(corners, float), 4, axis=0)
    assert tuple(p[133]) == (44, 46) and tuple(p[362]) == (68, 46)  # inner eye corners
    p[list(amesh.NOSE)] = [(50, 50), (62, 50)] * (len(amesh.NOSE) // 2)
    for i, x in zip((98, 97, 2, 326, 327), (50, 53, 56, 59, 62), strict=True):
        p[i] = (x, 70)
    xs = (40, 44, 47, 50, 53, 56, 59, 62, 65, 68, 72)
    p[list(smesh.LIPS_UPPER_OUTER)] = [(x, 76) for x in xs]
    p[list(smesh.LIPS_UPPER_INNER)] = [(x, 80) for x in xs]
    p[list(smesh.LIPS_LOWER_OUTER[1:-1])] = [(x, 86) for x in (40, 44, 47, 53, 56, 59, 65, 68, 72)]
    return p


@pytest.fixture(scope="module")
def regions() -> RegionMasks:
    return region_masks(synthetic_face())


def test_regions_partition_the_face_oval(regions: RegionMasks) -> None:
    lab = regions.labels
    assert lab.shape == (112, 112) and lab.dtype == np.int8
    assert not lab.flags.writeable
    inside = np.zeros((112, 112), bool)
    inside[10:102, 10:102] = True
    assert np.all(lab[inside] >= 0)  # every face pixel in a region
    assert np.all(lab[~inside] == NO_REGION)  # nothing outside the oval
    assert regions.areas.sum() == 92 * 92
    assert regions.stack.sum(axis=0).max() == 1  # disjoint


def test_region_pixels_from_hand_placed_landmarks(regions: RegionMasks) -> None:
    # (x, y) -> region
    expected = {
        (56, 20): "forehead", (37, 31): "brows", (75, 31): "brows", (56, 40): "glabella",
        (37, 43): "periorbital", (75, 43): "periorbital", (56, 60): "nose", (20, 60): "cheeks",
        (95, 45): "cheeks", (56, 73): "philtrum", (56, 78): "upper_lip", (56, 84): "lower_lip",
        (56, 95): "chin", (20, 90): "chin",
    }  # fmt: skip
    got = {xy: REGIONS[regions.labels[xy[1], xy[0]]] for xy in expected}
    assert got == expected
    # exact areas of the rectangles (fillPoly includes the boundary)
    assert regions.mask("upper_lip").sum() == 33 * 5  # x 40..72, y 76..80
    assert regions.mask("lower_lip").sum() == 33 * 6  # y 81..86
    assert regions.mask("nose").sum() == 13 * 21  # x 50..62, y 50..70
    assert regions.mask("philtrum").sum() == 13 * 5  # y 71..75 (nose and lip win their rows)
    # eye 30..44 x 40..46 scaled (1.4, 2.6) about (37, 43) -> 27..47 x 35..51, both eyes
    assert regions.mask("periorbital").sum() == 2 * 21 * 17
    ys, xs = np.nonzero(regions.mask("periorbital")[:, :56])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (27, 47, 35, 51)
    # brows y 30..32 scaled (1.1, 1.8) about y 31 -> rows 29..33
    ys, xs = np.nonzero(regions.mask("brows")[:, :56])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (29, 45, 29, 33)
    # forehead: the oval above the brows' top line (y <= 30), less the brows
    assert np.all(regions.mask("forehead")[10:29, 10:102])
    assert not regions.mask("forehead")[31:].any()
    # chin: everything of the oval below the mouth corners' line (y > 76) that is not lip
    assert np.all(regions.mask("chin")[87:102, 10:102])


def test_region_masks_do_not_modify_landmarks() -> None:
    p = synthetic_face()
    before = p.copy()
    region_masks(p)
    np.testing.assert_array_equal(p, before)


def test_region_masks_reject_bad_landmarks() -> None:
    with pytest.raises(ValueError, match="478"):
        region_masks(np.zeros((68, 2)))
    p = synthetic_face()
    p[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        region_masks(p)


def test_region_mass_hand_computed(regions: RegionMasks) -> None:
    a = np.zeros((112, 112))
    a[regions.mask("nose")] = 1.0  # 273 px
    a[regions.mask("philtrum")] = 3.0  # 65 px
    a[0, 0] = 100.0  # outside the face: counts in the total, in no region
    a[regions.mask("chin")] = -5.0  # negative: no positive mass
    rm = region_mass(a, regions)
    total = 273 + 3 * 65 + 100
    i = REGIONS.index
    assert rm.mass[i("nose")] == pytest.approx(273 / total)
    assert rm.mass[i("philtrum")] == pytest.approx(195 / total)
    assert rm.mass[i("chin")] == 0.0
    assert rm.density[i("philtrum")] == pytest.approx((195 / total) / (65 / 112**2))
    assert rm.mean[i("chin")] == pytest.approx(-5.0)
    # nose holds more mass, the philtrum more per pixel: the two rankings differ
    assert rm.ranking("mass")[0] == "nose"
    assert rm.ranking("density")[0] == "philtrum"
    assert rm.rank_of("nose", "density") == 2


def test_region_mass_of_a_map_without_positive_values_is_nan(regions: RegionMasks) -> None:
    rm = region_mass(-np.ones((112, 112)), regions)
    assert np.all(np.isnan(rm.mass))


def test_shapley_efficiency_and_symmetry_on_a_table() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=2**5)
    phi = shapley_from_table(v)
    assert phi.sum() == pytest.approx(v[-1] - v[0])
    # v(S) = 1 iff players 0 and 1 are both in S: they split the unit, player 2 gets nothing
    sub = subsets(3)
    phi = shapley_from_table((sub[:, 0] & sub[:, 1]).astype(float))
    np.testing.assert_allclose(phi, [0.5, 0.5, 0.0])


def test_region_shapley_recovers_an_additive_score(regions: RegionMasks) -> None:
    """A score that adds w_r per present region: its Shapley values are exactly w."""
    weights = np.linspace(-1.0, 2.0, len(REGIONS))
    per_pixel = np.zeros((112, 112))
    for r, name in enumerate(REGIONS):
        m = regions.mask(name)
        per_pixel[m] = weights[r] / m.sum()
    face = np.full((112, 112, 3), 255, np.uint8)
    fill = np.zeros_like(face)
    calls = []

    def evaluate(faces: np.ndarray) -> np.ndarray:
        calls.append(len(faces))
        return (faces[..., 0] / 255.0 * per_pixel).sum(axis=(1, 2))

    got = region_shapley(evaluate, face, regions, fill, batch_size=300)
    np.testing.assert_allclose(got.shapley, weights, atol=1e-9)
    assert got.shapley.sum() == pytest.approx(got.full - got.empty)
    np.testing.assert_allclose(got.occlusion, weights, atol=1e-9)  # additive: drop = weight
    assert got.evaluations == 2 ** len(REGIONS) == sum(calls)
    assert max(calls) == 300  # batched
    occ = region_shapley(evaluate, face, regions, fill, shapley=False)
    assert occ.shapley is None and occ.evaluations == len(REGIONS) + 2
    np.testing.assert_allclose(occ.occlusion, weights, atol=1e-9)
    assert occ.full == pytest.approx(weights.sum()) and occ.empty == pytest.approx(0.0)


def test_masked_faces_keep_pixels_outside_regions(regions: RegionMasks) -> None:
    face = np.full((112, 112, 3), 200, np.uint8)
    fill = np.zeros_like(face)
    out = masked_faces(face, fill, regions, np.zeros((1, len(REGIONS)), bool))
    assert np.all(out[0][regions.labels < 0] == 200)
    assert np.all(out[0][regions.labels >= 0] == 0)
    assert np.all(face == 200)  # input untouched


def test_every_demo_feature_and_facial_term_has_known_regions_and_a_label() -> None:
    from gmx.hpo import hpo_terms
    from gmx.regions import HPO_REGIONS, SYNTH_FEATURE_REGIONS
    from gmx.synth.features import FEATURES

    assert set(SYNTH_FEATURE_REGIONS) == {f.key for f in FEATURES}
    assert all(set(r) <= set(REGIONS) and r for r in HPO_REGIONS.values())
    assert all(t.known for t in hpo_terms(HPO_REGIONS))


def test_feature_regions_ranks_each_features_regions(regions: RegionMasks) -> None:
    from gmx.regions import feature_regions

    a = np.zeros((112, 112))
    a[regions.mask("philtrum")] = 3.0  # density rank 1
    a[regions.mask("nose")] = 2.0  # rank 2
    a[regions.mask("chin")] = 0.1  # rank 3
    a[regions.mask("periorbital")] = 0.01  # rank 4
    mass = region_mass(a, regions)
    # Long philtrum, Broad nasal tip, Hypertelorism, a term gmx places nowhere
    got = feature_regions(["HP:0000343", "HP:0000455", "HP:0000316", "HP:0001250"], mass)
    assert [f.best_rank for f in got] == [1, 2, 4, None]
    assert [f.highlighted for f in got] == [True, True, False, False]
    assert got[0].label == "Long philtrum"
    assert got[0].summary == (
        "Long philtrum -> Philtrum, Upper lip, Lower lip & mouth, Chin & mandible: rank 1 of 10"
    )
    assert got[3].regions == () and "no facial region" in got[3].summary
    none = feature_regions(["HP:0000343"], region_mass(-np.ones((112, 112)), regions))
    assert none[0].best_rank is None and not none[0].highlighted


def test_region_profile_reports_mass_and_density(regions: RegionMasks) -> None:
    from gmx.regions import region_profile

    a = np.zeros((112, 112))
    a[regions.mask("nose")] = 1.0
    a[regions.mask("philtrum")] = 3.0
    prof = region_profile(regions, a, ["HP:0000455"], row_label="#1 X", method="Grad")
    assert prof.top[:2] == ("philtrum", "nose")
    total = 273 + 195
    assert prof.summary.startswith(
        f"Top regions: Philtrum ({195 / total:.0%}, {(195 / total) / (65 / 112**2):.1f}x its size)"
    )
    assert prof.features[0].best_rank == 2 and prof.features[0].highlighted
    empty = region_profile(regions, np.zeros((112, 112)))
    assert empty.top == () and "no positive relevance" in empty.summary
