"""Deterministic per-rater plans: which cases, in which arm, maps in which (blinded) order.

A rater's plan depends only on the study (its seed, cases, arms, methods) and the rater id: the same
rater always gets the same plan, so a rater who closes the tab and comes back continues where they
stopped. The random stream is ``numpy.random.default_rng([seed, h])`` with ``h`` the first 8 bytes
of SHA-256 of the rater id (stable across processes, unlike Python's ``hash``).
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gmx.study.definition import ARM_MAPS, StudyDefinition

#: A pseudonymous rater id: letters, digits, ``-``/``_``, 2-32 characters (no names: see docs).
RATER_ID = re.compile(r"^[A-Za-z0-9_-]{2,32}$")

# Answer items (the ``item`` column of the database).
INITIAL_GUESS = "initial_guess"
INITIAL_CONFIDENCE = "initial_confidence"
REGIONS = "regions"
FINAL_GUESS = "final_guess"
FINAL_CONFIDENCE = "final_confidence"
COMPOSITE_PREFIX = "composite:"
LIKERT_PREFIX = "likert:"


@dataclass(frozen=True)
class CasePlan:
    """One case of a rater's plan.

    Attributes:
        case_id: the image id.
        arm: ``"ai"`` or ``"ai+maps"``.
        methods: the methods in the order shown (``Map A`` = ``methods[0]``); empty in the AI arm.
    """

    case_id: str
    arm: str
    methods: tuple[str, ...]

    def blinded_label(self, method: str) -> str:
        """The name the rater sees for ``method`` (``Map A``, ``Map B`` ...)."""
        return f"Map {string.ascii_uppercase[self.methods.index(method)]}"


@dataclass(frozen=True)
class RaterPlan:
    """Everything a rater sees, in order."""

    rater: str
    cases: tuple[CasePlan, ...]
    composite_syndromes: tuple[str, ...]


def check_rater_id(rater: str) -> str | None:
    """Why ``rater`` is not a valid pseudonymous id, or ``None``."""
    if not RATER_ID.match(rater or ""):
        return "A rater id is 2-32 letters, digits, '-' or '_' (a pseudonym such as R07, no names)."
    return None


def _rng(seed: int, rater: str) -> np.random.Generator:
    h = int.from_bytes(hashlib.sha256(rater.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([seed, h])


def rater_plan(study: StudyDefinition, rater: str) -> RaterPlan:
    """The plan of one rater (deterministic in the study and ``rater``).

    Raises:
        ValueError: for an invalid rater id.
    """
    why = check_rater_id(rater)
    if why:
        raise ValueError(f"{rater!r}: {why}")
    rng = _rng(study.seed, rater)
    order = rng.permutation(len(study.cases))[: study.cases_per_rater]
    n = len(order)
    if study.randomise == "rater":
        arms = [study.arms[int(rng.integers(len(study.arms)))]] * n
    else:  # balanced within the rater: arms repeated to n, then shuffled
        arms = [study.arms[i % len(study.arms)] for i in range(n)]
        arms = [arms[i] for i in rng.permutation(n)]
    cases = []
    for idx, arm in zip(order, arms, strict=True):
        perm = rng.permutation(len(study.methods))
        methods = tuple(study.methods[i] for i in perm) if arm == ARM_MAPS else ()
        cases.append(CasePlan(study.cases[int(idx)], arm, methods))
    return RaterPlan(rater, tuple(cases), study.composite_syndromes)


def likert_item(key: str) -> str:
    """The ``item`` of a Likert answer (a map's method is stored in its own column)."""
    return f"{LIKERT_PREFIX}{key}"


def composite_case(syndrome: str) -> str:
    """The ``case_id`` under which a composite face's answers are stored."""
    return f"{COMPOSITE_PREFIX}{syndrome}"


@dataclass(frozen=True)
class Step:
    """Where a rater stands.

    Attributes:
        stage: ``"impression"`` (own guess and regions), ``"maps"`` (Likert items of the maps),
            ``"final"`` (final answer), ``"composite"`` (a composite face), or ``"done"``.
        case_index: index into the plan's cases (``-1`` past the cases).
        syndrome: the composite face's syndrome (``"composite"`` stage only).
        done_cases: how many cases are fully answered.
    """

    stage: str
    case_index: int
    syndrome: str = ""
    done_cases: int = 0

    def fraction_done(self, total: int) -> float:
        """Share of ``total`` cases fully answered (1.0 for an empty plan)."""
        return self.done_cases / total if total else 1.0


AnswerKey = tuple[str, str, str]
"""``(case_id, item, method)``; ``method`` is ``""`` for items that belong to no map."""


def next_step(
    study: StudyDefinition, plan: RaterPlan, answered: Mapping[AnswerKey, str] | set[AnswerKey]
) -> Step:
    """The first unanswered step of ``plan`` given the rater's stored answers (resume point)."""
    keys = set(answered)
    for i, case in enumerate(plan.cases):
        c = case.case_id
        if not {(c, INITIAL_GUESS, ""), (c, INITIAL_CONFIDENCE, "")} <= keys:
            return Step("impression", i, done_cases=i)
        needed = {(c, likert_item(it.key), m) for m in case.methods for it in study.map_items}
        if not needed <= keys:
            return Step("maps", i, done_cases=i)
        if not {(c, FINAL_GUESS, ""), (c, FINAL_CONFIDENCE, "")} <= keys:
            return Step("final", i, done_cases=i)
    n = len(plan.cases)
    for s in plan.composite_syndromes:
        c = composite_case(s)
        if not {(c, likert_item(it.key), "") for it in study.composite_items} <= keys:
            return Step("composite", -1, syndrome=s, done_cases=n)
    return Step("done", -1, done_cases=n)


__all__ = [
    "COMPOSITE_PREFIX",
    "FINAL_CONFIDENCE",
    "FINAL_GUESS",
    "INITIAL_CONFIDENCE",
    "INITIAL_GUESS",
    "LIKERT_PREFIX",
    "RATER_ID",
    "REGIONS",
    "AnswerKey",
    "CasePlan",
    "RaterPlan",
    "Step",
    "check_rater_id",
    "composite_case",
    "likert_item",
    "next_step",
    "rater_plan",
]
