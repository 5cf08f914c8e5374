"""Analysis numbers against hand-computed values on a tiny fixture."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gmx.study import Answer, analyse, to_markdown
from gmx.study.analysis import (
    alpha_rows,
    arm_comparisons,
    arm_rows,
    bootstrap_mean_ci,
    krippendorff_ordinal,
    likert_rows,
    mcnemar_exact,
    region_rows,
)
from gmx.study.regions import Annotation, region_agreement

T = "2026-01-01T00:00:00Z"

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 coders x 12 units
# example with missing values: published ordinal alpha = 0.815 (nominal 0.743, interval 0.849).
KRIPP = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)


def A(rater, case, arm, item, value, method=""):
    return Answer(rater, case, arm, item, method, str(value), T)


def test_alpha_published_example():
    assert round(krippendorff_ordinal(KRIPP), 3) == 0.815


def test_alpha_rows_from_answers_match_the_matrix():
    answers = [
        A(f"R{r}", f"c{u}", "ai+maps", "likert:trust", int(v), "gradcam")
        for r, row in enumerate(KRIPP)
        for u, v in enumerate(row)
        if not np.isnan(v)
    ]
    rows = {r.item: r for r in alpha_rows(answers)}
    assert round(rows["trust"].alpha, 3) == 0.815 and rows["trust"].units == 12
    assert rows["all"].alpha == rows["trust"].alpha and rows["trust"].raters == 4


def test_alpha_undefined_cases():
    assert math.isnan(krippendorff_ordinal(np.array([[3.0, 3.0], [3.0, 3.0]])))  # no variation
    assert math.isnan(krippendorff_ordinal(np.array([[1.0, 2.0]])))  # one rater


def test_likert_rows_by_hand():
    answers = [A("R1", "c1", "ai+maps", "likert:trust", v, "gradcam") for v in (1, 2, 2, 5)]
    answers += [A("R1", "composite:SYN:0001", "", "likert:recognisable", 3)]
    rows = likert_rows(answers, n_boot=500)
    comp, grad = rows
    assert (grad.scope, grad.subject, grad.item, grad.n) == ("map", "gradcam", "trust", 4)
    assert grad.counts == (1, 2, 0, 0, 1) and grad.mean == 2.5 and grad.median == 2.0
    assert 1.0 <= grad.ci_low < 2.5 < grad.ci_high <= 5.0
    assert (comp.scope, comp.subject, comp.counts, comp.ci_low, comp.ci_high) == (
        "composite", "SYN:0001", (0, 0, 1, 0, 0), 3.0, 3.0)  # fmt: skip


def test_bootstrap_is_seeded():
    v = [1, 2, 3, 4, 5]
    assert bootstrap_mean_ci(v, seed=1) == bootstrap_mean_ci(v, seed=1)
    assert bootstrap_mean_ci([3, 3, 3]) == (3.0, 3.0)


def _pairs(arm, rater, init_ok, final_ok, c_init, c_final, start=0):
    out = []
    for k, (i_ok, f_ok, ci, cf) in enumerate(zip(init_ok, final_ok, c_init, c_final, strict=True)):
        case = f"c{start + k}"
        out += [
            A(rater, case, arm, "initial_guess", "S" if i_ok else "X"),
            A(rater, case, arm, "initial_confidence", ci),
            A(rater, case, arm, "final_guess", "S" if f_ok else "X"),
            A(rater, case, arm, "final_confidence", cf),
        ]
    return out


def test_arm_rows_by_hand():
    # initial right [F, F, T, F], final [T, T, T, F]: discordant 2 vs 0 -> exact McNemar p = 0.5;
    # confidence 1,2,3,2 -> 4,3,3,4: changes 3,1,0,2 -> zero dropped, all positive, n = 3:
    # exact two-sided Wilcoxon p = 2 / 2**3 = 0.25
    answers = _pairs("ai", "R1", [0, 0, 1, 0], [1, 1, 1, 0], [1, 2, 3, 2], [4, 3, 3, 4])
    truth = {f"c{k}": "S" for k in range(4)}
    (row,) = arm_rows(answers, truth)
    assert (row.arm, row.pairs) == ("ai", 4)
    assert (row.accuracy_initial, row.accuracy_final) == (0.25, 0.75)
    assert row.mcnemar_p == pytest.approx(0.5)
    assert (row.confidence_initial, row.confidence_final, row.confidence_change) == (2.0, 3.5, 1.5)
    assert row.wilcoxon_p == pytest.approx(0.25)
    assert mcnemar_exact([True], [True]) == 1.0


def test_arm_comparison_by_hand():
    # two raters, each with one case per arm; per-rater confidence change ai: +1, +1;
    # maps: +3, +2 -> differences 2, 1 (no ties, n = 2): exact Wilcoxon p = 2 / 2**2 = 0.5
    answers = _pairs("ai", "R1", [0], [0], [2], [3], 0) + _pairs(
        "ai+maps", "R1", [0], [1], [1], [4], 1
    )
    answers += _pairs("ai", "R2", [0], [0], [2], [3], 0) + _pairs(
        "ai+maps", "R2", [1], [1], [2], [4], 1
    )
    truth = {"c0": "S", "c1": "S"}
    got = {c.measure: c for c in arm_comparisons(answers, truth, "case")}
    conf = got["confidence"]
    assert (conf.n, conf.change_ai, conf.change_maps) == (2, 1.0, 2.5)
    assert conf.p == pytest.approx(0.5)
    acc = got["accuracy"]
    assert (acc.change_ai, acc.change_maps) == (0.0, 0.5)


def test_region_rows_and_analyse(tiny_study):
    ann = Annotation(cells=(0,))
    smap = np.zeros((112, 112))
    smap[:28, :28] = 1.0
    answers = [A("R1", "c1", "ai+maps", "regions", ann.to_json()),
               A("R1", "c2", "ai", "regions", Annotation().to_json())]  # fmt: skip
    maps = {("c1", "gradcam"): smap, ("c1", "hirescam"): 1 - smap}
    rows = {r.method: r for r in region_rows(answers, maps)}
    direct = region_agreement(smap, ann)
    assert rows["gradcam"].n == 1  # the empty mark of c2 is not counted
    assert rows["gradcam"].auc_judd == direct.auc_judd and rows["gradcam"].nss == direct.nss
    assert rows["hirescam"].nss < 0
    fix = {"c1": Annotation(points=((5.0, 5.0),), durations=(0.3,))}
    res = analyse(tiny_study, answers, truth={}, maps=maps, masks={"c1": smap > 0}, fixations=fix)
    assert {r.source for r in res.regions} == {"raters", "fixations"}
    assert res.truth is not None and res.truth.iou == 1.0
    md = to_markdown(res)
    assert "AUC-Judd" in md and "true causal regions" in md
    assert res.to_dict()["raters"] == 1
