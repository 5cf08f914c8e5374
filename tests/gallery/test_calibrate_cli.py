"""``gmx gallery calibrate`` (issue 12) on the hand-made gallery and on real photos.

The tiny gallery's leave-one-patient-out figures are in ``test_calibration``. Unaffected encodings,
worked by hand against it (mean over the 2 variants of the cosine distance):

    u1 = QUERY, variants (1, 0) / (0, 1): a1 is the same direction in both -> 0.0
    u2 = (0, 1) / (0, 1): a1 1 / 0 -> 0.5, a2 0 / 1 -> 0.5, b1 (3,4),(4,3) 0.2 / 0.4 -> 0.3,
         b2 1 / 1 -> 1.0, c1 1 / 2 -> 1.5, c2 (4,3),(3,4) 0.4 / 0.2 -> 0.3  -> nearest 0.3

so the stored unaffected distances are [0.0, 0.3] and the flag's median is 0.15.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from gmx.cli import main
from gmx.gallery import (
    EncodingTable,
    Gallery,
    GalleryImage,
    gallery_info,
    load_gallery,
    nearest_syndrome_distances,
    save_gallery,
    write_encodings,
)

from ._gallery_fixtures import QUERY, VARIANTS, make_tiny

U2 = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)


def _encodings(path: Path, embeddings: np.ndarray, variants=VARIANTS) -> Path:
    n = embeddings.shape[0]
    table = EncodingTable(
        image_ids=tuple(f"u{i}" for i in range(n)),
        file_names=tuple(f"u{i}.jpg" for i in range(n)),
        variants=tuple(variants),
        model_names=("tiny",),
        embeddings=embeddings,
        class_conf=tuple(np.zeros((n, 1), np.float32) for _ in variants),
    )
    write_encodings(table, path)
    return path


def test_calibrate_with_unaffected_encodings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    g = tmp_path / "g.sqlite"
    save_gallery(make_tiny(), g)
    csv = _encodings(tmp_path / "unaffected.csv", np.stack([QUERY, U2]))
    out, report = tmp_path / "calibrated.sqlite", tmp_path / "report.json"
    args = ["gallery", "calibrate", str(g), "--unaffected", str(csv), "--out", str(out)]
    assert main([*args, "--report", str(report)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(report.read_text())
    assert load_gallery(g).calibration is None  # --out: the input is untouched
    c = load_gallery(out).calibration
    assert c is not None and c.method == "leave-one-patient-out"
    np.testing.assert_allclose(c.unaffected_distances, [0.0, 0.3], atol=1e-6)
    np.testing.assert_allclose(c.own_distances, [1.1, 1.1, 1.8, 1.8], atol=1e-6)
    assert c.typical_distance == pytest.approx(0.15, abs=1e-6)
    assert "2 encodings in unaffected.csv" in c.provenance
    assert printed["n_images"] == 4 and printed["distributions"]["unaffected"]["n"] == 2
    # AUROC: nearest [0.04, 0.04, 0.5, 1.0] vs [0.0, 0.3]: 1 + 1 + 0 + 0 = 2 of 8
    assert printed["auroc_affected_vs_unaffected"] == pytest.approx(2 / 8)
    info = gallery_info(out)
    assert (info.calibration_method, info.calibration_unaffected) == ("leave-one-patient-out", 2)
    assert info.metadata_checksum == "verified"


def test_calibrate_in_place_without_cohort(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    g = tmp_path / "g.sqlite"
    save_gallery(make_tiny(), g)
    assert main(["gallery", "calibrate", str(g)]) == 0
    capsys.readouterr()
    c = load_gallery(g).calibration
    assert c is not None and c.unaffected_distances is None and c.null == "other_syndrome"
    assert gallery_info(g).calibration_unaffected is None
    assert "already holds" not in caplog.text
    assert main(["gallery", "calibrate", str(g)]) == 0  # again: replaces it, says so
    assert "already holds a leave-one-patient-out calibration" in caplog.text


def test_calibrate_refuses_encodings_of_other_variants(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    g = tmp_path / "g.sqlite"
    save_gallery(make_tiny(), g)
    csv = _encodings(tmp_path / "u.csv", QUERY[None, :1], variants=VARIANTS[:1])
    assert main(["gallery", "calibrate", str(g), "--unaffected", str(csv)]) == 2
    assert "variants" in caplog.text
    assert load_gallery(g).calibration is None  # nothing written


def test_calibrate_with_a_folder_of_photos(
    tmp_path: Path, tiny_setup, capsys: pytest.CaptureFixture
) -> None:
    """Photos are aligned and embedded with --models; the stored distance is the library's."""
    from gmx.align import FaceAligner, load_image
    from gmx.encode import Ensemble, load_model

    tiny = load_gallery(tiny_setup.gallery_path)
    # one patient per image, so that every syndrome has two patients to calibrate with
    images = tuple(
        GalleryImage(im.image_id, f"p{i}", im.syndrome_id) for i, im in enumerate(tiny.images)
    )
    g: Gallery = dataclasses.replace(tiny, images=images)
    path = save_gallery(g, tmp_path / "g.sqlite")
    folder = tmp_path / "unaffected"
    folder.mkdir()
    (folder / "person.jpg").write_bytes(tiny_setup.photo_jpeg)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    args = ["--device", "cpu", "gallery", "calibrate", str(path), "--unaffected", str(folder)]
    assert main([*args, "--models", str(tiny_setup.model_path)]) == 0
    capsys.readouterr()
    c = load_gallery(path).calibration
    ensemble = Ensemble([load_model(tiny_setup.model_path, device="cpu")], flip=True, grey=True)
    with FaceAligner() as aligner:
        face = aligner.align(load_image(folder / "person.jpg")).primary
    want = nearest_syndrome_distances(ensemble.embed([face]), g)
    np.testing.assert_allclose(c.unaffected_distances, want, atol=1e-6)
    assert "1 photos in" in c.provenance
    # gmx predict on the calibrated gallery: the gmx block carries the statements
    photo = tmp_path / "case.jpg"
    photo.write_bytes(tiny_setup.photo_jpeg)
    args = ["--device", "cpu", "predict", str(photo), "--models", str(tiny_setup.model_path)]
    assert main([*args, "--gallery", str(path), "--top-k", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    block = result["gmx"]["calibration"]
    assert block["method"] == "leave-one-patient-out" and block["n_unaffected"] == 1
    assert block["typical_distance"] == pytest.approx(float(want[0]))
    top = result["gmx"]["syndromes"][0]
    assert top["calibration"] == c.statement(top["distance"]).to_dict()
    assert len(result["suggested_syndromes_list"]) == 2  # the service fields as before


def test_calibrate_refuses_bad_outputs_before_any_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    g = tmp_path / "g.sqlite"
    save_gallery(make_tiny(), g)
    before = g.read_bytes()
    missing = tmp_path / "no" / "such" / "out.sqlite"
    assert main(["gallery", "calibrate", str(g), "--out", str(missing)]) == 2
    assert main(["gallery", "calibrate", str(g), "--report", str(tmp_path)]) == 2
    assert "--out" in caplog.text and "--report" in caplog.text
    assert g.read_bytes() == before and not missing.parent.exists()
    assert main(["gallery", "calibrate", str(tmp_path / "none.sqlite")]) == 2
    assert "does not exist" in caplog.text
