"""The ``gmx`` command end to end on real photos, the tiny model and a GMDB-layout folder."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import gmx
from gmx.cli import main
from gmx.gallery import load_gallery, read_encodings


@pytest.fixture(scope="module")
def gmdb(tmp_path_factory) -> tuple[Path, Path]:
    """A GMDB-layout metadata folder and an image folder of real-face variants (+ one corrupt)."""
    root = tmp_path_factory.mktemp("gmdb")
    meta, images = root / "gmdb_metadata", root / "images"
    meta.mkdir()
    images.mkdir()
    face = np.ascontiguousarray(data.astronaut())
    rng = np.random.default_rng(1)
    for i in range(8):
        noisy = np.clip(face.astype(int) + rng.integers(-20, 21, face.shape), 0, 255).astype(
            np.uint8
        )
        buf = io.BytesIO()
        Image.fromarray(noisy).save(buf, format="JPEG", quality=90)
        (images / f"{500 + i}_crop_square.jpg").write_bytes(buf.getvalue())
    (images / "509.jpg").write_bytes(b"\xff\xd8\xff broken jpeg")
    rows = [f"{500 + i},{10 + i // 2},{1 + i % 2}" for i in range(6)] + ["509,99,1"]
    (meta / "gmdb_frequent_gallery_images_v9.csv").write_text(
        "image_id,subject,label\n" + "\n".join(rows) + "\n"
    )
    (meta / "gmdb_frequent_test_images_v9.csv").write_text(
        "image_id,subject,label\n506,20,1\n507,21,2\n"
    )
    (meta / "gmdb_syndromes_v9.tsv").write_text(
        "syndrome_id\tsyndrome_name\tOMIM\n1\tAlpha syndrome\t100001\n2\tBeta syndrome\t\n"
    )
    return meta, images


def test_align_writes_faces_and_reports_bad_files(tmp_path, gmdb, capsys):
    _, images = gmdb
    status = main(
        [
            "align",
            str(images / "500_crop_square.jpg"),
            str(images / "509.jpg"),
            "--out",
            str(tmp_path),
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert status == 1  # one unreadable photo
    assert out[0]["faces"][0]["aligned"] == "500_crop_square_face0.png"
    assert (tmp_path / "500_crop_square_face0.png").is_file()
    assert "error" in out[1]


def test_gallery_build_info_export_evaluate_predict(tmp_path, gmdb, tiny_setup, capsys):
    meta, images = gmdb
    model = str(tiny_setup.model_path)
    out = tmp_path / "g.sqlite"
    assert (
        main(
            [
                "--device",
                "cpu",
                "gallery",
                "build",
                "--gmdb",
                str(meta),
                "--images",
                str(images),
                "--kind",
                "frequent",
                "--out",
                str(out),
                "--models",
                model,
                "--activations",
                "--photo-codec",
                "webp",
                "--photo-quality",
                "80",
            ]
        )
        == 0
    )
    g = load_gallery(out)
    assert (g.photo_codec, g.photo_quality) == ("webp", 80)
    assert len(g.images) == 6  # the corrupt listed image was skipped, not fatal
    assert g.embeddings.shape == (6, 4, 32)
    acts = [k for k in g.extras if k.startswith("simmaps.")]
    assert len(acts) == 4 and g.extras[acts[0]].shape == (6, 32, 7, 7)
    assert set(g.syndromes) == {"1", "2"}

    capsys.readouterr()
    assert main(["gallery", "info", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)
    # lossy photos, yet every stored embedding is the embedding of the stored pixels
    assert main(["gallery", "info", str(out), "--verify", "--sample", "0", "--models", model]) == 0
    assert json.loads(capsys.readouterr().out)["verify"]["worst_cosine"] >= 0.99999

    csv = tmp_path / "enc.csv"
    assert main(["gallery", "export", str(out), "--out", str(csv)]) == 0
    assert read_encodings(csv).embeddings.shape == (6, 4, 32)

    g2 = tmp_path / "imported.sqlite"
    assert (
        main(
            [
                "gallery",
                "import",
                "--gmdb",
                str(meta),
                "--encodings",
                str(csv),
                "--kind",
                "frequent",
                "--out",
                str(g2),
                "--models",
                model,
                "--drop-missing",
            ]
        )
        == 0
    )
    imported = load_gallery(g2).embeddings
    unit = g.embeddings / np.linalg.norm(g.embeddings, axis=-1, keepdims=True)
    np.testing.assert_allclose(
        imported / np.linalg.norm(imported, axis=-1, keepdims=True), unit, atol=1e-6
    )
    capsys.readouterr()

    assert (
        main(
            [
                "evaluate",
                "--gmdb",
                str(meta),
                "--images",
                str(images),
                "--kind",
                "frequent",
                "--models",
                model,
                "--gallery",
                str(out),
            ]
        )
        == 0
    )
    ev = json.loads(capsys.readouterr().out)
    assert ev["n_queries"] == 2 and 0.0 <= ev["macro_top_k"]["1"] <= 1.0

    assert (
        main(
            [
                "predict",
                str(images / "500_crop_square.jpg"),
                "--models",
                model,
                "--gallery",
                str(out),
                "--top-k",
                "2",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert len(res["suggested_syndromes_list"]) == 2
    assert res["suggested_syndromes_list"][0]["image_id"] == "500"  # the photo itself is nearest
    assert res["gmx"]["faces_found"] == 1


def test_predict_refuses_gallery_of_other_model(tmp_path, tiny_setup, gmdb, caplog):
    meta, images = gmdb
    other = tmp_path / "other.sqlite"
    assert (
        main(
            [
                "gallery",
                "build",
                "--gmdb",
                str(meta),
                "--images",
                str(images),
                "--kind",
                "frequent",
                "--out",
                str(other),
                "--models",
                str(tiny_setup.model_path),
                "--no-flip",
            ]
        )
        == 0
    )
    # gallery embedded without flip variants; predicting with flip must be refused clearly
    status = main(
        [
            "predict",
            str(images / "500_crop_square.jpg"),
            "--models",
            str(tiny_setup.model_path),
            "--gallery",
            str(other),
        ]
    )
    assert status == 2
    assert "rebuild" in caplog.text.lower()


def test_encode_writes_upstream_csv(tmp_path, gmdb, tiny_setup):
    _, images = gmdb
    csv = tmp_path / "e.csv"
    assert (
        main(
            [
                "encode",
                str(images / "501_crop_square.jpg"),
                "--out",
                str(csv),
                "--models",
                str(tiny_setup.model_path),
                "--no-grey",
            ]
        )
        == 0
    )
    table = read_encodings(csv)
    assert table.image_ids == ("501",)  # upstream: the id is the name up to the first '_'
    assert table.file_names == ("501_crop_square.jpg",)
    assert table.embeddings.shape == (1, 2, 32)


# ------------------------------------------------------------------------------- output paths


def _write_jpeg(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG", quality=92)
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts aligning or loading models.

    ``gmx.pipeline`` is imported before anything is patched: it binds ``FaceAligner`` at import,
    and a first import under the patch kept the refusing stand-in for the rest of the session
    (``test_commands_apply_the_configured_torch_threads`` then failed when run after these tests).
    """
    import gmx.pipeline  # noqa: F401 - see the docstring

    def refuse(*args, **kwargs):
        raise AssertionError("the command started working before checking its output")

    monkeypatch.setattr("gmx.align.FaceAligner", refuse)
    monkeypatch.setattr("gmx.cli._ensemble", refuse)
    monkeypatch.setattr("gmx.pipeline.Diagnoser.from_config", refuse)


