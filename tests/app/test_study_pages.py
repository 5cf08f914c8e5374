"""The Study and Study analysis pages (AppTest): a rater walks the demo pilot, resumes in a new
session, never sees a method name; the analysis page shows the numbers of the stored answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import DEMO_DIR
from gmx.study import StudyStore
from gmx.study.views import STUDY_DB_ENV, STUDY_ENV, demo_pilot
from ui import study_view

ROOT = Path(__file__).resolve().parents[2]
STUDY = str(ROOT / "pages" / "7_Study.py")
ANALYSIS = str(ROOT / "pages" / "8_Study_analysis.py")
#: More steps than the demo pilot has (3 cases x at most 4 steps + 3 composite faces).
MAX_STEPS = 20

pytestmark = pytest.mark.skipif(
    not (DEMO_DIR / "synth_faces.npz").exists(), reason="demo data not built"
)


@pytest.fixture()
def study_env(monkeypatch, tmp_path):
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    monkeypatch.delenv(STUDY_ENV, raising=False)
    db = tmp_path / "answers.sqlite"
    monkeypatch.setenv(STUDY_DB_ENV, str(db))
    return db


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [w.label for w in (*at.radio, *at.selectbox, *at.multiselect, *at.button)]
    parts += [str(o) for w in at.selectbox for o in w.options]
    return " ".join(parts)


def _stage(at: AppTest) -> str:
    labels = [b.label for b in at.button]
    if any("Save my impression" in x for x in labels):
        return "impression"
    if any(x.startswith("Save ratings of") for x in labels):
        return "maps"
    if any("next case" in x for x in labels):
        return "final"
    if any("All done" in s.value for s in at.success):
        return "done"
    return "composite" if any(x == "Save" for x in labels) else "?"


def _answer_step(at: AppTest, *, rating: int = 4) -> str:
    stage = _stage(at)
    assert stage != "?", [b.label for b in at.button]
    if stage == "impression":
        at.multiselect[0].set_value([5, 6]).run()
        at.selectbox[0].set_value(at.selectbox[0].options[0] and "SYN:0001")
        at.radio[0].set_value(2)
        next(b for b in at.button if b.label == "Save my impression").click().run()
    elif stage == "maps":
        for r in at.radio:
            r.set_value(rating)
        saved = sum(study_view.SAVED_MARK in m.value for m in at.markdown)
        [b for b in at.button if b.label.startswith("Save ratings of")][saved].click().run()
    elif stage == "final":
        at.selectbox[0].set_value("SYN:0001")
        at.radio[0].set_value(4)
        next(b for b in at.button if "next case" in b.label).click().run()
    elif stage == "composite":
        for r in at.radio:
            r.set_value(3)
        next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return stage


def _start(rater: str) -> AppTest:
    at = AppTest.from_file(STUDY, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.sidebar.text_input(key=study_view.RATER_KEY).set_value(rater).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_rater_walks_resumes_and_methods_stay_blinded(study_env):
    study = demo_pilot(DEMO_DIR)
    at = AppTest.from_file(STUDY, default_timeout=300)
    at.run()
    assert any("rater id" in i.value for i in at.info)
    at.sidebar.text_input(key=study_view.RATER_KEY).set_value("Dr. Who").run()
    assert any("pseudonym" in e.value for e in at.error)

    at = _start("R01")
    assert _stage(at) == "impression"
    # saving without marks is refused and nothing is stored
    at.selectbox[0].set_value("SYN:0001")
    at.radio[0].set_value(2)
    next(b for b in at.button if b.label == "Save my impression").click().run()
    assert any("Mark at least one region" in e.value for e in at.error)
    store = StudyStore(study_env)
    assert not [a for a in store.answers() if a.item.startswith("initial")]

    seen = [_answer_step(at)]  # first impression
    for _ in range(MAX_STEPS):
        if _stage(at) in ("impression", "done"):
            break
        seen.append(_answer_step(at))
    # a new session (the tab was closed) resumes at the second case
    at = _start("R01")
    assert "1 of 3 cases done" in at.get("progress")[0].proto.text
    text = _text(at)
    for _ in range(MAX_STEPS):
        if _stage(at) == "done":
            break
        seen.append(_answer_step(at))
        text += _text(at)
    assert _stage(at) == "done", seen
    assert {"impression", "final", "composite"} <= set(seen)
    for m in study.methods:  # blinded: no method name anywhere a rater reads
        assert m not in text.lower() and "grad-cam" not in text.lower()
    answers = StudyStore(study_env).answers("R01")
    items = {a.item for a in answers}
    assert {"initial_guess", "initial_confidence", "regions", "final_guess"} <= items
    regions = [a for a in answers if a.item == "regions"]
    assert len(regions) == 3 and all('"cells": [5, 6]' in a.value for a in regions)


def test_analysis_page_shows_the_numbers(study_env):
    from gmx.study.store import Answer

    study = demo_pilot(DEMO_DIR)
    store = StudyStore(study_env, study_name=study.name, fingerprint=study.fingerprint)
    c = study.cases[0]
    t = "2026-01-01T00:00:00Z"
    rows = []
    for rater, (first, final) in {
        "R1": ("SYN:0002", "SYN:0001"),
        "R2": ("SYN:0001", "SYN:0001"),
    }.items():
        rows += [Answer(rater, c, "ai", "initial_guess", "", first, t),
                 Answer(rater, c, "ai", "initial_confidence", "", "2", t),
                 Answer(rater, c, "ai", "final_guess", "", final, t),
                 Answer(rater, c, "ai", "final_confidence", "", "4", t)]  # fmt: skip
    store.save_many(rows)
    at = AppTest.from_file(ANALYSIS, default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    md = " ".join(m.value for m in at.markdown)
    # truth of the first pilot case is SYN:0001: before 1 of 2 right, after 2 of 2; confidence 2 -> 4
    assert "| ai | 2 | 0.50 | 1.00 | 1.000 | 2.00 | 4.00 | 2.00 |" in md
    assert "2 raters" in md


def test_a_bad_study_file_or_foreign_database_is_a_message(monkeypatch, tmp_path):
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("[study]\nname = 'x'\n")
    monkeypatch.setenv(STUDY_ENV, str(bad))
    monkeypatch.setenv(STUDY_DB_ENV, str(tmp_path / "a.sqlite"))
    at = AppTest.from_file(STUDY, default_timeout=300)
    at.run()
    assert not at.exception
    assert any("cannot be opened" in e.value and "cases.ids is empty" in e.value for e in at.error)
    # a database made for another study is refused, nothing is written to it
    monkeypatch.delenv(STUDY_ENV)
    StudyStore(tmp_path / "a.sqlite", fingerprint="another")
    at = _start("R01")
    assert any("another study definition" in e.value for e in at.error)
    assert StudyStore(tmp_path / "a.sqlite").answers() == []
