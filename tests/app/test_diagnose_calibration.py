"""Diagnose page: the calibrated statements per suggested syndrome and the face-level "not closer
than typical unaffected faces" message (issue 12), on the tiny configuration and on the demo."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import DEMO_GALLERY, load_config
from gmx.gallery import (
    NOT_CLOSER_THAN_UNAFFECTED,
    GalleryImage,
    calibrate,
    load_gallery,
    save_gallery,
)
from tests.app.test_photo import _export, downloads  # noqa: F401 (fixture)
from ui import diagnose_view, state

TIMEOUT = 120
ROOT = Path(__file__).resolve().parents[2]
DIAGNOSE = str(ROOT / "pages" / "1_Diagnose.py")


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _diagnosed(photo: bytes) -> AppTest:
    at = AppTest.from_file(DIAGNOSE, default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = photo
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.run()
    _ok(at)
    return at


@pytest.fixture()
def calibrated_env(tiny_setup, tmp_path, monkeypatch):
    """The tiny configuration with a calibrated copy of its gallery: one patient per image (so each
    syndrome has two patients) and an unaffected cohort at distance 0, whose median (0) every face
    is at or above: the face-level message must show."""
    tiny = load_gallery(tiny_setup.gallery_path)
    images = tuple(
        GalleryImage(im.image_id, f"p{i}", im.syndrome_id) for i, im in enumerate(tiny.images)
    )
    g = dataclasses.replace(tiny, images=images)
    g = dataclasses.replace(g, calibration=calibrate(g, unaffected=[0.0, 0.0, 0.0]))
    path = save_gallery(g, tmp_path / "calibrated.sqlite")
    config = tmp_path / "gmx.toml"
    config.write_text(
        f'[models]\npaths = ["{tiny_setup.model_path}"]\n[gallery]\npath = "{path}"\n'
        '[runtime]\ndevice = "cpu"\n'
    )
    monkeypatch.setenv("GMX_CONFIG", str(config))
    return tiny_setup


def test_uncalibrated_gallery_says_so(tiny_env):
    at = _diagnosed(tiny_env.photo_jpeg)
    assert any(diagnose_view.CALIBRATION_TITLE in s.value for s in at.subheader)
    assert [i.value for i in at.info if "not calibrated" in i.value] == [
        diagnose_view.NOT_CALIBRATED
    ]


def test_statements_per_syndrome_flag_and_export(calibrated_env, downloads):  # noqa: F811
    at = _diagnosed(calibrated_env.photo_jpeg)
    warnings = [w.value for w in at.warning if NOT_CLOSER_THAN_UNAFFECTED in w.value]
    assert len(warnings) == 1 and "3 unaffected people" in warnings[0]
    lines = [m.value for m in at.markdown if "unaffected people" in m.value]
    table = at.dataframe[0].value
    assert len(lines) == len(table) == 3  # one statement per suggested syndrome, in rank order
    for k, (line, name) in enumerate(zip(lines, table["syndrome"], strict=True), start=1):
        assert line.startswith(f"**{k}. {name}**")
        assert (
            "of 6 gallery photos (own patient left out)" in line
            and "3 of 3 unaffected people (100%)" in line
        )
        assert "Not closer than typical unaffected faces (median 0.000)" in line
    gmx = _export(at, downloads)["gmx"]
    assert gmx["calibration"]["not_closer_than_typical"] is True
    assert gmx["calibration"]["n_unaffected"] == 3
    first = gmx["syndromes"][0]["calibration"]
    assert first["n_unaffected_within"] == 3 and first["n_own"] == 6
    assert "suggested_syndromes_list" in _export(at, downloads)  # service fields unchanged


def test_demo_faces_flagged_only_when_not_closer_than_unaffected(monkeypatch):
    """On the demo (held-out calibration on the photo path, unaffected median 0.331): the syndrome C example's
    nearest syndrome is at 0.415 (flagged), the syndrome B example's at 0.129 (not flagged)."""
    for name in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY"):
        monkeypatch.delenv(name, raising=False)
    at = AppTest.from_file(DIAGNOSE, default_timeout=TIMEOUT).run()
    at.segmented_control[0].set_value("Demo faces").run()
    next(b for b in at.button if b.label == "syndrome C 1209").click().run()
    _ok(at)
    assert any(NOT_CLOSER_THAN_UNAFFECTED in w.value for w in at.warning)
    lines = [m.value for m in at.markdown if "held-out photos of affected patients" in m.value]
    cal = load_gallery(DEMO_GALLERY).calibration
    assert cal is not None and cal.n_unaffected  # measured on the photo path (docs/gallery.md)
    assert lines and f"of {cal.n_unaffected} unaffected people" in lines[0]
    assert "estimated PPV" in lines[0]
    next(b for b in at.button if b.label == "syndrome B 1113").click().run()
    _ok(at)
    assert not any(NOT_CLOSER_THAN_UNAFFECTED in w.value for w in at.warning)
    first = next(m.value for m in at.markdown if "held-out photos of affected patients" in m.value)
    assert first.startswith("**1. ") and "estimated PPV 100%" in first
