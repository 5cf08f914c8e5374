from __future__ import annotations

import pytest

from gmx.study import next_step, rater_plan, study_from_text
from gmx.study.assign import (
    FINAL_CONFIDENCE,
    FINAL_GUESS,
    INITIAL_CONFIDENCE,
    INITIAL_GUESS,
    composite_case,
    likert_item,
)
from gmx.study.definition import ARM_AI, ARM_MAPS


def test_plan_is_deterministic_and_differs_between_raters(tiny_study):
    a1, a2 = rater_plan(tiny_study, "R01"), rater_plan(tiny_study, "R01")
    assert a1 == a2
    plans = [rater_plan(tiny_study, f"R{i:02d}") for i in range(20)]
    assert len({p.cases for p in plans}) > 1
    for p in plans:
        assert sorted(c.case_id for c in p.cases) == ["c1", "c2", "c3"]
        for c in p.cases:
            assert (sorted(c.methods) == ["gradcam", "hirescam"]) == (c.arm == ARM_MAPS)
            assert c.arm != ARM_AI or c.methods == ()
    # the method order is randomised: both orders occur among maps-arm cases
    orders = {c.methods for p in plans for c in p.cases if c.arm == ARM_MAPS}
    assert orders == {("gradcam", "hirescam"), ("hirescam", "gradcam")}


def test_case_randomisation_is_balanced_within_a_rater(tiny_study):
    for i in range(10):
        arms = [c.arm for c in rater_plan(tiny_study, f"R{i}x").cases]
        assert sorted({arms.count(ARM_AI), arms.count(ARM_MAPS)}) == [1, 2]


def test_rater_randomisation_gives_one_arm_per_rater(tiny_study):
    from gmx.study import new_template

    s = study_from_text(new_template(cases=["c1", "c2", "c3"]).replace('"case"', '"rater"'))
    seen = set()
    for i in range(20):
        arms = {c.arm for c in rater_plan(s, f"R{i:02d}").cases}
        assert len(arms) == 1
        seen |= arms
    assert seen == {ARM_AI, ARM_MAPS}


def test_blinded_labels(tiny_study):
    case = next(c for i in range(9) for c in rater_plan(tiny_study, f"R{i}y").cases if c.methods)
    assert case.blinded_label(case.methods[0]) == "Map A"
    assert case.blinded_label(case.methods[1]) == "Map B"


@pytest.mark.parametrize("bad", ["", "a", "Dr. Smith", "x" * 33, "name@host"])
def test_invalid_rater_ids(tiny_study, bad):
    with pytest.raises(ValueError, match="rater id"):
        rater_plan(tiny_study, bad)


def test_next_step_walks_the_plan():
    from gmx.study import new_template

    text = new_template(cases=["c1", "c2", "c3"])
    s = study_from_text(text.replace("syndromes = []", 'syndromes = ["SYN:0001"]'))
    plan = rater_plan(s, "R01")
    got: set = set()
    assert next_step(s, plan, got).stage == "impression"
    first = plan.cases[0]
    got |= {(first.case_id, INITIAL_GUESS, ""), (first.case_id, INITIAL_CONFIDENCE, "")}
    step = next_step(s, plan, got)
    assert step.stage == ("maps" if first.methods else "final") and step.case_index == 0
    for m in first.methods:
        for it in s.map_items:
            got.add((first.case_id, likert_item(it.key), m))
    assert next_step(s, plan, got).stage == "final"
    got |= {(first.case_id, FINAL_GUESS, ""), (first.case_id, FINAL_CONFIDENCE, "")}
    step = next_step(s, plan, got)
    assert (step.stage, step.case_index, step.done_cases) == ("impression", 1, 1)
    for c in plan.cases[1:]:
        got |= {(c.case_id, k, "") for k in (INITIAL_GUESS, INITIAL_CONFIDENCE, FINAL_GUESS,
                                             FINAL_CONFIDENCE)}  # fmt: skip
        got |= {(c.case_id, likert_item(it.key), m) for m in c.methods for it in s.map_items}
    step = next_step(s, plan, got)
    assert (step.stage, step.syndrome) == ("composite", "SYN:0001")
    got |= {(composite_case("SYN:0001"), likert_item(it.key), "") for it in s.composite_items}
    assert next_step(s, plan, got).stage == "done"
