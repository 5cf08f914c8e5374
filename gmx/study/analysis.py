"""The numbers of a study: Likert distributions, inter-rater agreement, arms, region agreement.

* Likert distributions per method (or composite syndrome) and item: counts of 1..5, mean, median and
  a percentile bootstrap confidence interval of the mean (resampling answers; seeded).
* Inter-rater agreement: Krippendorff's alpha, ordinal metric (the ``krippendorff`` package), per
  item with units = (case, map) rated by several raters, and over all map items.
* Arms: per arm, the rater's own guess ("initial") against their final answer on the same case
  (pairs): top-1 accuracy before/after with an exact McNemar test (binomial on the discordant pairs),
  mean confidence before/after with a Wilcoxon signed-rank test on the changes. Between arms, the
  per-rater change (accuracy and confidence; final minus initial) compared with a Wilcoxon
  signed-rank test over raters who saw both arms (``randomise = "case"``) or a Mann-Whitney U test
  between raters (``randomise = "rater"``).
* Region agreement: each rater's marks (and imported fixations) against each method's map of the
  same case: AUC-Judd, NSS, IoU at top-k % (:mod:`gmx.study.regions`), averaged over cases; and the
  marks against the true causal regions where known (the synthetic demo).

Pairs are rater x case readings and are not independent across cases of one rater: p-values are a
screening aid for a pilot, not a substitute for a mixed model (export the tidy data for that).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from gmx.study.assign import (
    COMPOSITE_PREFIX,
    FINAL_CONFIDENCE,
    FINAL_GUESS,
    INITIAL_CONFIDENCE,
    INITIAL_GUESS,
    LIKERT_PREFIX,
    REGIONS,
)
from gmx.study.definition import ARMS, LIKERT_POINTS, StudyDefinition
from gmx.study.regions import (
    TOP_PERCENT,
    Annotation,
    region_agreement,
    truth_agreement,
)
from gmx.study.store import Answer

N_BOOT = 2000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class LikertRow:
    """The distribution of one Likert item for one method (or one composite syndrome).

    Attributes:
        scope: ``"map"`` or ``"composite"``.
        subject: the method (maps) or the syndrome id (composite faces).
        item: the item key.
        counts: answers 1..5.
    """

    scope: str
    subject: str
    item: str
    n: int
    counts: tuple[int, ...]
    mean: float
    median: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class AlphaRow:
    """Krippendorff's alpha (ordinal) of one item (``"all"``: every map item together)."""

    item: str
    units: int
    raters: int
    alpha: float


@dataclass(frozen=True)
class ArmRow:
    """Before/after of one arm over rater x case pairs with both answers."""

    arm: str
    pairs: int
    accuracy_initial: float
    accuracy_final: float
    mcnemar_p: float
    confidence_initial: float
    confidence_final: float
    confidence_change: float
    wilcoxon_p: float


@dataclass(frozen=True)
class ArmComparison:
    """The between-arm test of one per-rater change (``measure``: accuracy or confidence)."""

    measure: str
    test: str
    n: int
    change_ai: float
    change_maps: float
    p: float


@dataclass(frozen=True)
class RegionRow:
    """Mean agreement of marks (``source`` ``"raters"``) or fixations with one method's maps."""

    source: str
    method: str
    n: int
    auc_judd: float
    nss: float
    iou_top: float


@dataclass(frozen=True)
class TruthRow:
    """How well the raters' marks find the true causal regions (cases with a region)."""

    n: int
    iou: float
    hit_rate: float
    coverage: float


