"""The Study and Study analysis pages on gallery cases (AppTest): a real small gallery built from
demo photos with the demo model (tests/study/galleries.py), named by file in the study file. A
rater rates one gallery case in the maps arm; the analysis says marks vs true regions is not
available; a gallery without photos is a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gmx.config import DEMO_DIR
from gmx.gallery import load_gallery, rank
from gmx.study import StudyStore, load_study, new_template, rater_plan
from gmx.study.analysis import TRUTH_NOT_AVAILABLE
from gmx.study.cases import gallery_case_ids
from gmx.study.views import STUDY_DB_ENV, STUDY_ENV
from ui import study_view

ROOT = Path(__file__).resolve().parents[2]
STUDY = str(ROOT / "pages" / "7_Study.py")
ANALYSIS = str(ROOT / "pages" / "8_Study_analysis.py")

pytestmark = pytest.mark.skipif(
    not (DEMO_DIR / "synth_faces.npz").exists(), reason="demo data not built"
)


@pytest.fixture(scope="module")
def gallery_file(tmp_path_factory):
    from tests.study.galleries import build_study_gallery

    return build_study_gallery(tmp_path_factory.mktemp("gallery"))


def gallery_study_text(gallery: str, ids) -> str:
    """One gallery case per rater, the maps arm only, Grad-CAM, one Likert item, no composites."""
    text = new_template(cases=ids, gallery=gallery)
    text = text.replace('methods = ["gradcam", "hirescam"]', 'methods = ["gradcam"]')
    text = text.replace("cases_per_rater = 3", "cases_per_rater = 1")
    text = text.replace('arms = ["ai", "ai+maps"]', 'arms = ["ai+maps"]')
    head, _, _ = text.partition("[[map_items]]")
    return (
        head
        + '[[map_items]]\nkey = "trust"\ngoal = "user trust and reliance"\ntext = "I trust it."\n'
    )


@pytest.fixture()
def study_env(monkeypatch, tmp_path, gallery_file):
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    ids = gallery_case_ids(load_gallery(gallery_file), 3)
    (tmp_path / "g.sqlite").symlink_to(gallery_file)
    path = tmp_path / "study.toml"
    path.write_text(gallery_study_text("g.sqlite", ids))  # relative to the study file
    db = tmp_path / "answers.sqlite"
    monkeypatch.setenv(STUDY_ENV, str(path))
    monkeypatch.setenv(STUDY_DB_ENV, str(db))
    return path, db


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_rater_rates_a_gallery_case_and_the_analysis_has_no_true_regions(study_env):
    path, db = study_env
    study = load_study(path)
    case = rater_plan(study, "R01").cases[0]
    gallery = load_gallery(path.parent / "g.sqlite")
    n = gallery.index_of(case.case_id)
    own = gallery.images[n]
    at = AppTest.from_file(STUDY, default_timeout=300)
    _ok(at.run())
    _ok(at.sidebar.text_input(key=study_view.RATER_KEY).set_value("R01").run())
    # impression: the face is the gallery's stored photo; the choices are the gallery's syndromes
    assert gallery.syndromes["SYN:0001"].name in at.selectbox[0].options
    at.multiselect[0].set_value([5, 6])
    wrong = next(s for s in gallery.syndromes if s != own.syndrome_id)
    at.selectbox[0].set_value(wrong)
    at.radio[0].set_value(2)
    _ok(next(b for b in at.button if b.label == "Save my impression").click().run())
    # the model's suggestions: the case's own patient left out of the gallery
    want = rank(gallery.embeddings[n], gallery, exclude_subjects=[own.subject_id], top_k=5)
    table = at.dataframe[0].value
    assert list(table.iloc[:, 1])[: len(want.syndromes)] == [m.name for m in want.syndromes]
    assert [b.label for b in at.button if b.label.startswith("Save ratings of")] == [
        "Save ratings of Map A"
    ]
    for r in at.radio:
        r.set_value(4)
    _ok(next(b for b in at.button if b.label == "Save ratings of Map A").click().run())
    at.selectbox[0].set_value(own.syndrome_id)
    at.radio[0].set_value(4)
    _ok(next(b for b in at.button if "next case" in b.label).click().run())
    assert any("All done" in s.value for s in at.success)
    answers = StudyStore(db).answers("R01")
    assert {a.case_id for a in answers} == {case.case_id}
    items = {a.item: a for a in answers}
    assert {"initial_guess", "regions", "final_guess"} <= set(items)
    assert [(a.method, a.value) for a in answers if a.method] == [("gradcam", "4")]

    at = _ok(AppTest.from_file(ANALYSIS, default_timeout=300).run())
    md = " ".join(m.value for m in at.markdown)
    assert any("cases: images of gallery g.sqlite" in c.value for c in at.caption)
    # scored against the gallery label: wrong before, right after
    assert "| ai+maps | 1 | 0.00 | 1.00 |" in md
    assert TRUTH_NOT_AVAILABLE in md and "hit rate" not in md
    assert "| raters | gradcam | 1 |" in md


def test_a_gallery_without_photos_is_a_message(monkeypatch, tmp_path, gallery_file):
    from tests.study.galleries import build_study_gallery

    monkeypatch.delenv("GMX_CONFIG", raising=False)
    bare = build_study_gallery(tmp_path, photos=False)
    ids = gallery_case_ids(load_gallery(gallery_file), 3)
    path = tmp_path / "study.toml"
    path.write_text(gallery_study_text(str(bare), ids))
    monkeypatch.setenv(STUDY_ENV, str(path))
    monkeypatch.setenv(STUDY_DB_ENV, str(tmp_path / "a.sqlite"))
    for page in (STUDY,):
        at = _ok(AppTest.from_file(page, default_timeout=300).run())
        assert any("cases cannot be opened" in e.value and "stores no photos" in e.value
                   for e in at.error)  # fmt: skip
