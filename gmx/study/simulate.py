"""Seeded simulated raters: fill a study database with plausible answers (docs, demos, tests).

Each simulated rater has a skill (chance that their own first guess is right) and a Likert bias;
the model's suggestion lifts their final accuracy (more in the maps arm, by construction), map
ratings centre on a per-method level, and region clicks fall inside the true causal region with a
given probability. The numbers say nothing about real clinicians: they exercise the analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gmx._io import utc_now
from gmx.constants import TEMPLATE_SIZE
from gmx.study.assign import (
    FINAL_CONFIDENCE,
    FINAL_GUESS,
    INITIAL_CONFIDENCE,
    INITIAL_GUESS,
    REGIONS,
    composite_case,
    likert_item,
    rater_plan,
)
from gmx.study.definition import ARM_MAPS, LIKERT_POINTS, StudyDefinition
from gmx.study.regions import Annotation
from gmx.study.store import ANSWER_TIME_FORMAT, Answer, StudyStore


@dataclass(frozen=True)
class SimulationParams:
    """Knobs of the simulated raters (defaults: a plausible pilot)."""

    skill: tuple[float, float] = (0.3, 0.6)
    follow_ai: float = 0.5
    follow_ai_maps: float = 0.7
    method_level: float = 3.4
    method_step: float = -0.5
    rater_sd: float = 0.5
    noise_sd: float = 0.7
    clicks: int = 3
    click_in_region: float = 0.7


def _likert(x: float) -> int:
    return int(np.clip(round(x), 1, LIKERT_POINTS))


def simulate(
    study: StudyDefinition,
    store: StudyStore,
    *,
    truth: Mapping[str, str],
    masks: Mapping[str, np.ndarray],
    syndromes: Sequence[str],
    n_raters: int,
    seed: int = 0,
    params: SimulationParams = SimulationParams(),
) -> list[str]:
    """Write ``n_raters`` simulated raters' answers (ids ``SIM01`` ...); returns the ids."""
    rng = np.random.default_rng(seed)
    ids = [f"SIM{i + 1:02d}" for i in range(n_raters)]
    level = {m: params.method_level + params.method_step * i for i, m in enumerate(study.methods)}
    for rater in ids:
        plan = rater_plan(study, rater)
        skill = rng.uniform(*params.skill)
        bias = rng.normal(0, params.rater_sd)
        rows: list[Answer] = []

        def add(case: str, arm: str, item: str, value: object, method: str = "") -> None:
            when = utc_now(ANSWER_TIME_FORMAT)
            rows.append(Answer(rater, case, arm, item, method, str(value), when))  # noqa: B023

        for case in plan.cases:
            c, arm, true = case.case_id, case.arm, truth[case.case_id]
            wrong = [s for s in syndromes if s != true]
            first = true if rng.random() < skill else str(rng.choice(wrong))
            add(c, arm, INITIAL_GUESS, first)
            add(c, arm, INITIAL_CONFIDENCE, _likert(2.5 + rng.normal(0, 1)))
            mask = np.asarray(masks.get(c, np.zeros((TEMPLATE_SIZE, TEMPLATE_SIZE), bool)))
            inside = np.argwhere(mask)
            ann = Annotation()
            for _ in range(params.clicks):
                if len(inside) and rng.random() < params.click_in_region:
                    y, x = inside[rng.integers(len(inside))]
                else:
                    x, y = rng.integers(0, TEMPLATE_SIZE, size=2)
                ann = ann.with_point(float(x), float(y))
            add(c, arm, REGIONS, ann.to_json())
            for m in case.methods:
                for it in study.map_items:
                    add(
                        c,
                        arm,
                        likert_item(it.key),
                        _likert(level[m] + bias + rng.normal(0, params.noise_sd)),
                        m,
                    )
            follow = params.follow_ai_maps if arm == ARM_MAPS else params.follow_ai
            final = true if first == true or rng.random() < follow else first
            add(c, arm, FINAL_GUESS, final)
            lift = 1.0 if arm == ARM_MAPS else 0.5
            add(c, arm, FINAL_CONFIDENCE, _likert(2.5 + lift + rng.normal(0, 1)))
        for s in plan.composite_syndromes:
            for it in study.composite_items:
                add(
                    composite_case(s),
                    "",
                    likert_item(it.key),
                    _likert(3.5 + bias + rng.normal(0, params.noise_sd)),
                )
        store.save_many(rows)
    return ids


__all__ = ["SimulationParams", "simulate"]
