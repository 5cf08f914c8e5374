"""Cohort plan, determinism, GMDB-style splits and the write/load round trip (tiny bank)."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest

from gmx.gallery import import_gmdb
from gmx.synth.build import (
    FACES_FILE,
    RARE_SPLITS,
    SUBJECTS_FILE,
    assign_splits,
    generate_patient,
    plan_cohort,
    write_artifacts,
)
from gmx.synth.dataset import DemoDataError, load_demo_data
from gmx.synth.identity import MIN_SOURCES, MIN_WEIGHT
from gmx.synth.syndromes import SYNDROMES, all_classes


def _pick(plans, syndrome_ids):
    out = []
    for sid in syndrome_ids:
        out.append(next(p for p in plans if p.syndrome.syndrome_id == sid))
    return out


def test_plan_follows_the_table():
    plans = plan_cohort(0)
    counts = Counter(p.syndrome.syndrome_id for p in plans)
    for syn in all_classes():
        assert counts[syn.syndrome_id] == syn.patients
    assert len({p.subject_id for p in plans}) == len(plans)
    assert all(1 <= p.n_images <= 6 for p in plans)
    assert plan_cohort(0) == plans
    assert [p.n_images for p in plan_cohort(1)] != [p.n_images for p in plans]


def test_table_is_gmdb_like():
    groups = Counter(s.group for s in SYNDROMES)
    assert len(SYNDROMES) >= 12 and groups["frequent"] >= 6 and groups["rare"] >= 3
    assert len({s.syndrome_id for s in SYNDROMES}) == len(SYNDROMES)
    assert len({s.features for s in SYNDROMES}) == len(SYNDROMES), (
        "feature combinations must differ"
    )
    assert all(1 <= len(s.features) <= 3 and s.omim is None for s in SYNDROMES)
    assert all(2 <= s.patients <= 6 for s in SYNDROMES if s.group == "rare")


def test_patient_generation_is_deterministic(renderer, aligner):
    plans = _pick(plan_cohort(0), ["SYN:0002", "SYN:0004", "SYN:0000"])
    for plan in plans:
        a = generate_patient(renderer, plan, 0, aligner)
        b = generate_patient(renderer, plan, 0, aligner)
        c = generate_patient(renderer, plan, 1, aligner)
        np.testing.assert_array_equal(a.face.canvas, b.face.canvas)
        for x, y in zip(a.images, b.images, strict=True):
            assert (x is None) == (y is None)
            if x is not None and y is not None:
                np.testing.assert_array_equal(x.image, y.image)
                np.testing.assert_array_equal(x.mask, y.mask)
                np.testing.assert_array_equal(x.transform, y.transform)
        assert not np.array_equal(a.face.canvas, c.face.canvas)


def test_splits_are_disjoint_and_gmdb_shaped():
    plans = plan_cohort(0)
    split, rare_test = assign_splits([(p.subject_id, p.syndrome) for p in plans], 0)
    assert set(split) == {p.subject_id for p in plans}
    by = Counter((p.syndrome.group, split[p.subject_id]) for p in plans)
    assert (
        by[("frequent", "test")] > 0
        and by[("frequent", "val")] > 0
        and by[("frequent", "train")] > 0
    )
    assert set(split[p.subject_id] for p in plans if p.syndrome.group == "rare") == {"rare"}
    assert set(split[p.subject_id] for p in plans if p.syndrome.group == "unaffected") == {
        "unaffected"
    }
    for syn in SYNDROMES:
        subj = {p.subject_id for p in plans if p.syndrome is syn}
        if syn.group == "frequent":
            assert {split[s] for s in subj} == {"train", "val", "test"}
        else:
            for k in range(RARE_SPLITS):
                test = subj & rare_test[k]
                assert test and subj - test, f"{syn.syndrome_id} split {k} needs gallery and test"


@pytest.fixture(scope="module")
def small_build(renderer, aligner, tiny_bank, tmp_path_factory):
    plans = plan_cohort(0)
    wanted = []
    for syn in all_classes():
        wanted += [p for p in plans if p.syndrome is syn][: 3 if syn.group == "frequent" else 2]
    results = [generate_patient(renderer, p, 0, aligner) for p in wanted]
    out = tmp_path_factory.mktemp("demo")
    report = write_artifacts(out, results, tiny_bank, 0, {})
    return out, report, results


def test_round_trip(small_build):
    out, report, results = small_build
    data = load_demo_data(out)
    ok = [(r, im) for r in results for im in r.images if im is not None]
    assert len(data) == report.n_images == len(ok)
    assert data.images.shape == (len(ok), 112, 112, 3) and data.images.dtype == np.uint8
    assert data.masks.shape == (len(ok), 112, 112) and data.masks.dtype == bool
    for i, (r, im) in enumerate(ok):
        np.testing.assert_array_equal(data.masks[i], im.mask)
        assert data.labels[i] == r.plan.syndrome.syndrome_id
        assert data.subject_ids[i] == r.plan.subject_id
        # WebP q90: close to, not equal to, the aligned image.
        assert np.abs(data.images[i].astype(int) - im.image.astype(int)).mean() < 4.0
    assert not data.masks[data.labels == "SYN:0000"].any()


def test_written_layout_is_read_by_gmx_gallery(small_build):
    out, _, _ = small_build
    tables = import_gmdb(out, split="all")
    assert set(tables.lookup_table) == {s.syndrome_id for s in SYNDROMES if s.group == "frequent"}
    assert {"frequent_gallery", "frequent_test", "rare_gallery", "rare_test"} <= set(tables.sources)
    assert all(s.omim is None and s.hpo for s in tables.syndromes.values())


def test_subjects_record_the_mixing(small_build):
    out, _, _ = small_build
    with (out / SUBJECTS_FILE).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for r in rows:
        w = [float(x) for x in r["weights"].split(";")]
        assert len(set(r["sources"].split(";"))) >= MIN_SOURCES
        assert min(w) >= MIN_WEIGHT and abs(sum(w) - 1) < 1e-3
        json.loads(r["strengths"])


def test_inconsistent_files_are_reported(small_build, tmp_path):
    out, _, _ = small_build
    for p in out.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    meta = tmp_path / "synth_metadata.csv"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DemoDataError, match="different images"):
        load_demo_data(tmp_path)
    (tmp_path / FACES_FILE).unlink()
    with pytest.raises(DemoDataError, match="missing"):
        load_demo_data(tmp_path)


def test_cli_builds_from_a_cached_bank(tiny_bank, tmp_path):
    from gmx.synth.__main__ import main
    from gmx.synth.sources import bank_key, save_bank

    cache = tmp_path / "cache"
    cache.mkdir()
    save_bank(tiny_bank, cache / f"bank-{bank_key()}.npz")  # no download: the bank is cached
    out, sheet = tmp_path / "demo", tmp_path / "montage.png"
    argv = ["build", "--out", str(out), "--seed", "3", "--cache", str(cache), "--limit", "1"]
    assert main([*argv, "--quiet", "--montage", str(sheet)]) == 0
    data = load_demo_data(out)
    assert set(data.labels) <= {s.syndrome_id for s in all_classes()}
    assert len(set(data.subject_ids)) >= len(all_classes()) - 1
    assert sheet.stat().st_size > 1000
    manifest = json.loads((out / "synth_manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["n_images"] == len(data)