@dataclass(frozen=True)
class StudyAnalysis:
    """Everything :func:`analyse` computed."""

    raters: int
    answers: int
    likert: tuple[LikertRow, ...]
    alpha: tuple[AlphaRow, ...]
    arms: tuple[ArmRow, ...]
    arm_comparisons: tuple[ArmComparison, ...]
    regions: tuple[RegionRow, ...]
    truth: TruthRow | None
    top_percent: float
    #: Whether any case has a true causal region (the synthetic demo does; a real gallery does not:
    #: then marks vs true regions is "not available", never a number).
    regions_known: bool = True

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (NaN becomes ``None``)."""
        return _clean(asdict(self))


def _clean(x: object) -> object:
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def bootstrap_mean_ci(
    values: Sequence[float], *, n_boot: int = N_BOOT, level: float = CI_LEVEL, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (NaNs for no values; the value for one)."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(lo), float(hi)


def likert_rows(
    answers: Sequence[Answer], *, n_boot: int = N_BOOT, seed: int = 0
) -> list[LikertRow]:
    """Likert distributions per (method or composite syndrome, item)."""
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for a in answers:
        if not a.item.startswith(LIKERT_PREFIX):
            continue
        key = a.item[len(LIKERT_PREFIX) :]
        if a.case_id.startswith(COMPOSITE_PREFIX):
            groups[("composite", a.case_id[len(COMPOSITE_PREFIX) :], key)].append(int(a.value))
        else:
            groups[("map", a.method, key)].append(int(a.value))
    rows = []
    for (scope, subject, item), vals in sorted(groups.items()):
        counts = tuple(vals.count(k) for k in range(1, LIKERT_POINTS + 1))
        lo, hi = bootstrap_mean_ci(vals, n_boot=n_boot, seed=seed)
        rows.append(LikertRow(scope, subject, item, len(vals), counts,
                              float(np.mean(vals)), float(np.median(vals)), lo, hi))  # fmt: skip
    return rows


def krippendorff_ordinal(matrix: np.ndarray) -> float:
    """Krippendorff's alpha, ordinal, of a ``(raters, units)`` matrix with NaN = not rated, values in
    1..5; NaN when fewer than two units have two ratings or all values are equal."""
    import krippendorff

    m = np.asarray(matrix, np.float64)
    pairable = (np.isfinite(m).sum(axis=0) >= 2).sum()
    values = m[np.isfinite(m)]
    if m.shape[0] < 2 or pairable < 1 or np.unique(values).size < 2:
        return float("nan")
    return float(
        krippendorff.alpha(
            reliability_data=m,
            level_of_measurement="ordinal",
            value_domain=list(range(1, LIKERT_POINTS + 1)),
        )
    )


def alpha_rows(answers: Sequence[Answer]) -> list[AlphaRow]:
    """Ordinal alpha per map item (units = case x method) and over all map items."""
    maps = [a for a in answers if a.item.startswith(LIKERT_PREFIX) and a.method]
    raters = sorted({a.rater for a in maps})
    rows = []
    items = sorted({a.item for a in maps})
    for item in [*items, "all"]:
        sel = [a for a in maps if item == "all" or a.item == item]
        units = sorted({(a.case_id, a.method, a.item) for a in sel})
        if not units:
            continue
        ui = {u: j for j, u in enumerate(units)}
        ri = {r: i for i, r in enumerate(raters)}
        m = np.full((len(raters), len(units)), np.nan)
        for a in sel:
            m[ri[a.rater], ui[(a.case_id, a.method, a.item)]] = float(a.value)
        shown = item if item == "all" else item[len(LIKERT_PREFIX) :]
        rows.append(AlphaRow(shown, len(units), len(raters), krippendorff_ordinal(m)))
    return rows


@dataclass(frozen=True)
class _Pair:
    rater: str
    case_id: str
    arm: str
    correct_initial: bool
    correct_final: bool
    conf_initial: int
    conf_final: int


def _pairs(answers: Sequence[Answer], truth: Mapping[str, str]) -> list[_Pair]:
    by: dict[tuple[str, str], dict[str, Answer]] = defaultdict(dict)
    for a in answers:
        if not a.method and not a.case_id.startswith(COMPOSITE_PREFIX):
            by[(a.rater, a.case_id)][a.item] = a
    out = []
    needed = (INITIAL_GUESS, INITIAL_CONFIDENCE, FINAL_GUESS, FINAL_CONFIDENCE)
    for (rater, case), d in sorted(by.items()):
        if case not in truth or not all(k in d for k in needed):
            continue
        out.append(_Pair(
            rater, case, d[FINAL_GUESS].arm,
            d[INITIAL_GUESS].value == truth[case], d[FINAL_GUESS].value == truth[case],
            int(d[INITIAL_CONFIDENCE].value), int(d[FINAL_CONFIDENCE].value),
        ))  # fmt: skip
    return out


def mcnemar_exact(before: Sequence[bool], after: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value (binomial test of the discordant pairs; 1 without any)."""
    from scipy.stats import binomtest

    b = sum(1 for x, y in zip(before, after, strict=True) if not x and y)
    c = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def wilcoxon_p(changes: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired changes (1 when all are zero; NaN without)."""
    from scipy.stats import wilcoxon

    d = np.asarray(changes, np.float64)
    if d.size == 0:
        return float("nan")
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox").pvalue)


def arm_rows(answers: Sequence[Answer], truth: Mapping[str, str]) -> list[ArmRow]:
    """Before/after per arm (see the module doc)."""
    pairs = _pairs(answers, truth)
    rows = []
    for arm in ARMS:
        ps = [p for p in pairs if p.arm == arm]
        if not ps:
            continue
        ci = [p.conf_initial for p in ps]
        cf = [p.conf_final for p in ps]
        rows.append(ArmRow(
            arm, len(ps),
            float(np.mean([p.correct_initial for p in ps])),
            float(np.mean([p.correct_final for p in ps])),
            mcnemar_exact([p.correct_initial for p in ps], [p.correct_final for p in ps]),
            float(np.mean(ci)), float(np.mean(cf)), float(np.mean(cf) - np.mean(ci)),
            wilcoxon_p([f - i for i, f in zip(ci, cf, strict=True)]),
        ))  # fmt: skip
    return rows


def arm_comparisons(
    answers: Sequence[Answer], truth: Mapping[str, str], randomise: str
) -> list[ArmComparison]:
    """Between-arm tests of the per-rater mean change (final minus initial)."""
    from scipy.stats import mannwhitneyu

    pairs = _pairs(answers, truth)
    out = []
    for measure, change in (
        ("accuracy", lambda p: float(p.correct_final) - float(p.correct_initial)),
        ("confidence", lambda p: float(p.conf_final - p.conf_initial)),
    ):
        per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for p in pairs:
            per[p.rater][p.arm].append(change(p))
        ai = {r: float(np.mean(d[ARMS[0]])) for r, d in per.items() if d.get(ARMS[0])}
        mp = {r: float(np.mean(d[ARMS[1]])) for r, d in per.items() if d.get(ARMS[1])}
        if not ai or not mp:
            continue
        if randomise == "case":
            both = sorted(set(ai) & set(mp))
            diffs = [mp[r] - ai[r] for r in both]
            out.append(ArmComparison(
                measure, "Wilcoxon signed-rank (raters with both arms)", len(both),
                float(np.mean([ai[r] for r in both])) if both else float("nan"),
                float(np.mean([mp[r] for r in both])) if both else float("nan"),
                wilcoxon_p(diffs),
            ))  # fmt: skip
        else:
            a, b = list(ai.values()), list(mp.values())
            same = np.unique(a + b).size < 2
            p_val = 1.0 if same else float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
            out.append(ArmComparison(measure, "Mann-Whitney U (between raters)", len(a) + len(b),
                                     float(np.mean(a)), float(np.mean(b)), p_val))  # fmt: skip
    return out


def _annotations(answers: Sequence[Answer]) -> dict[tuple[str, str], Annotation]:
    out = {}
    for a in answers:
        if a.item == REGIONS:
            ann = Annotation.from_json(a.value)
            if not ann.empty:
                out[(a.rater, a.case_id)] = ann
    return out


def region_rows(
    answers: Sequence[Answer],
    maps: Mapping[tuple[str, str], np.ndarray],
    *,
    fixations: Mapping[str, Annotation] | None = None,
    top_percent: float = TOP_PERCENT,
) -> list[RegionRow]:
    """Marks (and fixations) against maps: ``maps[(case_id, method)]`` = ``(112, 112)`` map."""
    sources: dict[str, list[tuple[str, Annotation]]] = {
        "raters": [(c, ann) for (_, c), ann in sorted(_annotations(answers).items())]
    }
    if fixations:
        sources["fixations"] = sorted(fixations.items())
    methods = sorted({m for _, m in maps})
    rows = []
    for source, anns in sources.items():
        for method in methods:
            got = [region_agreement(maps[(c, method)], ann, top_percent)
                   for c, ann in anns if (c, method) in maps]  # fmt: skip
            if not got:
                continue
            col = {
                k: np.array([getattr(g, k) for g in got]) for k in ("auc_judd", "nss", "iou_top")
            }
            rows.append(RegionRow(source, method, len(got),
                                  *(_nanmean(col[k]) for k in ("auc_judd", "nss", "iou_top"))))  # fmt: skip
    return rows


def _nanmean(a: np.ndarray) -> float:
    return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")


def truth_row(answers: Sequence[Answer], masks: Mapping[str, np.ndarray]) -> TruthRow | None:
    """Marks against true causal regions (cases whose region is not empty), or ``None``."""
    got = [truth_agreement(ann, masks[c]) for (_, c), ann in sorted(_annotations(answers).items())
           if c in masks and np.asarray(masks[c]).any()]  # fmt: skip
    if not got:
        return None
    return TruthRow(len(got), _nanmean(np.array([g.iou for g in got])),
                    _nanmean(np.array([g.hit_rate for g in got])),
                    _nanmean(np.array([g.coverage for g in got])))  # fmt: skip


def analyse(
    study: StudyDefinition,
    answers: Sequence[Answer],
    *,
    truth: Mapping[str, str],
    maps: Mapping[tuple[str, str], np.ndarray] | None = None,
    masks: Mapping[str, np.ndarray] | None = None,
    fixations: Mapping[str, Annotation] | None = None,
    top_percent: float = TOP_PERCENT,
    n_boot: int = N_BOOT,
) -> StudyAnalysis:
    """All numbers of a study.

    Args:
        study: the study definition (its seed seeds the bootstrap).
        answers: the stored answers.
        truth: case id -> true syndrome id (accuracy).
        maps: ``(case id, method)`` -> ``(112, 112)`` template map (region agreement).
        masks: case id -> ``(112, 112)`` bool true causal region (synthetic demo); ``None`` or no
            non-empty mask (a real gallery): marks vs true regions is not available.
        fixations: case id -> imported eye-tracking fixations.
        top_percent: the k of "IoU at top-k %".
        n_boot: bootstrap replicates of the Likert intervals.
    """
    return StudyAnalysis(
        raters=len({a.rater for a in answers}),
        answers=len(answers),
        likert=tuple(likert_rows(answers, n_boot=n_boot, seed=study.seed)),
        alpha=tuple(alpha_rows(answers)),
        arms=tuple(arm_rows(answers, truth)),
        arm_comparisons=tuple(arm_comparisons(answers, truth, study.randomise)),
        regions=tuple(
            region_rows(answers, maps or {}, fixations=fixations, top_percent=top_percent)
        ),
        truth=truth_row(answers, masks) if masks else None,
        top_percent=top_percent,
        regions_known=bool(masks) and any(np.asarray(m).any() for m in masks.values()),
    )


#: What the analysis says about marks vs true regions when the cases have none (a real gallery).
TRUTH_NOT_AVAILABLE = (
    "Not available: these cases have no known causal regions (only the synthetic demo's do), so "
    "how well raters find them cannot be measured. Marks vs maps above still can."
)


def _f(x: float, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def to_markdown(result: StudyAnalysis) -> str:
    """The analysis as Markdown tables."""
    out = [f"**{result.raters} raters, {result.answers} answers.**", ""]
    if result.likert:
        out += ["### Likert items (1 = strongly disagree … 5 = strongly agree)", "",
                "| scope | method / syndrome | item | n | counts 1-5 | mean | 95% CI | median |",
                "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        out += [f"| {r.scope} | {r.subject} | {r.item} | {r.n} | {' '.join(map(str, r.counts))} | "
                f"{_f(r.mean)} | {_f(r.ci_low)}-{_f(r.ci_high)} | {_f(r.median, 1)} |"
                for r in result.likert]  # fmt: skip
        out.append("")
    if result.alpha:
        out += ["### Inter-rater agreement (Krippendorff's alpha, ordinal)", "",
                "| item | units | raters | alpha |", "|---|---|---|---|"]  # fmt: skip
        out += [f"| {r.item} | {r.units} | {r.raters} | {_f(r.alpha, 3)} |" for r in result.alpha]
        out.append("")
    if result.arms:
        out += ["### Accuracy and confidence before / after the model, by arm", "",
                "| arm | pairs | top-1 before | top-1 after | McNemar p | confidence before | "
                "after | change | Wilcoxon p |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        out += [f"| {r.arm} | {r.pairs} | {_f(r.accuracy_initial)} | {_f(r.accuracy_final)} | "
                f"{_f(r.mcnemar_p, 3)} | {_f(r.confidence_initial)} | {_f(r.confidence_final)} | "
                f"{_f(r.confidence_change)} | {_f(r.wilcoxon_p, 3)} |" for r in result.arms]  # fmt: skip
        out.append("")
    if result.arm_comparisons:
        out += ["### Between arms (per-rater change, final minus initial)", "",
                "| measure | test | n | change AI only | change AI + maps | p |",
                "|---|---|---|---|---|---|"]  # fmt: skip
        out += [f"| {c.measure} | {c.test} | {c.n} | {_f(c.change_ai)} | {_f(c.change_maps)} | "
                f"{_f(c.p, 3)} |" for c in result.arm_comparisons]  # fmt: skip
        out.append("")
    if result.regions:
        out += [f"### Where raters looked vs the maps (IoU at top {result.top_percent:g} %)", "",
                "| source | method | readings | AUC-Judd | NSS | IoU |", "|---|---|---|---|---|---|"]  # fmt: skip
        out += [f"| {r.source} | {r.method} | {r.n} | {_f(r.auc_judd, 3)} | {_f(r.nss)} | "
                f"{_f(r.iou_top, 3)} |" for r in result.regions]  # fmt: skip
        out.append("")
    if not result.regions_known:
        out += ["### Raters' marks vs the true causal regions", "", TRUTH_NOT_AVAILABLE, ""]
    elif result.truth is not None:
        t = result.truth
        out += ["### Raters' marks vs the true causal regions (synthetic demo)", "",
                "| marked readings | IoU | hit rate | coverage |", "|---|---|---|---|",
                f"| {t.n} | {_f(t.iou, 3)} | {_f(t.hit_rate, 3)} | {_f(t.coverage, 3)} |", ""]  # fmt: skip
    return "\n".join(out)


__all__ = [
    "TRUTH_NOT_AVAILABLE",
    "AlphaRow",
    "ArmComparison",
    "ArmRow",
    "LikertRow",
    "RegionRow",
    "StudyAnalysis",
    "TruthRow",
    "alpha_rows",
    "analyse",
    "arm_comparisons",
    "arm_rows",
    "bootstrap_mean_ci",
    "krippendorff_ordinal",
    "likert_rows",
    "mcnemar_exact",
    "region_rows",
    "to_markdown",
    "truth_row",
    "wilcoxon_p",
]
