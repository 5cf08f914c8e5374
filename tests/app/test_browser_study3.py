"""A gallery-case study in a real browser: a rater rates one case taken from a real small gallery
(demo photos embedded with the demo model by the library, read from its file), with the case's own
patient left out of the gallery; the analysis page then says marks vs true regions is not
available.

Uses the helpers of tests/app/test_browser.py (start_app, Chromium flags) and the rater steps of
tests/app/test_browser_study.py; skipped like them when Chromium is missing.
"""

from __future__ import annotations

import re

import pytest

from gmx.gallery import load_gallery
from gmx.study import load_study, rater_plan
from gmx.study.cases import gallery_case_ids
from gmx.study.views import STUDY_DB_ENV, STUDY_ENV
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app
from tests.app.test_browser_study import T, _after_impression, _impression, _shot, _sign_in
from tests.app.test_study_gallery_pages import gallery_study_text
from tests.study.galleries import build_study_gallery

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_rater_rates_a_gallery_case(tmp_path):
    from playwright.sync_api import sync_playwright

    gallery_file = build_study_gallery(tmp_path)
    gallery = load_gallery(gallery_file)
    study_path = tmp_path / "study.toml"
    study_path.write_text(gallery_study_text(gallery_file.name, gallery_case_ids(gallery, 3)))
    study = load_study(study_path)
    case = rater_plan(study, "R01").cases[0]
    truth = gallery.images[gallery.index_of(case.case_id)].syndrome_id
    db = tmp_path / "answers.sqlite"
    proc, url = start_app({STUDY_ENV: str(study_path), STUDY_DB_ENV: str(db),
                           "GMX_CONFIG": "", "GMX_MODELS": "", "GMX_GALLERY": ""})  # fmt: skip
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            _sign_in(page, url, "R01")
            page.get_by_text("Case 1 of 1").wait_for(timeout=T)
            _impression(page, shot="study3_gallery_impression")
            page.get_by_role("button", name="Save ratings of Map A").wait_for(timeout=T * 2)
            suggested = page.inner_text("body")
            _after_impression(page, truth, shot="study3_gallery_case")
            page.get_by_text("All done").wait_for(timeout=T)

            page.goto(f"{url}/Study_analysis", wait_until="networkidle")
            page.get_by_text("Accuracy and confidence before").wait_for(timeout=T * 3)
            page.get_by_text("Where raters looked").wait_for(timeout=T)
            _shot(page, "study3_gallery_analysis")
            body = page.inner_text("body")
            browser.close()
    finally:
        stop_app(proc)
    assert "Map A" in suggested and "gradcam" not in suggested.lower()
    # wrong impression, right final answer (the gallery label), confidence 2 -> 4
    assert re.search(r"ai\+maps\s+1\s+0\.00\s+1\.00\s+[\d.]+\s+2\.00\s+4\.00\s+2\.00", body), body
    assert re.search(r"raters\s+gradcam\s+1\s", body), body
    assert "no known causal regions" in body and "hit rate" not in body
