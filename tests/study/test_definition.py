from __future__ import annotations

import tomllib

import pytest

from gmx.study import ARM_MAPS, StudyError, check, load_study, new_template, study_from_text
from gmx.study.definition import DEFAULT_MAP_ITEMS


def test_template_is_commented_valid_toml_with_thesis_items(tmp_path):
    text = new_template(cases=["a", "b", "c"])
    assert text.count("#") > 10
    doc = tomllib.loads(text)
    assert [i["key"] for i in doc["map_items"]] == [i.key for i in DEFAULT_MAP_ITEMS]
    goals = {i["goal"] for i in doc["map_items"]}
    assert goals == {
        "algorithmic transparency",
        "user trust and reliance",
        "model interpretability",
    }
    p = tmp_path / "s.toml"
    p.write_text(text)
    assert check(p) == []
    s = load_study(p)
    assert s.cases == ("a", "b", "c") and s.cases_per_rater == 3 and ARM_MAPS in s.arms


def test_template_without_cases_is_reported(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(new_template())
    assert any("cases.ids is empty" in x for x in check(p))


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("cases_per_rater = 3", "cases_per_rater = 9", "more than the 3 cases"),
        ('randomise = "case"', 'randomise = "coin"', "study.randomise"),
        ('arms = ["ai", "ai+maps"]', 'arms = ["ai", "maps"]', "unknown ['maps']"),
        ('methods = ["gradcam", "hirescam"]', "methods = []", "at least one method"),
        ('key = "trust"', 'key = "transparency"', "duplicate key"),
        ("seed = 0", "seed = -1", "study.seed"),
        ("[study]", "[studdy]", "[study] table is missing"),
    ],
)
def test_check_lists_each_problem(tmp_path, old, new, needle):
    text = new_template(cases=["a", "b", "c"])
    assert old in text
    p = tmp_path / "s.toml"
    p.write_text(text.replace(old, new, 1))
    problems = check(p)
    assert any(needle in x for x in problems), problems
    with pytest.raises(StudyError):
        load_study(p)


def test_check_unknown_methods_and_cases(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(new_template(cases=["a", "b", "c"]))
    assert any("unknown ['hirescam']" in x for x in check(p, known_methods=["gradcam"]))
    assert any("not in the case source" in x for x in check(p, known_cases=["a", "b"]))


def test_not_toml_and_missing_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[study\n")
    assert check(p)[0].startswith("not valid TOML")
    assert "cannot read" in check(tmp_path / "nope.toml")[0]


def test_fingerprint_changes_with_plan_inputs():
    a = study_from_text(new_template(cases=["a", "b", "c"]))
    b = study_from_text(new_template(cases=["a", "b", "c"]).replace("seed = 0", "seed = 1"))
    assert a.fingerprint != b.fingerprint
