"""The "Use case" walkthrough in a real browser (issue 12): one demo patient through every page to
the case report; the downloaded PDF opens and holds the provenance block."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from tests.app.test_browser import browser_page, start_app, stop_app  # noqa: F401  (fixture)
from ui import report_view, usecase_view

pytestmark = pytest.mark.browser

#: Each step's page, and a text that shows it has drawn its result for the patient.
PAGES = (
    ("Open Diagnose", "Top 10 syndromes"),
    ("Open Explain", "Large view"),
    ("Open Similarity", "Similarity to gallery patients"),
    ("Open Syndromes", "Syndromes"),
)


def _settled(page, timeout_ms: int = 240_000) -> None:
    """Wait until the page's script run has finished (Streamlit's "Running..." widget is gone).

    Clicking on while a run still imports a library (pandas on the first table) can break the next
    page's run (a partially imported module seen from the new run's thread), so each step waits.
    """
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)


def test_walk_the_use_case_and_download_the_report(browser_page, tmp_path):  # noqa: F811
    env = {k: "" for k in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY")}
    proc, url = start_app(env)
    try:
        page = browser_page
        page.goto(f"{url}/Use_case", wait_until="networkidle")
        page.get_by_role("button", name=usecase_view.LOAD_LABEL).click()
        page.get_by_role("button", name=report_view.PDF_LABEL).wait_for(timeout=240_000)
        _settled(page)
        for link, drawn in PAGES:
            page.get_by_role("link", name=link).click()
            page.get_by_text(drawn, exact=False).first.wait_for(timeout=240_000)
            _settled(page)
            body = page.inner_text("body")
            assert "Traceback" not in body and "Error" not in body, body[-500:]
            # back through the sidebar (in the same session: the patient stays loaded)
            page.get_by_role("link", name="Use case").first.click()
            page.get_by_role("button", name=report_view.PDF_LABEL).wait_for(timeout=240_000)
            _settled(page)
        shot = Path(os.environ.get("GMX_SCREENSHOT_DIR", tmp_path)) / "use_case.png"
        page.screenshot(path=str(shot), full_page=True)
        with page.expect_download(timeout=240_000) as dl:
            page.get_by_role("button", name=report_view.PDF_LABEL).click()
        data = Path(dl.value.path()).read_bytes()
        assert dl.value.suggested_filename == report_view.PDF_FILE
    finally:
        stop_app(proc)
    from pypdf import PdfReader

    text = re.sub(r"\s+", " ", "".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages))
    assert "Provenance" in text
    for label in ("gmx version", "Ensemble fingerprint", "Photo SHA-256", "Created (UTC)"):
        assert label in text
    assert "#1 Synthetic syndrome C" in text
    assert "Synthetic demo, not for clinical use" in text
