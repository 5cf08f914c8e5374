from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from gmx.aggregate.imbalance import (
    EXCLUDED,
    analyse,
    compute_maps,
    pairwise_r,
    retained,
    train_patients,
    train_variants,
    variant_data,
    variant_effects,
)
from gmx.aggregate.results import syndrome_masks
from gmx.aggregate.stats import pearson
from gmx.synth.dataset import load_demo_data
from gmx.train import TrainConfig


@pytest.fixture(scope="module")
def data():
    return load_demo_data("models/demo")


def _train_patients(d, syn):
    t = d.splits == "train"
    return len(np.unique(d.subject_ids[t & (d.labels == syn)]))


@pytest.mark.parametrize("cap", [10, 20])
def test_cap_limits_every_syndrome_and_keeps_all_photos_of_kept_patients(data, cap):
    v = variant_data(data, f"cap{cap}")
    syns = np.unique(data.labels[data.splits == "train"])
    for s in syns:
        assert _train_patients(v, s) == min(cap, _train_patients(data, s))
    kept = np.unique(v.subject_ids[v.splits == "train"])
    assert (
        (v.splits == "train") == (np.isin(data.subject_ids, kept) & (data.splits == "train"))
    ).all()
    # nothing but training rows changes
    assert (v.splits[data.splits != "train"] == data.splits[data.splits != "train"]).all()
    assert set(np.unique(v.splits)) <= {*np.unique(data.splits), EXCLUDED}


def test_cap_subset_is_drawn_per_seed(data):
    a = variant_data(data, "cap20", seed=0)
    b = variant_data(data, "cap20", seed=1)
    assert (a.splits == variant_data(data, "cap20", seed=0).splits).all()
    assert (a.splits != b.splits).any()
    assert train_patients(a) == train_patients(b)


def test_drop3_removes_the_three_largest_syndromes(data):
    v = variant_data(data, "drop3")
    syns = np.unique(data.labels[data.splits == "train"])
    sizes = sorted(syns, key=lambda s: _train_patients(data, s), reverse=True)
    assert [_train_patients(v, s) for s in sizes[:3]] == [0, 0, 0]
    assert all(_train_patients(v, s) == _train_patients(data, s) for s in sizes[3:])


def test_unknown_variant_is_refused(data):
    with pytest.raises(ValueError, match="unknown variant"):
        variant_data(data, "half")


@pytest.mark.parametrize("variant", ["cap40", "cap20", "cap10", "drop3", "full"])
def test_retained_counts_and_unchanged_bookkeeping(data, variant):
    r = retained(data, variant, seed=3)
    v = variant_data(data, variant, seed=3)
    train, vtrain = data.splits == "train", v.splits == "train"
    assert (r.images, r.images_full) == (vtrain.sum(), train.sum())
    assert r.patients == len(set(v.subject_ids[vtrain]))
    assert r.patients_full == len(set(data.subject_ids[train]))
    assert r.image_fraction == pytest.approx(vtrain.sum() / train.sum())
    full = train_patients(data)
    assert sorted(r.unchanged + r.reduced + r.dropped) == sorted(full)
    if variant.startswith("cap"):
        cap = int(variant[3:])
        assert set(r.unchanged) == {s for s, n in full.items() if n <= cap}
        assert set(r.reduced) == {s for s, n in full.items() if n > cap}
    if variant == "full":
        assert r.image_fraction == 1.0 and not r.reduced


def test_cap40_is_not_95_percent_of_the_data(data):
    """The old doc said cap40 keeps 95 % of the data; the count says otherwise (77 % then)."""
    r = retained(data, "cap40")
    assert r.image_fraction < 0.9
    assert r.patient_fraction < 0.9


# ---------------------------------------------------------------- effect computation, known answers


def _synthetic(planted: float, *, noise: float, c: int = 10, s: int = 5, seed: int = 0):
    """r matrices / AUROCs with full-vs-full r 0.9, variant-vs-full 0.8, reduced classes lower."""
    rng = np.random.default_rng(seed)
    reduced = np.arange(c) >= c // 2
    r_ff = 0.9 + noise * rng.standard_normal((s, s, c))
    r_vf = 0.8 - planted * reduced + noise * rng.standard_normal((s, s, c))
    auc_f = 0.8 + noise * rng.standard_normal((s, c))
    auc_v = 0.75 - planted * reduced + noise * rng.standard_normal((s, c))
    return r_vf, r_ff, auc_v, auc_f, reduced


