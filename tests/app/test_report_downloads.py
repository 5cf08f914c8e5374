"""The case-report downloads on Diagnose and Explain (issue 12 "Exports"): AppTest on the tiny
configuration; deferred (built on click only), the face left out unless the box is ticked."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import load_config
from ui import report_view, state

TIMEOUT = 180
ROOT = Path(__file__).resolve().parents[2]
DIAGNOSE = "pages/1_Diagnose.py"
EXPLAIN = "pages/2_Explain.py"


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture()
def app(tiny_setup, monkeypatch) -> AppTest:
    """The whole app on the tiny configuration, at Diagnose, with the astronaut uploaded."""
    monkeypatch.setenv("GMX_CONFIG", str(tiny_setup.config_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.session_state[state.CONFIG] = load_config()
    at.switch_page(DIAGNOSE).run()
    _ok(at)
    at.file_uploader[0].set_value(("Jane_Doe.jpg", tiny_setup.photo_jpeg, "image/jpeg")).run()
    _ok(at)
    return at


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return re.sub(r"\s+", " ", "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))


def _face_checkbox(at: AppTest):
    return next(c for c in at.checkbox if c.label == report_view.FACE_LABEL)


def test_diagnose_offers_the_case_report_built_on_click(app, monkeypatch, clicked):
    built: list[str] = []
    real = report_view.render
    monkeypatch.setattr(report_view, "render", lambda r, fmt: built.append(fmt) or real(r, fmt))
    app.run()
    assert built == []  # no run builds a report
    assert _face_checkbox(app).value is False  # the face is left out by default
    syndromes = list(app.dataframe[0].value["syndrome"])
    text = _pdf_text(clicked(app, report_view.PDF_LABEL))
    assert "Provenance" in text and "Photo SHA-256" in text and "Created (UTC)" in text
    assert syndromes[0] in text
    assert "Jane" not in text  # the neutral case id, not the file name
    html = clicked(app, report_view.HTML_LABEL).decode()
    assert "Aligned face" not in html
    assert html.count("<img ") == 0  # no maps on Diagnose, and no face
    assert sorted(built) == ["html", "pdf"]


def test_the_face_goes_in_only_when_ticked_and_choices_travel(app, clicked):
    hpo = "HP:0000316"  # the tiny gallery's one term (Test syndrome one)
    radio = next(r for r in app.radio if f"({hpo}" in r.label)
    radio.set_value("present").run()
    app.text_input[0].set_value("GM-17").run()
    _ok(app)
    html = clicked(app, report_view.HTML_LABEL).decode()
    assert "GM-17" in html
    assert re.search(r"<td>confirmed</td><td>Hypertelorism \(HP:0000316\)</td>", html)
    _face_checkbox(app).check().run()
    _ok(app)
    html = clicked(app, report_view.HTML_LABEL).decode()
    assert "Aligned face" in html
    face = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="aligned face"', html)
    from PIL import Image

    assert Image.open(io.BytesIO(base64.b64decode(face.group(1)))).size == (112, 112)


def test_explain_report_holds_the_maps_shown(app, clicked):
    app.switch_page(EXPLAIN).run()
    _ok(app)
    assert _face_checkbox(app).value is False
    html = clicked(app, report_view.HTML_LABEL).decode()
    methods = state.KEEP_PREFIX + "explain.methods"
    from gmx.explain import get_method

    shown = [get_method(m).display_name for m in app.session_state[methods]]
    assert shown and all(f"<th>{name}<div" in html for name in shown)
    assert "Aligned face" not in html
    assert "Provenance" in _pdf_text(clicked(app, report_view.PDF_LABEL))


def test_the_calibration_is_computed_once_per_configuration(app, monkeypatch, clicked):
    import gmx.report
    from ui import resources

    resources._report_calibration.clear()
    app.run()
    calls: list[str] = []
    real = gmx.report.report_calibration
    monkeypatch.setattr(gmx.report, "report_calibration", lambda g: calls.append(g.name) or real(g))
    clicked(app, report_view.HTML_LABEL)
    clicked(app, report_view.PDF_LABEL)
    assert calls == ["tiny gallery"]
