"""The Syndromes page: compute on the tiny setup (with progress), then browse and compare; the demo
loads its committed results instantly."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from ui import state

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "4_Syndromes.py")


def test_tiny_setup_compute_then_browse(tiny_setup, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    monkeypatch.setenv("GMX_CACHE_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state[state.CONFIG] = load_config()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No syndrome-level results" in i.value for i in at.info)
    # The tiny gallery has one subject per syndrome: only logit targets exist.
    at.sidebar.radio[0].set_value("logit").run()
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert list(tmp_path.glob("syndromes/*.npz"))
    assert len(at.subheader) == 1 and "T:1" in at.subheader[0].value
    assert len(at.dataframe) == 1
    at.sidebar.toggle[0].set_value(True).run()
    assert not at.exception
    assert len(at.subheader) == 2
    at.sidebar.radio[1].set_value("std").run()
    assert not at.exception


@pytest.mark.skipif(
    not (ROOT / "models" / "demo" / "syndromes.npz").exists(), reason="demo results not built"
)
def test_demo_results_load_instantly(monkeypatch) -> None:
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("No syndrome-level results" in i.value for i in at.info)
    assert "SYN:0001" in at.subheader[0].value
    text = " ".join(m.value for m in at.markdown)
    assert "HP:0000316" in text and "patients" in text
    at.sidebar.radio[1].set_value("contrast").run()
    assert not at.exception
