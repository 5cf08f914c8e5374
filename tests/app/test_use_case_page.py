"""The "Use case" walkthrough page (issue 12): AppTest on the embedded demo."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import GmxConfig
from ui import report_view, state, usecase_view

TIMEOUT = 240
ROOT = Path(__file__).resolve().parents[2]


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture()
def demo_app(monkeypatch) -> AppTest:
    for name in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY"):
        monkeypatch.delenv(name, raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = GmxConfig()
    at.switch_page("pages/5_Use_case.py").run()
    _ok(at)
    return at


def test_walkthrough_loads_its_patient_and_offers_the_report(demo_app, clicked):
    at = demo_app
    assert not at.get("download_button")  # nothing to report before the patient is loaded
    next(b for b in at.button if b.label == usecase_view.LOAD_LABEL).click().run()
    _ok(at)
    headings = [s.value for s in at.subheader]
    assert headings == [s.title for s in usecase_view.STEPS]
    assert any("does not show" in c.value for c in at.caption)
    assert next(iter(at.dataframe[0].value["syndrome"])).startswith("Synthetic syndrome C ")
    from pypdf import PdfReader

    pdf = clicked(at, report_view.PDF_LABEL)
    text = re.sub(r"\s+", " ", "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))
    assert "Provenance" in text and "Photo SHA-256" in text
    assert "#1 Synthetic syndrome C" in text  # the calibrated statement of the top syndrome
    assert "Grad-CAM (signed)" in text and "Saliency" in text
    assert "Synthetic demo, not for clinical use" in text


def test_walkthrough_without_the_demo_says_how(tiny_setup, monkeypatch):
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(str(ROOT / "pages/5_Use_case.py"), default_timeout=TIMEOUT).run()
    _ok(at)
    assert any("switch back to the demo" in i.value for i in at.info)
    assert not at.button or all(b.label != usecase_view.LOAD_LABEL for b in at.button)
