"""App pages run headless with Streamlit's AppTest on the tiny fixture configuration."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from ui import state

TIMEOUT = 120
ROOT = Path(__file__).resolve().parents[2]


def _no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_home_page_shows_active_configuration(tiny_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    text = " ".join(m.value for m in at.markdown)
    assert "tiny.pt" in text and "tiny.sqlite" in text


def test_diagnose_without_photo_asks_for_one(tiny_env):
    at = AppTest.from_file(str(ROOT / "pages" / "1_Diagnose.py"), default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    assert any("Upload a frontal face photo" in i.value for i in at.info)


def test_diagnose_ranks_a_real_photo(tiny_env):
    at = AppTest.from_file(str(ROOT / "pages" / "1_Diagnose.py"), default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = tiny_env.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    at.run()
    _no_exceptions(at)
    assert any("Top" in s.value for s in at.subheader)
    table = at.dataframe[0].value
    assert list(table["syndrome"])[:1] and len(table) == 3
    assert set(table["syndrome"]) == {
        "Test syndrome one",
        "Test syndrome two",
        "Test syndrome three",
    }


def test_pages_apply_the_configured_torch_threads(tiny_env, monkeypatch):
    """The configuration's ``threads`` reaches torch when a page loads the models (the app ran with
    torch's default, every core, which is 5-10x slower on a busy machine: docs/benchmarks.md)."""
    import torch

    monkeypatch.setenv("GMX_THREADS", "2")
    at = AppTest.from_file(str(ROOT / "pages" / "1_Diagnose.py"), default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = tiny_env.photo_jpeg
    at.session_state[state.PHOTO_NAME] = "astronaut.jpg"
    torch.set_num_threads(1)  # conftest's setting; restored by it after the test
    at.run()
    _no_exceptions(at)
    # Each script run is a new thread, which takes torch's process-wide count: read it from one.
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    reader.start()
    reader.join()
    assert seen == [2]


def test_diagnose_explains_unusable_and_faceless_photos(tiny_env):
    import io

    import numpy as np
    from PIL import Image

    at = AppTest.from_file(str(ROOT / "pages" / "1_Diagnose.py"), default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = load_config()
    at.session_state[state.PHOTO_BYTES] = b"%PDF-1.4 not an image"
    at.session_state[state.PHOTO_NAME] = "doc.pdf"
    at.run()
    _no_exceptions(at)
    assert any("cannot be used" in e.value for e in at.error)

    buf = io.BytesIO()
    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(buf, format="PNG")
    at.session_state[state.PHOTO_BYTES] = buf.getvalue()
    at.session_state[state.PHOTO_NAME] = "wall.png"
    at.run()
    _no_exceptions(at)
    assert any("face" in w.value.lower() for w in at.warning)


@pytest.mark.parametrize("page", ["app.py", "pages/1_Diagnose.py"])
def test_a_bad_config_file_is_a_message_not_a_traceback(page, tmp_path, monkeypatch):
    bad = tmp_path / "gmx.toml"
    bad.write_text('[gallery]\nphotos_visible = "false"\n', encoding="utf-8")
    monkeypatch.setenv("GMX_CONFIG", str(bad))
    at = AppTest.from_file(str(ROOT / page), default_timeout=TIMEOUT).run()
    _no_exceptions(at)
    shown = " ".join(e.value for e in at.error)
    assert "photos_visible" in shown and str(bad) in shown


def test_settings_survive_a_change_of_page(tiny_env):
    """A kept setting (top-k) keeps its value after another page ran (Streamlit would delete it)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = load_config()
    at.switch_page("pages/1_Diagnose.py").run()
    at.slider(key=state.TOP_K).set_value(4).run()
    assert at.session_state[state.TOP_K] == 4
    at.switch_page("pages/4_Syndromes.py").run()
    _no_exceptions(at)
    at.switch_page("pages/1_Diagnose.py").run()
    _no_exceptions(at)
    assert at.slider(key=state.TOP_K).value == 4
    assert not at.warning or all("Session State" not in w.value for w in at.warning)
