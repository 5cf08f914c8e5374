"""The committed demo data under models/demo load and are consistent."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gmx.config import DEMO_DIR
from gmx.synth.build import (
    LOOKUP_FILE,
    MANIFEST_FILE,
    RARE_SPLITS,
    SUBJECTS_FILE,
    UNAFFECTED_FILE,
    gmdb_file,
)
from gmx.synth.dataset import load_demo_data
from gmx.synth.identity import MAX_WEIGHT, MIN_SOURCES, MIN_WEIGHT
from gmx.synth.syndromes import SYNDROMES, all_classes


@pytest.fixture(scope="module")
def demo():
    return load_demo_data(DEMO_DIR)


def _rows(name: str, delimiter: str = ",") -> list[dict[str, str]]:
    with (DEMO_DIR / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def test_arrays(demo):
    n = len(demo)
    assert 1500 <= n <= 3000
    assert demo.images.shape == (n, 112, 112, 3) and demo.images.dtype == np.uint8
    assert demo.masks.shape == (n, 112, 112) and demo.masks.dtype == bool
    assert demo.transforms.shape == (n, 2, 3)
    assert len(set(demo.image_ids)) == n
    assert set(demo.splits) == {"train", "val", "test", "rare", "unaffected"}
    # Every photo was aligned: the faces are not blank.
    assert (demo.images.reshape(n, -1).std(axis=1) > 10).all()


def test_classes_and_masks(demo):
    assert set(demo.labels) == {s.syndrome_id for s in all_classes()}
    for syn in all_classes():
        sel = demo.labels == syn.syndrome_id
        subjects = set(demo.subject_ids[sel])
        assert 0.9 * syn.patients <= len(subjects) <= syn.patients
        if syn.is_unaffected:
            assert not demo.masks[sel].any()
        else:
            area = demo.masks[sel].mean(axis=(1, 2))
            assert (area > 0).mean() >= 0.98, syn.syndrome_id
            assert np.median(area) < 0.6  # measured <= 0.53 (SYN:0009: wide mouth, lip, cheeks)
    for sid in set(demo.subject_ids):
        assert len(set(demo.labels[demo.subject_ids == sid])) == 1


def test_size_budget():
    """Demo gallery + data (images, masks, metadata, embeddings) < 30 MB; model weights <= 50 MB.

    ``examples/`` holds the re-rendered test-patient photos of the Diagnose page (synthetic faces).
    """
    files = [p for p in DEMO_DIR.rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix == ".pt"]
    data = [p for p in files if p not in weights]
    assert sum(p.stat().st_size for p in data) < 30e6
    assert weights and all(p.stat().st_size <= 50e6 for p in weights)
    assert not list(DEMO_DIR.glob("*.jpg")) and not list(DEMO_DIR.glob("*.png"))


def test_manifest_matches_files():
    manifest = json.loads((DEMO_DIR / MANIFEST_FILE).read_text())
    for name, sha in manifest["files"].items():
        assert hashlib.sha256((DEMO_DIR / name).read_bytes()).hexdigest() == sha, name


def test_gmdb_layout_matches_metadata(demo):
    split_of = dict(zip(demo.image_ids, demo.splits, strict=True))
    label_of = dict(zip(demo.image_ids, demo.labels, strict=True))
    ids = {k: {r["image_id"] for r in _rows(gmdb_file(k))} for k in ("train", "val", "test")}
    for k, s in ids.items():
        assert s == {i for i, sp in split_of.items() if sp == k}
    gallery = {r["image_id"] for r in _rows(gmdb_file("frequent_gallery"))}
    assert gallery == ids["train"] | ids["val"]
    assert {r["image_id"] for r in _rows(gmdb_file("frequent_test"))} == ids["test"]
    rare_ids = {i for i, sp in split_of.items() if sp == "rare"}
    g, t = _rows(gmdb_file("rare_gallery")), _rows(gmdb_file("rare_test"))
    for k in range(RARE_SPLITS):
        gk = {r["image_id"] for r in g if r["split"] == str(k)}
        tk = {r["image_id"] for r in t if r["split"] == str(k)}
        assert gk | tk == rare_ids and not gk & tk
        gs = {r["subject"] for r in g if r["split"] == str(k)}
        ts = {r["subject"] for r in t if r["split"] == str(k)}
        assert not gs & ts, "a rare patient is never in both gallery and test of one split"
    assert {r["image_id"] for r in _rows(UNAFFECTED_FILE)} == {
        i for i, sp in split_of.items() if sp == "unaffected"
    }
    for r in _rows(gmdb_file("train")):
        assert label_of[r["image_id"]] == r["label"]
    lookup = (DEMO_DIR / LOOKUP_FILE).read_text().splitlines()
    assert lookup[0] == "index_id to disorder_id"
    assert json.loads(lookup[1]) == [s.syndrome_id for s in SYNDROMES if s.group == "frequent"]
    syn_rows = _rows(gmdb_file("syndromes"), "\t")
    assert [r["syndrome_id"] for r in syn_rows] == [s.syndrome_id for s in SYNDROMES]
    assert all(r["OMIM"] == "" and r["hpo"].startswith("HP:") for r in syn_rows)


def test_every_identity_mixes_enough_sources():
    rows = _rows(SUBJECTS_FILE)
    assert len(rows) == sum(s.patients for s in all_classes())
    for r in rows:
        w = np.array([float(x) for x in r["weights"].split(";")])
        assert len(set(r["sources"].split(";"))) >= MIN_SOURCES
        assert w.min() >= MIN_WEIGHT - 1e-4 and w.max() <= MAX_WEIGHT + 1e-4
    # Sources are used broadly, not a handful over and over.
    use = Counter(s for r in rows for s in r["sources"].split(";"))
    assert len(use) >= 200 and max(use.values()) <= 0.1 * len(rows)


def test_no_photo_path_points_into_git():
    for r in _rows("synth_sources.csv"):
        assert not Path(r["member"]).is_absolute()
