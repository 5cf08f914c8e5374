"""Localisation against nulls: hand-computed scores and the behaviour of the nulls."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gmx.aggregate.localisation import NULLS, localisation, score_matrix
from gmx.aggregate.stats import auroc


def test_score_matrix_auroc_by_hand():
    # map values 4 pixels; mask = pixels 0 and 1. Positives 3, 2; negatives 1, 0 -> AUROC 1.
    maps = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    masks = np.array([[True, True, False, False]])
    got = score_matrix(maps, masks, "auroc")
    np.testing.assert_allclose(got[:, 0], [1.0, 0.0, 0.5])


def test_score_matrix_auroc_equals_mann_whitney_with_ties():
    rng = np.random.default_rng(0)
    maps = np.round(rng.normal(size=(5, 12, 12)), 1)  # many ties
    maps[0] = np.maximum(maps[0], 0)  # a ReLU'd map: a block of zeros
    masks = rng.random((3, 12, 12)) < 0.3
    got = score_matrix(maps, masks, "auroc")
    for i in range(5):
        for j in range(3):
            assert got[i, j] == pytest.approx(auroc(maps[i], masks[j]), abs=1e-12)


def test_score_matrix_mass_inside_by_hand():
    maps = np.array([[2.0, -5.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]])
    masks = np.array([[True, True, False, False], [False, False, True, True]])
    got = score_matrix(maps, masks, "mass_inside")
    np.testing.assert_allclose(got[0], [0.5, 0.5])  # positive mass 4: 2 in mask 0, 2 in mask 1
    assert np.isnan(got[1]).all()  # no positive mass


def _regions(n_syn: int, size: int = 16) -> dict[str, np.ndarray]:
    """Disjoint horizontal bands, one per syndrome."""
    out = {}
    h = size // n_syn
    for i in range(n_syn):
        m = np.zeros((size, size), bool)
        m[i * h : (i + 1) * h] = True
        out[f"S{i}"] = m
    return out


def _maps(regions, signal: float, rng, n=12, generic=None):
    maps, pats = {}, {}
    for s, m in regions.items():
        noise = rng.normal(size=(n, *m.shape))
        base = signal * m.astype(float) + (0 if generic is None else generic)
        maps[s] = (base[None] + noise).astype(np.float32)
        pats[s] = np.repeat(np.arange(n // 2), 2)  # two images per patient
    return maps, pats


def test_syndrome_specific_maps_beat_every_null():
    rng = np.random.default_rng(1)
    regions = _regions(4)
    maps, pats = _maps(regions, 2.0, rng)
    ref = {s: rng.normal(size=(10, 16, 16)).astype(np.float32) for s in regions}
    res = localisation(
        maps,
        pats,
        regions,
        method="m",
        reference=ref,
        reference_patients=np.arange(10),
        n_boot=200,
    )
    for sc in res.scores:
        for null in NULLS:
            c = sc.null(null)
            assert c.above, (sc.syndrome, sc.metric, null, c)
    for summ in res.summaries:
        assert summ.ci_low > 0 and summ.n_above == 4


def test_generic_prior_does_not_localise():
    """All syndromes' maps are one generic prior that overlaps every region: own == null."""
    rng = np.random.default_rng(2)
    regions = _regions(4)
    generic = np.linspace(0, 3, 16)[:, None] * np.ones((16, 16))  # a gradient over the face
    maps, pats = _maps(regions, 0.0, rng, generic=generic)
    res = localisation(maps, pats, regions, method="m", n_boot=200, metrics=("auroc",))
    other = res.summary("m", "auroc", "other_maps")
    # A raw AUROC can be high (the bottom band sits where the prior is high) ...
    assert max(sc.own for sc in res.scores) > 0.8
    # ... but the syndrome's own map is no better than the other syndromes' maps.
    assert other.ci_low < 0 < other.ci_high
    assert other.n_above <= 1  # 95 % intervals: one of four may exclude 0 by chance
    assert np.isnan(res.summary("m", "auroc", "unaffected").mean_difference)  # no cohort given


