"""Clinician evaluation studies: a study file, raters' answers in SQLite, and their analysis.

See docs/study.md. The library never imports streamlit; torch is only needed for
:func:`gmx.study.cases.case_material` (imported lazily there).
"""

from __future__ import annotations

from gmx.study.analysis import StudyAnalysis, analyse, to_markdown
from gmx.study.assign import CasePlan, RaterPlan, Step, check_rater_id, next_step, rater_plan
from gmx.study.definition import (
    ARM_AI,
    ARM_MAPS,
    ARMS,
    LikertItem,
    StudyDefinition,
    StudyError,
    check,
    load_study,
    new_template,
    study_from_text,
)
from gmx.study.regions import Annotation, read_fixations
from gmx.study.store import SCHEMA_VERSION, Answer, StudyStore, StudyStoreError, to_csv, to_json

__all__ = [
    "ARMS",
    "ARM_AI",
    "ARM_MAPS",
    "SCHEMA_VERSION",
    "Annotation",
    "Answer",
    "CasePlan",
    "LikertItem",
    "RaterPlan",
    "Step",
    "StudyAnalysis",
    "StudyDefinition",
    "StudyError",
    "StudyStore",
    "StudyStoreError",
    "analyse",
    "check",
    "check_rater_id",
    "load_study",
    "new_template",
    "next_step",
    "rater_plan",
    "read_fixations",
    "study_from_text",
    "to_csv",
    "to_json",
    "to_markdown",
]
