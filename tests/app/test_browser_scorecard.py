"""The Scorecard page in a real browser (Debian Chromium, Playwright): the committed demo scorecard
renders its leaderboard, three plotly curves and the two agreement heatmaps without errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.app.test_browser import browser_page, start_app, stop_app  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser


def test_demo_scorecard_page_renders(browser_page, tmp_path):  # noqa: F811
    env = {k: "" for k in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY") if k in os.environ}
    proc, url = start_app(env)
    try:
        page = browser_page
        page.goto(f"{url}/Scorecard", wait_until="networkidle")
        page.get_by_text("Leaderboard").first.wait_for(timeout=90_000)
        page.locator(".js-plotly-plot").nth(4).wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        shot = Path(os.environ.get("GMX_SCREENSHOT_DIR", tmp_path)) / "scorecard.png"
        page.screenshot(path=str(shot), full_page=True)
        body = page.inner_text("body")
        assert "Traceback" not in body
        # curves; agreement heatmaps; the region bars of one syndrome (with the demo's profiles)
        regions = (
            2 if (Path(__file__).resolve().parents[2] / "models/demo/regions.json").exists() else 0
        )
        assert page.locator(".js-plotly-plot").count() == 3 + 2 + regions
        assert "Method agreement over the faces" in body
        assert "How to read this" in body and "Verdict of" in body
    finally:
        stop_app(proc)