def test_effects_exact_without_noise():
    r_vf, r_ff, auc_v, auc_f, reduced = _synthetic(0.2, noise=0.0)
    e = variant_effects(
        r_vf, r_ff, auc_v, auc_f, reduced, seeds_v=range(5), seeds_f=range(5), n_boot=200
    )
    assert e.noise_r.value == pytest.approx(0.9)
    assert e.loss_unchanged.value == pytest.approx(0.1)
    assert e.loss_reduced.value == pytest.approx(0.3)
    assert e.size_effect.value == pytest.approx(0.2)
    assert e.dauroc_unchanged.value == pytest.approx(-0.05)
    assert e.dauroc_size_effect.value == pytest.approx(-0.2)
    # nothing varies, so the interval is the point
    assert (e.size_effect.low, e.size_effect.high) == pytest.approx((0.2, 0.2))
    assert (e.n_unchanged, e.n_reduced) == (5, 5)


def test_no_size_effect_interval_covers_zero():
    r_vf, r_ff, auc_v, auc_f, reduced = _synthetic(0.0, noise=0.05)
    e = variant_effects(r_vf, r_ff, auc_v, auc_f, reduced, seeds_v=range(5), seeds_f=range(5))
    assert e.size_effect.low < 0 < e.size_effect.high
    assert e.dauroc_size_effect.low < 0 < e.dauroc_size_effect.high
    # the retraining itself costs every class 0.1 of agreement: that does exclude 0
    assert e.loss_unchanged.low > 0.05


def test_planted_size_effect_interval_excludes_zero():
    r_vf, r_ff, auc_v, auc_f, reduced = _synthetic(0.15, noise=0.05)
    e = variant_effects(r_vf, r_ff, auc_v, auc_f, reduced, seeds_v=range(5), seeds_f=range(5))
    assert e.size_effect.excludes_zero() and e.size_effect.low > 0
    assert e.size_effect.low < 0.15 < e.size_effect.high
    assert e.dauroc_size_effect.high < 0


def test_dose_response_slope_recovers_a_planted_slope():
    """Loss grows by 0.05 per halving of the class: the slope says so; no dose, no slope."""
    r_vf, r_ff, auc_v, auc_f, reduced = _synthetic(0.0, noise=0.0)
    halvings = np.where(reduced, np.linspace(0.5, 3.0, 10), 0.0)
    e = variant_effects(
        r_vf - 0.05 * halvings, r_ff, auc_v, auc_f, reduced,
        seeds_v=range(5), seeds_f=range(5), halvings=halvings, n_boot=100,
    )  # fmt: skip
    assert e.loss_slope.value == pytest.approx(0.05)
    assert e.dauroc_slope.value == pytest.approx(0.0, abs=1e-12)
    assert (e.loss_slope.low, e.loss_slope.high) == pytest.approx((0.05, 0.05))


def test_equal_seed_pairs_are_skipped():
    """A variant and a full model of the same seed share their initialisation: not a fair pair."""
    r_vf, r_ff, auc_v, auc_f, reduced = _synthetic(0.0, noise=0.0)
    r_vf[np.arange(5), np.arange(5)] = 1.0
    e = variant_effects(r_vf, r_ff, auc_v, auc_f, reduced, seeds_v=range(5), seeds_f=range(5))
    assert e.r_unchanged.value == pytest.approx(0.8)
    shifted = variant_effects(
        r_vf, r_ff, auc_v, auc_f, reduced, seeds_v=range(10, 15), seeds_f=range(5)
    )
    assert shifted.r_unchanged.value == pytest.approx(0.84)


def test_effects_do_not_modify_inputs():
    arrays = _synthetic(0.1, noise=0.05)
    copies = [a.copy() for a in arrays]
    variant_effects(*arrays, seeds_v=range(5), seeds_f=range(5), n_boot=20)
    for a, b in zip(arrays, copies, strict=True):
        assert (a == b).all()


def test_pairwise_r_is_pearson():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 4, 7, 7)), rng.normal(size=(2, 4, 7, 7))
    r = pairwise_r(a, b)
    assert r.shape == (3, 2, 4)
    assert r[2, 1, 3] == pytest.approx(pearson(a[2, 3], b[1, 3]))
    a[0, 1] = 0.0  # a constant map has no r
    r = pairwise_r(a, b)
    assert np.isnan(r[0, :, 1]).all() and np.isfinite(np.delete(r, 1, axis=2)).all()


# ---------------------------------------------------------------- end to end on a tiny config


