"""The Similarity page on the tiny fixture configuration (AppTest, headless)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from ui import similarity_view, state

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


def test_similarity_settings_survive_a_change_of_page(tiny_setup, monkeypatch):
    """Method, split, occlusion window, opacity and the chosen syndrome are kept (item 8)."""
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = tiny_setup.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.switch_page("pages/3_Similarity.py").run()
    _no_exceptions(at)
    keep = state.KEEP_PREFIX
    other = sorted({"T:1", "T:2", "T:3"} - {at.selectbox(key=keep + "similarity.syndrome").value})
    at.selectbox(key=keep + "similarity.syndrome").set_value(other[0]).run()
    at.sidebar.radio(key=keep + "similarity.split").set_value("shared").run()
    at.sidebar.slider(key=keep + "similarity.window").set_value(24).run()
    at.sidebar.slider(key=keep + "similarity.opacity").set_value(0.3).run()
    at.sidebar.segmented_control[0].set_value("gradcam").run()
    _no_exceptions(at)
    at.switch_page("pages/1_Diagnose.py").run()
    _no_exceptions(at)
    at.switch_page("pages/3_Similarity.py").run()
    _no_exceptions(at)
    assert at.selectbox(key=keep + "similarity.syndrome").value == other[0]
    assert at.sidebar.radio(key=keep + "similarity.split").value == "shared"
    assert at.sidebar.slider(key=keep + "similarity.window").value == 24
    assert at.sidebar.slider(key=keep + "similarity.opacity").value == 0.3
    assert at.sidebar.segmented_control[0].value == "gradcam"
    assert "Grad-CAM" in " ".join(m.value for m in at.markdown)


def test_distance_is_explained_where_it_is_shown(tiny_setup, monkeypatch):
    from ui import similarity_view, tables

    at = _page(tiny_setup.config_path, tiny_setup.photo_jpeg, monkeypatch).run()
    _no_exceptions(at)
    assert at.selectbox[0].help == tables.DISTANCE_HELP
    assert any("Neither is a probability" in c.value for c in at.caption)
    assert similarity_view.VARIANT_COLUMNS["distance"]["help"] == tables.DISTANCE_HELP


def test_default_query_cell_is_the_strongest_one():
    """The library picks the default cell (no argmax in the app); pixel maps have none."""
    import numpy as np

    from gmx.encode.geometry import stride_grid
    from gmx.similarity import PairMaps

    raw = np.random.default_rng(0).normal(size=(7, 7)).astype(np.float32)
    blank = np.zeros((112, 112), np.float32)
    pair = PairMaps("exact", "Exact", 0, 0.5, blank, blank, raw, raw, grid=stride_grid((7, 7)))
    assert pair.strongest_query_cell() == int(np.argmax(raw))
    pixels = PairMaps("occlusion", "Pair occlusion", 0, 0.5, blank, blank, blank, blank)
    assert pixels.strongest_query_cell() is None


def test_request_is_frozen_and_checked():
    import dataclasses

    from ui.similarity_view import SimilarityRequest

    request = SimilarityRequest()
    assert request.params == ()
    occlusion = request.with_method("occlusion")
    assert dict(occlusion.params) == {"window": request.window, "stride": request.stride}
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.method = "gradcam"  # type: ignore[misc]
    for bad in ({"method": "x"}, {"split": "x"}, {"opacity": -1.0}, {"n_patients": 0}):
        with pytest.raises(ValueError):
            SimilarityRequest(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("page", ["pages/3_Similarity.py", "pages/4_Syndromes.py"])
def test_pages_hold_no_magic_numbers_or_array_code(page):
    """Slider ranges, sizes and column ratios are named constants; arrays are the library's."""
    import ast

    tree = ast.parse((ROOT / page).read_text(encoding="utf-8"))
    numbers = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    }
    assert numbers <= {0, 1, 2}, sorted(numbers)
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "numpy" not in imported


def test_view_helpers_do_no_array_arithmetic():
    source = (ROOT / "ui" / "similarity_view.py").read_text(encoding="utf-8")
    assert "np.argmax" not in source and "np.abs" not in source
    assert "range(49)" not in source and "(7, 7)" not in source


def test_a_rerun_with_a_slow_method_reuses_its_maps(tiny_setup, monkeypatch):
    """The second view of the same pairs is served from the store, without replaying the first
    view's progress bar (st.cache_data raised CacheReplayClosureError here)."""
    at = _page(tiny_setup.config_path, tiny_setup.photo_jpeg, monkeypatch).run()
    at.sidebar.segmented_control[0].set_value("gradcam").run()
    _no_exceptions(at)
    at.run()
    _no_exceptions(at)
    assert "Grad-CAM" in " ".join(m.value for m in at.markdown)


def _both_checks_toggles() -> None:
    """Script of :func:`test_one_checks_toggle_with_a_key_per_page` (run by AppTest)."""
    import streamlit as st

    from ui import common, explain_view, similarity_view

    for view in (explain_view, similarity_view):
        request = common.checks_controls(view.CHECKS_LABEL, key=view.CHECKS_TOGGLE,
                                         help=view.CHECKS_HELP)  # fmt: skip
        st.write(f"{view.CHECKS_TOGGLE}={request.on}")


def test_one_checks_toggle_with_a_key_per_page():
    """Explain's and Similarity's checks toggles are one controls function (ui.common) with each
    page's label and key: the keys differ, so switching one never switches the other."""
    from ui import explain_view, similarity_view

    assert explain_view.CHECKS_TOGGLE != similarity_view.CHECKS_TOGGLE
    at = AppTest.from_function(_both_checks_toggles).run()
    _no_exceptions(at)
    assert [t.label for t in at.toggle] == [explain_view.CHECKS_LABEL, similarity_view.CHECKS_LABEL]
    assert [t.value for t in at.toggle] == [False, False]  # off by default
    at.toggle(key=similarity_view.CHECKS_TOGGLE).set_value(True).run()
    _no_exceptions(at)
    assert [m.value for m in at.markdown] == [
        "gmx.explain.checks=False",
        "gmx.similarity.checks=True",
    ]


def test_pair_map_checks_on_demand(tiny_setup, monkeypatch):
    """Off by default; on: each pair gets deletion/insertion against random on both faces (the
    tiny gallery holds its photos), the library's numbers in a table."""
    at = _page(tiny_setup.config_path, tiny_setup.photo_jpeg, monkeypatch).run()
    _no_exceptions(at)
    assert not any("vs random" in m.value for m in at.markdown)
    assert "gmx.explain.checks" not in [t.key for t in at.toggle]  # its own key, not Explain's
    assert at.toggle(key="gmx.similarity.checks").label == similarity_view.CHECKS_LABEL
    at.toggle(key="gmx.similarity.checks").set_value(True).run()
    _no_exceptions(at)
    lines = [m.value for m in at.markdown if "vs random" in m.value]
    assert lines and "query face vs random" in lines[0] and "gallery face vs random" in lines[0]
    table = next(d.value for d in at.dataframe if "deletion vs random" in d.value.columns)
    assert sorted(set(table["face"])) == ["gallery", "query"]
    want = table["random deletion AUC"] - table["deletion AUC"]
    assert (table["deletion vs random"] - want).abs().max() < 1e-9
    want = table["insertion AUC"] - table["random insertion AUC"]
    assert (table["insertion vs random"] - want).abs().max() < 1e-9