def test_align_same_file_name_in_two_folders_keeps_both(tmp_path, capsys):
    """a/photo.jpg and b/photo.jpg used to both become photo_face0.png (A's record showed B)."""
    face = np.ascontiguousarray(data.astronaut())
    a = _write_jpeg(tmp_path / "in" / "a" / "photo.jpg", face)
    b = _write_jpeg(tmp_path / "in" / "b" / "photo.jpg", np.ascontiguousarray(face[:, ::-1]))
    out = tmp_path / "out"
    assert main(["align", str(a), str(b), "--out", str(out)]) == 0
    records = json.loads(capsys.readouterr().out)
    names = [r["faces"][0]["aligned"] for r in records]
    assert names == ["a/photo_face0.png", "b/photo_face0.png"]
    pixels = [np.asarray(Image.open(out / n)) for n in names]
    assert not np.array_equal(pixels[0], pixels[1])  # each record points at its own face
    # the mirrored photo gives (nearly) the mirrored aligned face: B's file is B's face
    assert np.abs(pixels[1].astype(int) - pixels[0][:, ::-1].astype(int)).mean() < 20


def test_output_stems_are_unique_and_stable(tmp_path):
    from gmx.cli import output_stems

    photos = [
        tmp_path / "x.jpg",
        tmp_path / "X.png",
        tmp_path / "sub" / "y.jpg",
        tmp_path / "sub" / "x.jpg",
        tmp_path / "x-jpg.jpg",
    ]
    stems = output_stems(photos)
    assert stems == ["x-jpg", "X-png", "sub/y", "sub/x", "x-jpg-2"]
    assert len({s.lower() for s in stems}) == len(stems)
    assert output_stems(photos) == stems
    assert output_stems([tmp_path / "only" / "500_crop.jpg"]) == ["500_crop"]
    assert output_stems([Path("a/../../x.jpg"), Path("b/x.jpg")])[0].count("..") == 0


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_align_checks_out_before_any_work(tmp_path, caplog, no_work, plain_message, kind):
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a folder")
    out = blocker if kind == "file" else blocker / "faces"
    photo = _write_jpeg(tmp_path / "p.jpg", np.ascontiguousarray(data.astronaut()))
    assert main(["align", str(photo), "--out", str(out)]) == 2
    message = plain_message(caplog.text)
    assert str(out) in message
    assert blocker.read_text() == "not a folder"


