"""The Similarity page on the tiny fixture configuration (AppTest, headless)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from ui import state

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "3_Similarity.py")


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _page(config_path: Path, photo: bytes, monkeypatch) -> AppTest:
    monkeypatch.setenv("GMX_CONFIG", str(config_path))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = photo
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    return at


def _charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


def test_without_photo_points_to_diagnose(tiny_setup, monkeypatch):
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    _no_exceptions(at)
    assert any("Diagnose" in i.value for i in at.info)


def test_exact_pair_maps_of_a_real_photo(tiny_setup, monkeypatch):
    at = _page(tiny_setup.config_path, tiny_setup.photo_jpeg, monkeypatch).run()
    _no_exceptions(at)
    text = " ".join(m.value for m in at.markdown)
    # the tiny gallery has one patient per syndrome: one pair of maps, plus the correspondence
    assert "patient subj" in text and "similarity" in text and "constant: query" in text
    assert len(_charts(at)) >= 2 + 2 + 1
    assert at.selectbox(key="gmx.similarity.cell").value in range(49)
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["m0 plain", "m0 grey", "m0 flip", "m0 flip grey"]
    assert at.get("download_button")
    # the other split convention: both maps share one constant
    at.sidebar.radio[0].set_value("shared").run()
    _no_exceptions(at)
    assert any("shared constant" in m.value for m in at.markdown)
    # choosing another query cell redraws the correspondence
    at.selectbox(key="gmx.similarity.cell").set_value(0).run()
    _no_exceptions(at)
    # another syndrome of the top-k
    other = sorted({"T:1", "T:2", "T:3"} - {at.selectbox[0].value})[0]
    at.selectbox[0].set_value(other).run()
    _no_exceptions(at)
    assert at.selectbox[0].value == other
    text = " ".join(m.value for m in at.markdown)
    assert f"patient subj{int(other[-1]) - 1}" in text  # T:k's only patient is subj(k-1)


@pytest.mark.parametrize("method", ["hirescam", "gradcam", "occlusion"])
def test_gradient_and_occlusion_pairs(tiny_setup, monkeypatch, method):
    at = _page(tiny_setup.config_path, tiny_setup.photo_jpeg, monkeypatch).run()
    at.sidebar.segmented_control[0].set_value(method).run()
    _no_exceptions(at)
    text = " ".join(m.value for m in at.markdown)
    assert {"hirescam": "HiResCAM", "gradcam": "Grad-CAM", "occlusion": "Pair occlusion"}[
        method
    ] in text
    assert any("correspondence comes with the exact" in c.value for c in at.caption)
    assert len(_charts(at)) >= 2


def test_restricted_photos_are_never_shown(tiny_setup, monkeypatch, tmp_path):
    config = tmp_path / "restricted.toml"
    config.write_text(
        tiny_setup.config_path.read_text().replace(
            "[gallery]\n", "[gallery]\nphotos_visible = false\n"
        )
    )
    at = _page(config, tiny_setup.photo_jpeg, monkeypatch).run()
    _no_exceptions(at)
    assert any("may not be shown" in i.value for i in at.info)
    captions = " ".join(c.value for c in at.caption)
    assert "template face" in captions and "photo img" not in captions
    assert len(_charts(at)) >= 4
