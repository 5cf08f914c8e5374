"""Real browser: the demo's calibrated statements on the Diagnose page (issue 12)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gmx.config import DEMO_GALLERY
from gmx.gallery import load_gallery
from tests.app.test_browser import browser_page, start_app, stop_app  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


def test_demo_face_shows_calibrated_statements_and_the_flag(browser_page, tmp_path):  # noqa: F811
    """The syndrome C example's nearest syndrome (0.415) is farther than the median unaffected face
    (0.331, photo path): the face-level message shows, and each suggested syndrome has its statement."""
    env = {k: "" for k in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY")}
    proc, url = start_app(env)
    try:
        page = browser_page
        page.goto(f"{url}/Diagnose", wait_until="networkidle")
        page.get_by_text("Demo faces").first.wait_for(timeout=90_000)
        page.get_by_text("Demo faces").first.click()
        page.get_by_role("button", name="syndrome C 1209").click()
        heading = page.get_by_text("How close is close? Calibrated statements")
        heading.wait_for(timeout=90_000)
        flag = page.get_by_text("This face is not closer to any syndrome than typical unaffected")
        flag.wait_for(timeout=30_000)
        flag.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        shot = Path(os.environ.get("GMX_SCREENSHOT_DIR", tmp_path)) / "calibration.png"
        page.screenshot(path=str(shot))
        body = page.inner_text("body")
        assert body.count("held-out photos of affected patients") == 3  # ranks 1-3 open
        page.get_by_text("Statements for ranks 4–10").click()  # the rest are folded
        page.get_by_text("held-out photos of affected patients").nth(9).wait_for(timeout=30_000)
        body = page.inner_text("body")
        assert body.count("held-out photos of affected patients") == 10  # top-10, one each
        cal = load_gallery(DEMO_GALLERY).calibration
        assert cal is not None and f"of {cal.n_unaffected} unaffected people" in body
        assert "estimated PPV" in body
    finally:
        stop_app(proc)