def test_deterministic_and_inputs_untouched():
    rng = np.random.default_rng(3)
    regions = _regions(3)
    maps, pats = _maps(regions, 1.0, rng)
    before = {s: a.copy() for s, a in maps.items()}
    a = localisation(maps, pats, regions, method="m", n_boot=50, seed=7)
    b = localisation(maps, pats, regions, method="m", n_boot=50, seed=7)
    assert json.dumps(a.rows()) == json.dumps(b.rows())  # NaN-safe equality
    for s in maps:
        np.testing.assert_array_equal(maps[s], before[s])


def test_rows_and_errors():
    rng = np.random.default_rng(4)
    regions = _regions(2)
    maps, pats = _maps(regions, 1.0, rng)
    res = localisation(maps, pats, regions, method="m", n_boot=0)
    row = res.rows()[0]
    assert {"own", "other_maps_diff", "grand_mean_ci", "region_area"} <= set(row)
    assert np.isnan(row["other_maps_ci"][0])  # no bootstrap, no interval
    with pytest.raises(ValueError, match="two syndromes"):
        localisation({"S0": maps["S0"]}, pats, regions, method="m")
    with pytest.raises(ValueError, match="level"):
        localisation(maps, pats, regions, method="m", level=1.5)
    with pytest.raises(ValueError, match="reference_patients"):
        localisation(maps, pats, regions, method="m", reference={s: maps[s] for s in maps})


def test_held_out_study_on_a_tiny_model(tiny) -> None:
    """The real path: outside faces explained against their syndromes, then scored with nulls."""
    from gmx.aggregate import cohort_maps
    from gmx.aggregate.localisation import held_out_study
    from gmx.encode import Ensemble

    g = tiny.gallery
    rng = np.random.default_rng(5)
    faces = rng.integers(0, 256, (6, 112, 112, 3), dtype=np.uint8)
    labels = np.array(["S:1"] * 3 + ["S:2"] * 3)
    masks = np.zeros((6, 112, 112), bool)
    masks[:3, 30:60, 20:90] = True
    masks[3:, 70:100, 30:80] = True
    ref = rng.integers(0, 256, (4, 112, 112, 3), dtype=np.uint8)
    before = faces.copy()
    study = held_out_study(
        tiny.model,
        g,
        faces,
        labels,
        np.array(["p1", "p1", "p2", "q1", "q2", "q3"]),
        masks,
        ref,
        np.array(["r1", "r2", "r3", "r4"]),
        methods=("gradcam", "saliency"),
        n_boot=20,
    )
    np.testing.assert_array_equal(faces, before)
    loc = study.localisation
    assert {(s.syndrome, s.method) for s in loc.scores} == {
        (s, m) for s in ("S:1", "S:2") for m in ("gradcam", "saliency")
    }
    assert all(np.isfinite(s.null("unaffected").value) for s in loc.scores if s.metric == "auroc")
    # The reference means equal cohort_maps' (one implementation of "cohort against a syndrome").
    emb = Ensemble([tiny.model], flip=True, grey=True).embed(ref)
    means = cohort_maps(tiny.model, g, ref, emb, ["S:1", "S:2"], methods=("gradcam", "saliency"))
    for key, arr in means.items():
        np.testing.assert_allclose(study.reference_maps[key], arr, rtol=1e-5, atol=1e-6)
    assert set(study.regions) == {"S:1", "S:2"}


def test_summary_markdown_lists_every_method_and_null():
    from gmx.aggregate.localisation import merge, summary_markdown

    rng = np.random.default_rng(6)
    regions = _regions(3)
    maps, pats = _maps(regions, 2.0, rng)
    parts = [localisation(maps, pats, regions, method=m, n_boot=30) for m in ("a", "b")]
    text = summary_markdown(merge(parts))
    lines = text.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| a |") and lines[3].startswith("| b |")
    assert "(3/3)" in lines[2]  # every syndrome beyond the other maps' null
    assert "n/a" in lines[2]  # no reference cohort given
