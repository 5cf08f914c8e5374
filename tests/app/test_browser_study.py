"""A 3-case study in a real browser: two raters in parallel browser contexts, one closes the tab
midway and resumes; the answers are exported and the analysis page shows their numbers.

Uses the helpers of tests/app/test_browser.py (start_app, Chromium flags); skipped like it when
Chromium is missing.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest

from gmx.config import DEMO_DIR
from gmx.study import load_study, new_template, rater_plan
from gmx.study.cases import demo_truth
from gmx.study.views import STUDY_DB_ENV, STUDY_ENV, demo_pilot
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WRONG = "SYN:0005"
SHOTS = Path(
    os.environ.get("GMX_SCREENSHOT_DIR", "/tmp")
)  # every case below is of another syndrome
T = 60_000


def _study_file(tmp_path: Path) -> Path:
    """3 demo cases, both arms per rater, one method, one map item, no composite faces."""
    cases = demo_pilot(DEMO_DIR).cases
    text = new_template(cases=cases).replace(
        'methods = ["gradcam", "hirescam"]', 'methods = ["gradcam"]'
    )
    head, _, _ = text.partition("[[map_items]]")
    text = (
        head
        + '[[map_items]]\nkey = "trust"\ngoal = "user trust and reliance"\ntext = "I trust it."\n'
    )
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


def _choose(page, label: str, option: str) -> None:
    box = page.locator("[data-testid=stSelectbox]").filter(has_text=label).last
    box.click()
    page.get_by_role("option", name=option).click()


def _radio(page, label: str) -> None:
    page.locator("[data-testid=stRadio] label").filter(
        has_text=re.compile(f"^{re.escape(label)}$")
    ).last.click()


def _sign_in(page, url: str, rater: str) -> None:
    page.goto(f"{url}/Study", wait_until="networkidle")
    box = page.get_by_label("Your rater id", exact=True).and_(page.locator("input"))
    box.wait_for(timeout=T)
    box.fill(rater)
    box.press("Enter")


def _shot(page, name: str | None) -> None:
    if name:
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _impression(page, shot: str | None = None) -> None:
    page.get_by_role("button", name="Save my impression").wait_for(timeout=T)
    # the visible component frame: during a rerun the previous case's frame can linger, hidden
    page.locator("iframe:visible").first.wait_for(timeout=T)
    frame = page.frame_locator("iframe:visible").first
    frame.locator("img").click(position={"x": 120, "y": 130})
    page.get_by_text("1 clicked mark(s)").wait_for(timeout=T)
    _choose(page, "Syndrome", _name(WRONG))
    _radio(page, "Unsure")
    _shot(page, shot)
    page.get_by_role("button", name="Save my impression").click()


def _after_impression(page, truth: str, shot: str | None = None) -> None:
    """Maps (if shown) then the final answer: the model's top suggestion is the truth."""
    final = page.get_by_role("button", name="Save and go to the next case")
    maps = page.get_by_role("button", name="Save ratings of Map A")
    final.or_(maps).first.wait_for(timeout=T * 2)
    if maps.count():
        _radio(page, "4 Agree")
        _shot(page, shot and f"{shot}_maps")
        maps.click()
        final.wait_for(timeout=T)
    _choose(page, "Syndrome", _name(truth))
    _radio(page, "Confident")
    _shot(page, shot and f"{shot}_final")
    final.click()


_NAMES: dict[str, str] = {}


def _name(syndrome: str) -> str:
    if not _NAMES:
        from gmx.synth import all_classes

        _NAMES.update({s.syndrome_id: s.name for s in all_classes()})
    return _NAMES[syndrome]


def test_two_raters_resume_export_and_analysis(tmp_path):
    from playwright.sync_api import sync_playwright

    study_path = _study_file(tmp_path)
    study = load_study(study_path)
    db = tmp_path / "answers.sqlite"
    truth = demo_truth(DEMO_DIR)
    plans = {r: rater_plan(study, r) for r in ("R01", "R02")}
    proc, url = start_app({STUDY_ENV: str(study_path), STUDY_DB_ENV: str(db),
                           "GMX_CONFIG": "", "GMX_MODELS": "", "GMX_GALLERY": ""})  # fmt: skip
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            a = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            b = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            _sign_in(a, url, "R01")
            _sign_in(b, url, "R02")
            # both raters answer their first case, interleaved
            _impression(a, shot="study_impression")
            _impression(b)
            _after_impression(a, truth[plans["R01"].cases[0].case_id], shot="study_case1")
            _after_impression(b, truth[plans["R02"].cases[0].case_id])
            # R01 gives the second impression, then closes the tab
            a.get_by_text("1 of 3 cases done").wait_for(timeout=T)
            _impression(a)
            a.get_by_text("Save my impression").wait_for(state="detached", timeout=T)
            a.close()
            # R02 finishes meanwhile
            for case in plans["R02"].cases[1:]:
                _impression(b)
                _after_impression(b, truth[case.case_id])
            b.get_by_text("All done").wait_for(timeout=T)
            # R01 comes back in a new tab: resumes after the saved impression of case 2
            a = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            _sign_in(a, url, "R01")
            a.get_by_text("1 of 3 cases done").wait_for(timeout=T)
            assert a.get_by_role("button", name="Save my impression").count() == 0
            _after_impression(a, truth[plans["R01"].cases[1].case_id], shot="study_case2")
            _impression(a)
            _after_impression(a, truth[plans["R01"].cases[2].case_id])
            a.get_by_text("All done").wait_for(timeout=T)

            # the analysis page: export, and the numbers of these answers
            a.goto(f"{url}/Study_analysis", wait_until="networkidle")
            a.get_by_text("Accuracy and confidence before").wait_for(timeout=T * 3)
            a.get_by_text("Where raters looked").wait_for(timeout=T)
            _shot(a, "study_analysis")
            with a.expect_download() as dl:
                a.get_by_role("button", name="Download answers (CSV)").click()
            rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
            body = a.inner_text("body")
            browser.close()
    finally:
        stop_app(proc)
    assert {r["rater"] for r in rows} == {"R01", "R02"}
    finals = [r for r in rows if r["item"] == "final_guess"]
    assert len(finals) == 6 and all(r["value"] == truth[r["case_id"]] for r in finals)
    # every initial guess was wrong, every final answer right; confidence 2 -> 4 throughout
    for arm in ("ai", "ai+maps"):
        n = sum(c.arm == arm for p in plans.values() for c in p.cases)
        assert re.search(
            rf"{re.escape(arm)}\s+{n}\s+0\.00\s+1\.00\s+[\d.]+\s+2\.00\s+4\.00\s+2\.00", body
        ), body
    assert "2 raters, " in body
    # every case was marked once by each rater: 6 readings compared with the gradcam maps
    assert re.search(r"raters\s+gradcam\s+6\s", body), body