@pytest.fixture(scope="module")
def tiny_run(data, tmp_path_factory):
    """Two variants x two seeds of a tiny model, one epoch, on a slice of the demo data."""
    rng = np.random.default_rng(0)
    keep = np.zeros(len(data), bool)
    syns = sorted(set(data.labels[data.splits == "test"]))[:3]
    for j, s in enumerate(syns):
        for split, n_subj in (("train", 2 + 2 * j), ("val", 1), ("test", 2)):
            subj = np.unique(data.subject_ids[(data.splits == split) & (data.labels == s)])
            chosen = rng.permutation(subj)[:n_subj]
            keep |= (data.splits == split) & np.isin(data.subject_ids, chosen)
    small = data.select(keep)
    tiny = TrainConfig(layers=(1, 1, 1, 1), widths=(8, 8, 16, 16), embedding_dim=32, batch_size=8)
    models = tmp_path_factory.mktemp("imbalance") / "models"
    models.mkdir()
    (models / ".cap2-s1.pt.lock").write_text("another worker")
    first = train_variants(
        small, models, variants=("full", "cap2"), seeds=(0, 1), epochs=1, base=tiny
    )
    assert "cap2-s1.pt" not in {p.name for p in first}  # claimed by "another worker"
    (models / ".cap2-s1.pt.lock").unlink()
    train_variants(small, models, variants=("full", "cap2"), seeds=(0, 1), epochs=1, base=tiny)
    return small, models, syns


def test_train_maps_analyse_tiny(tiny_run, tmp_path):
    small, models, syns = tiny_run
    assert sorted(p.name for p in models.glob("[!.]*.pt")) == [
        "cap2-s0.pt", "cap2-s1.pt", "full-s0.pt", "full-s1.pt",
    ]  # fmt: skip
    cache = compute_maps(small, models, tmp_path / "maps.npz", methods=("gradcam", "saliency"))
    with np.load(cache) as z:
        assert z["map_gradcam"].shape == (4, 3, 7, 7)  # native resolution, not upsampled
        assert z["map_saliency"].shape == (4, 3, 112, 112)
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- imbalance-table -->\nold\n<!-- /imbalance-table -->\nafter\n")
    analyse(cache, tmp_path / "out", n_boot=50, doc=doc)
    result = json.loads((tmp_path / "out" / "imbalance.json").read_text())
    cap2 = result["variants"]["cap2"]
    assert cap2["models"] == 2 and cap2["reduced"] == syns[1:]
    assert cap2["methods"]["gradcam"]["n_unchanged"] == 1
    assert (tmp_path / "out" / "imbalance.png").stat().st_size > 0
    text = doc.read_text()
    assert "old" not in text and "| cap2 | saliency |" in text and text.endswith("after\n")


def test_maps_reuse_parts_and_skip_claimed_ones(tiny_run, tmp_path):
    small, models, _ = tiny_run
    cache = tmp_path / "maps.npz"
    compute_maps(small, models, cache, methods=("gradcam",))
    parts = tmp_path / "maps.parts"
    stamps = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.npz")}
    assert len(stamps) == 4
    (parts / "full-s1.npz").unlink()
    (parts / ".full-s1.npz.lock").write_text("another worker")
    compute_maps(small, models, cache, methods=("gradcam",))
    with np.load(cache) as z:
        assert sorted(z["model_name"]) == ["cap2-s0.pt", "cap2-s1.pt", "full-s0.pt"]
    assert {p.name: p.stat().st_mtime_ns for p in parts.glob("*.npz")} == {
        k: v for k, v in stamps.items() if k != "full-s1.npz"
    }  # nothing recomputed


def test_new_masks_are_gathered_without_recomputing_maps(tiny_run, tmp_path):
    small, models, _ = tiny_run
    cache = compute_maps(small, models, tmp_path / "maps.npz", methods=("gradcam",))
    parts = {p: p.stat().st_mtime_ns for p in (tmp_path / "maps.parts").glob("*.npz")}
    moved = dataclasses.replace(small, masks=np.roll(small.masks, 9, axis=2))
    compute_maps(moved, models, cache, methods=("gradcam",))
    assert {p: p.stat().st_mtime_ns for p in parts} == parts
    with np.load(cache) as z:
        syn = list(z["syndromes"])
        test = moved.splits == "test"
        expected = syndrome_masks(moved.labels[test], moved.masks[test])
        assert all((z["masks"][syn.index(s)] == m).all() for s, m in expected.items())
