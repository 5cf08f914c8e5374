"""Issue 11, user side, in a real browser (Debian Chromium, Playwright), on the demo: the per-photo
checks under the Explain maps, the pair checks on Similarity, and the Scorecard page's region
profiles per syndrome."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.app.test_browser import browser_page, start_app, stop_app  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]


def _shot(page, tmp_path: Path, name: str) -> None:
    page.wait_for_timeout(1500)
    shot = Path(os.environ.get("GMX_SCREENSHOT_DIR", tmp_path)) / name
    page.screenshot(path=str(shot), full_page=True)


def test_checks_on_explain_and_similarity_and_region_profiles(browser_page, tmp_path):  # noqa: F811
    env = {k: "" for k in ("GMX_CONFIG", "GMX_MODELS", "GMX_GALLERY")}
    proc, url = start_app(env)
    try:
        page = browser_page
        page.goto(f"{url}/Diagnose", wait_until="networkidle")
        page.get_by_text("Demo faces").first.wait_for(timeout=180_000)  # a loaded CPU is slow
        page.get_by_text("Demo faces").first.click()
        page.get_by_role("button", name="syndrome B 1113").click()
        page.get_by_text("Top 10 syndromes").wait_for(timeout=120_000)

        page.get_by_role("link", name="Explain").click()
        page.get_by_text("Large view").wait_for(timeout=240_000)
        page.get_by_text("Check the maps on this photo").click()
        page.get_by_text("Checks on this photo").wait_for(timeout=240_000)
        _shot(page, tmp_path, "explain_checks.png")
        body = page.inner_text("body")
        assert "Traceback" not in body
        verdicts = body.count("beats random") + body.count("not better than random")
        assert verdicts == 3 * 7  # 3 syndromes x the 7 default fast methods
        assert body.count("completeness residual") == 3  # DeepLIFT, one per syndrome

        page.get_by_role("link", name="Similarity").click()
        page.get_by_text("Pair details").wait_for(timeout=240_000)
        page.get_by_text("Check the maps (deletion and insertion").click()
        page.get_by_text("Checks of these pair maps").wait_for(timeout=240_000)
        _shot(page, tmp_path, "similarity_checks.png")
        body = page.inner_text("body")
        assert "Traceback" not in body
        assert body.count("query face vs random") == 3  # the 3 nearest patients
        assert body.count("gallery face vs random") == 3

        page.get_by_role("link", name="Scorecard").click()
        page.get_by_text("Leaderboard").first.wait_for(timeout=120_000)
        if not (ROOT / "models" / "demo" / "regions.json").exists():
            pytest.skip("demo region profiles not built (benchmarks/regions.py --out)")
        page.get_by_text("Regions per syndrome").wait_for(timeout=60_000)
        page.get_by_text("Regions per syndrome").scroll_into_view_if_needed()
        page.locator(".js-plotly-plot").nth(6).wait_for(timeout=60_000)
        page.get_by_text("Example photo syndrome_A_1008.jpg").wait_for(timeout=60_000)
        _shot(page, tmp_path, "scorecard_regions.png")
        body = page.inner_text("body")
        assert "Traceback" not in body and "Example photo syndrome_A_1008.jpg" in body
    finally:
        stop_app(proc)