def test_encode_checks_out_and_ids_before_any_work(tmp_path, caplog, no_work, plain_message):
    face = np.ascontiguousarray(data.astronaut())
    a = _write_jpeg(tmp_path / "a" / "photo.jpg", face)
    b = _write_jpeg(tmp_path / "b" / "photo.jpg", face)
    folder = tmp_path / "encodings"
    folder.mkdir()
    assert main(["encode", str(a), "--out", str(folder)]) == 2
    assert "is a folder" in plain_message(caplog.text)
    caplog.clear()
    assert main(["encode", str(a), str(b), "--out", str(tmp_path / "e.csv")]) == 2
    assert "same image id 'photo'" in plain_message(caplog.text)
    assert not (tmp_path / "e.csv").exists()


def test_gallery_export_checks_out(tmp_path, tiny_setup, caplog, plain_message):
    folder = tmp_path / "exports"
    folder.mkdir()
    status = main(["gallery", "export", str(tiny_setup.gallery_path), "--out", str(folder)])
    assert status == 2
    assert "is a folder" in plain_message(caplog.text)


def test_predict_case_ids_are_unique(tmp_path, tiny_setup, capsys):
    a = tmp_path / "a" / "photo.jpg"
    b = tmp_path / "b" / "photo.jpg"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(tiny_setup.photo_jpeg)
    args = ["--device", "cpu", "predict", str(a), str(b), "--models", str(tiny_setup.model_path)]
    assert main([*args, "--gallery", str(tiny_setup.gallery_path), "--top-k", "1"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["case_id"] for r in results] == ["a/photo", "b/photo"]
    assert [r["gmx"]["photo"] for r in results] == [str(a), str(b)]


def test_commands_apply_the_configured_torch_threads(tmp_path, tiny_setup, capsys, monkeypatch):
    """The CLI follows the same thread policy as the app (``GMX_THREADS`` / ``runtime.threads``)."""
    import torch

    monkeypatch.setenv("GMX_THREADS", "2")
    torch.set_num_threads(1)  # conftest's setting; restored by it after the test
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(tiny_setup.photo_jpeg)
    args = ["--device", "cpu", "predict", str(photo), "--models", str(tiny_setup.model_path)]
    assert main([*args, "--gallery", str(tiny_setup.gallery_path), "--top-k", "1"]) == 0
    capsys.readouterr()
    assert torch.get_num_threads() == 2


class _Started(Exception):
    """Raised by the stand-in of the first model load (or a command's first real work)."""


#: Every command that runs the model: argv (``{M}`` model, ``{G}`` gallery, ``{P}`` photo,
#: ``{T}`` a scratch folder, ``{S}`` the demo scorecard JSON).
_MODEL_COMMANDS = {
    "encode": "encode {P} --out {T}/e.csv --models {M}",
    "predict": "predict {P} --models {M} --gallery {G}",
    "gallery build": "gallery build --gmdb {T} --images {T} --out {T}/g.sqlite --models {M}",
    "gallery import": "gallery import --gmdb {T} --encodings {T}/e.csv --out {T}/g.sqlite --models {M}",
    "gallery info --verify": "gallery info {G} --verify --models {M}",
    "gallery calibrate": "gallery calibrate {G} --unaffected {T} --out {T}/c.sqlite --models {M}",
    "evaluate": "evaluate --gmdb {T} --images {T} --models {M} --gallery {G}",
    "report": "report {P} --out {T}/r.html --models {M} --gallery {G}",
    "batch run": "batch run --out {T}/b --models {M} --gallery {G}",
    "batch summarize": "batch summarize --out {T}/b --results {T}/r.npz --models {M} --gallery {G}",
    "scorecard run": "scorecard run --out {T}/s --models {M} --gallery {G}",
    "scorecard-pairs": "scorecard-pairs --json {S} --models {M} --gallery {G}",
    "serve": "serve --models {M} --gallery {G}",
    "study analyse --maps": "study analyse {D}",
}


@pytest.mark.parametrize("command", list(_MODEL_COMMANDS))
def test_every_model_command_applies_the_configured_torch_threads(
    command, tmp_path, tiny_setup, monkeypatch
):
    """By the time a command loads its models, ``GMX_THREADS`` is applied (``gmx batch``,
    ``gmx scorecard`` and ``gmx scorecard-pairs`` once restated or skipped the policy; batch kept
    torch's default). The model load is stopped there: no command runs to its end."""
    import torch

    import gmx.pipeline  # noqa: F401 - binds load_model at import (see ``no_work``)
    from gmx.config import DEMO_DIR

    seen: list[int] = []

    def started(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise _Started

    for target in ("gmx.encode.load_model", "gmx.pipeline.load_model", "gmx.gallery.import_gmdb"):
        monkeypatch.setattr(target, started)
    monkeypatch.setenv("GMX_THREADS", "2")
    torch.set_num_threads(1)  # conftest's setting; restored by it after the module
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(tiny_setup.photo_jpeg)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "face.jpg").write_bytes(tiny_setup.photo_jpeg)
    db = scratch / "answers.sqlite"
    if command.startswith("study"):  # an (empty) answers database of the demo pilot study
        from gmx.study import StudyStore
        from gmx.study.views import demo_pilot

        pilot = demo_pilot(DEMO_DIR)
        StudyStore(db, study_name=pilot.name, fingerprint=pilot.fingerprint)
    argv = _MODEL_COMMANDS[command].format(
        M=tiny_setup.model_path, G=tiny_setup.gallery_path, P=photo, T=scratch,
        S=DEMO_DIR / "scorecard.json", D=db,
    ).split()  # fmt: skip
    with pytest.raises(_Started):
        main(["--device", "cpu", *argv])
    torch.set_num_threads(1)  # the module's later tests as before
    assert seen == [2]


# ------------------------------------------------------------------------------ native chatter

#: Start-up lines MediaPipe / LiteRT / TFLite print from native code (glog "W0000 ...", LiteRT
#: "INFO: [file.cc:N]", TFLite "INFO: Created TensorFlow Lite XNNPACK delegate").
_NATIVE_CHATTER = re.compile(r"^(?:INFO: |WARNING: Logging before|[IW]\d{4} )", re.MULTILINE)


def _run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    root = Path(gmx.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gmx.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )


def test_cli_hides_native_startup_lines_unless_verbose(tmp_path):
    photo = Path(gmx.__file__).resolve().parents[1] / "models/demo/examples/syndrome_A_1008.jpg"
    quiet = _run_cli("align", str(photo), "--out", str(tmp_path / "q"), tmp_path=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)[0]["faces"], "the demo photo has a face"
    assert _NATIVE_CHATTER.search(quiet.stderr) is None, quiet.stderr
    loud = _run_cli("-v", "align", str(photo), "--out", str(tmp_path / "v"), tmp_path=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert _NATIVE_CHATTER.search(loud.stderr) is not None, loud.stderr


def test_quiet_cli_still_shows_its_own_messages(tmp_path):
    result = _run_cli(
        "align", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o"), tmp_path=tmp_path
    )
    assert result.returncode == 1
    assert "No image file" in result.stdout
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _run_cli(
        "align", str(tmp_path / "missing.jpg"), "--out", str(blocker), tmp_path=tmp_path
    )
    assert result.returncode == 2
    assert "is a file, not a folder" in result.stderr


def test_quiet_native_stderr_keeps_error_lines_and_python_messages(capfd):
    from gmx.cli import quiet_native_stderr

    with quiet_native_stderr():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 00:00:1.0   12 graph.cc:1] Feedback manager chatter\n")
        os.write(2, b"E0000 00:00:1.0   12 graph.cc:2] something broke\n")
        print("python message", file=sys.stderr)
    os.write(2, b"after the block\n")
    err = capfd.readouterr().err
    assert "XNNPACK" not in err and "chatter" not in err
    assert "something broke" in err and "python message" in err and "after the block" in err


def test_predict_reports_every_face_of_a_group_photo(
    tmp_path, tiny_setup, capsys, caplog, nba_group_photo
):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(3)
    canvas, _ = nba_group_photo(3, rng, lambda: rng.uniform(40, 75))
    photo = tmp_path / "team.png"
    Image.fromarray(canvas).save(photo)
    base = ["--device", "cpu", "predict", str(photo), "--models", str(tiny_setup.model_path)]
    base += ["--gallery", str(tiny_setup.gallery_path), "--top-k", "1"]
    assert main([*base, "--face", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gmx"]["faces_found"] == 3 and out["gmx"]["face_index"] == 1
    boxes = out["gmx"]["faces"]
    assert len(boxes) == 3 and all(b["detection_score"] > 0.8 for b in boxes)
    assert out["gmx"]["demo"] is False and out["gmx"]["face_doubts"] == []
    assert "3 faces found" in caplog.text and "--face" in caplog.text
    assert main([*base, "--face", "5"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert "only 3 face(s)" in out["error"]


def test_gallery_info_verify_says_when_the_metadata_checksum_is_absent(
    tmp_path, capsys, caplog
) -> None:
    """An older gallery (no metadata checksum) is reported, not refused (issue 10, item 16)."""
    import shutil
    import sqlite3

    from gmx.config import DEMO_GALLERY, DEMO_MODEL

    old = tmp_path / "old.sqlite"
    shutil.copyfile(DEMO_GALLERY, old)
    with sqlite3.connect(old) as con:
        con.execute("DELETE FROM meta WHERE key='metadata_sha256'")
    con.close()
    args = ["gallery", "info", str(old), "--verify", "--sample", "2", "--models", str(DEMO_MODEL)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metadata_checksum"] == "absent"
    assert report["verify"]["metadata_checksum"] == "absent"
    assert "no metadata checksum" in caplog.text
    assert main(["gallery", "info", str(DEMO_GALLERY)]) == 0  # the shipped gallery carries one
    assert json.loads(capsys.readouterr().out)["metadata_checksum"] == "verified"


# ------------------------------------------------------------------------------ predict --format
def _predict(tiny_setup, photos: list[Path], *extra: str) -> list[str]:
    models = ["--models", str(tiny_setup.model_path), "--gallery", str(tiny_setup.gallery_path)]
    return ["--device", "cpu", "predict", *map(str, photos), *models, *extra]


def test_predict_formats_phenopacket_and_genes_tsv(tmp_path, tiny_setup, capsys):
    from google.protobuf.json_format import Parse
    from phenopackets import Phenopacket

    photo = tmp_path / "face.jpg"
    photo.write_bytes(tiny_setup.photo_jpeg)
    assert main(_predict(tiny_setup, [photo], "--top-k", "3")) == 0
    service = json.loads(capsys.readouterr().out)  # json stays the default
    assert service["case_id"] == "face" and "suggested_syndromes_list" in service

    args = _predict(tiny_setup, [photo], "--top-k", "3", "--format", "phenopacket")
    assert main([*args, "--hpo", "HP:0000316"]) == 0
    packet = Parse(capsys.readouterr().out, Phenopacket(), ignore_unknown_fields=False)
    assert packet.id == packet.subject.id == "face"
    names = [s["syndrome_name"] for s in service["suggested_syndromes_list"]]
    assert [i.diagnosis.disease.label for i in packet.interpretations] == names
    assert [(f.type.id, f.type.label) for f in packet.phenotypic_features] == [
        ("HP:0000316", "Hypertelorism")
    ]

    assert main(_predict(tiny_setup, [photo], "--top-k", "3", "--format", "genes-tsv")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == [
        "case_id",
        "gene",
        "syndrome",
        "syndrome_id",
        "distance",
        "gestalt_score",
        "rank",
    ]
    genes = [row.split("\t") for row in lines[1:]]
    assert {g[0] for g in genes} == {"face"}
    assert [g[1] for g in genes] == [g["gene_name"] for g in service["suggested_genes_list"]]
    for k, (g, s) in enumerate(zip(genes, service["suggested_genes_list"], strict=True)):
        assert round(float(g[4]), 3) == s["distance"] and g[6] == str(k + 1)


def test_predict_genes_tsv_of_several_photos_stacks_the_tables(tmp_path, tiny_setup, capsys):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    for p in (a, b):
        p.write_bytes(tiny_setup.photo_jpeg)
    assert main(_predict(tiny_setup, [a, b], "--top-k", "2", "--format", "genes-tsv")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("case_id\tgene\t")
    assert [line.split("\t")[0] for line in lines[1:]] == ["a", "a", "b", "b"]
    assert main(_predict(tiny_setup, [a, b], "--top-k", "2", "--format", "phenopacket")) == 0
    assert [p["id"] for p in json.loads(capsys.readouterr().out)] == ["a", "b"]


def test_predict_refuses_a_malformed_hpo_id(tmp_path, tiny_setup, capsys):
    photo = tmp_path / "face.jpg"
    photo.write_bytes(tiny_setup.photo_jpeg)
    with pytest.raises(SystemExit) as exc:
        main(_predict(tiny_setup, [photo], "--format", "phenopacket", "--hpo", "Hypertelorism"))
    assert exc.value.code == 2
    assert "not an HPO term id" in capsys.readouterr().err
