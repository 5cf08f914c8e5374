"""Helpers of the Study and Study analysis pages: controls (frozen requests) and the rater's steps.

Every answer is written to the study database the moment it is given (a click on the face, a
submitted form), so a rater who closes the tab resumes at the first unanswered step
(:func:`gmx.study.next_step`). Method names never appear on the rater's pages (``Map A`` ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import streamlit as st

from gmx.study import Annotation, StudyDefinition, StudyStore, check_rater_id
from gmx.study.assign import (
    FINAL_CONFIDENCE,
    FINAL_GUESS,
    INITIAL_CONFIDENCE,
    INITIAL_GUESS,
    REGIONS,
    CasePlan,
    composite_case,
    likert_item,
)
from gmx.study.cases import CaseMaterial
from gmx.study.definition import CONFIDENCE_LABELS, LIKERT_LABELS, LikertItem
from gmx.study.regions import GRID, TOP_PERCENT
from gmx.study.views import DISPLAY_PX, display_to_template, map_picture, marks_picture

RATER_KEY = "gmx.study.rater"
#: Shown next to a map whose ratings are stored.
SAVED_MARK = ":material/check: saved"
_LAST_CLICK = "gmx.study.last_click."
#: Width of a blinded map on the page (pixels) and the number of maps per row.
MAP_PX = 224
MAPS_PER_ROW = 3
#: Column weights of a case: the face, then the model's answer and the questions.
CASE_COLUMNS = (1, 3)
#: Column weights of a map (or composite face) and its questions.
MAP_COLUMNS = (1, 2)
LIKERT_OPTIONS = tuple(range(1, len(LIKERT_LABELS) + 1))
CONFIDENCE_OPTIONS = tuple(range(1, len(CONFIDENCE_LABELS) + 1))
#: Grid cells for marking regions without clicks (row-major, as :mod:`gmx.study.regions`).
CELL_OPTIONS = tuple(range(GRID * GRID))


def cell_label(cell: int) -> str:
    """``row 1, column 2`` (1-based, from the top left of the face as shown)."""
    row, col = divmod(cell, GRID)
    return f"row {row + 1}, column {col + 1}"


@dataclass(frozen=True)
class RaterRequest:
    """The rater's pseudonymous id (``None`` until a valid one is given) and why it is refused."""

    rater: str | None
    problem: str | None


def rater_controls() -> RaterRequest:
    """The rater id box (sidebar)."""
    with st.sidebar:
        raw = st.text_input(
            "Your rater id",
            key=RATER_KEY,
            help="A pseudonym from the study lead (e.g. R07). Never your name. The same id "
            "continues where you stopped.",
        ).strip()
    if not raw:
        return RaterRequest(None, None)
    problem = check_rater_id(raw)
    return RaterRequest(None if problem else raw, problem)


@dataclass(frozen=True)
class AnalysisRequest:
    """What the analysis page shows: IoU's k, whether maps are computed, imported fixations."""

    top_percent: float
    with_maps: bool
    fixations_csv: bytes | None


def analysis_controls() -> AnalysisRequest:
    """The analysis page's controls (sidebar)."""
    with st.sidebar:
        top = st.number_input("IoU at top-k %: k", 1.0, 100.0, TOP_PERCENT, step=1.0)
        maps = st.toggle(
            "Compare marks with the maps",
            value=True,
            help="Computes every marked case's maps with the active model (a few seconds each).",
        )
        up = st.file_uploader("Eye-tracking fixations (CSV: image_id, x, y, duration)", type="csv")
    return AnalysisRequest(float(top), bool(maps), up.getvalue() if up is not None else None)


def answered(store: StudyStore, rater: str) -> dict[tuple[str, str, str], str]:
    """The rater's stored answers: ``(case_id, item, method)`` -> value."""
    return {(a.case_id, a.item, a.method): a.value for a in store.answers(rater)}


def _annotation(values: Mapping[tuple[str, str, str], str], case_id: str) -> Annotation:
    raw = values.get((case_id, REGIONS, ""))
    return Annotation.from_json(raw) if raw else Annotation()


def _click_image(face: np.ndarray, ann: Annotation, key: str) -> dict | None:
    """The face with the marks, clickable (the streamlit-image-coordinates component): the last
    click ``{x, y, width, height, unix_time}`` in displayed pixels, or ``None``."""
    from streamlit_image_coordinates import streamlit_image_coordinates

    return streamlit_image_coordinates(marks_picture(face, ann), width=DISPLAY_PX, key=key,
                                       cursor="crosshair")  # fmt: skip


def impression_step(
    store: StudyStore,
    rater: str,
    case: CasePlan,
    face: np.ndarray,
    names: Mapping[str, str],
    values: Mapping[tuple[str, str, str], str],
) -> None:
    """Own impression first: mark where you looked, then syndrome guess and confidence."""
    ann = _annotation(values, case.case_id)
    left, right = st.columns(2)
    with left:
        st.markdown("**Where did you look?** Click the regions that drive your impression.")
        click = _click_image(face, ann, key=f"gmx.study.click.{rater}.{case.case_id}")
        ident = f"{_LAST_CLICK}{rater}.{case.case_id}"
        if click and click.get("x") is not None and st.session_state.get(ident) != click:
            st.session_state[ident] = click
            x, y = display_to_template(click["x"], click["y"], click["width"], click["height"])
            store.save(rater, case.case_id, case.arm, REGIONS, ann.with_point(x, y).to_json())
            st.rerun()
        cells = st.multiselect(
            "…or tick grid cells (rows from the top, columns from the left as shown)",
            CELL_OPTIONS,
            default=list(ann.cells),
            format_func=cell_label,
            key=f"gmx.study.cells.{rater}.{case.case_id}",
        )
        if tuple(sorted(cells)) != ann.cells:
            ann = ann.with_cells(cells)
            store.save(rater, case.case_id, case.arm, REGIONS, ann.to_json())
        if ann.points and st.button("Clear clicked marks", key=f"gmx.study.clear.{case.case_id}"):
            store.save(rater, case.case_id, case.arm, REGIONS, Annotation((), ann.cells).to_json())
            st.rerun()
        st.caption(f"{len(ann.points)} clicked mark(s), {len(ann.cells)} cell(s).")
    with right, st.form(f"gmx.study.impression.{case.case_id}"):
        st.markdown("**Your impression** (before the model's answer)")
        guess = st.selectbox("Syndrome", list(names), index=None, format_func=names.get,
                             placeholder="Choose a syndrome")  # fmt: skip
        conf = st.radio("Confidence", CONFIDENCE_OPTIONS, index=None, horizontal=True,
                        format_func=lambda k: CONFIDENCE_LABELS[k - 1])  # fmt: skip
        if st.form_submit_button("Save my impression", type="primary"):
            if guess is None or conf is None:
                st.error("Choose a syndrome and your confidence.")
            elif ann.empty:
                st.error("Mark at least one region on the face first (click or tick a cell).")
            else:
                store.save(rater, case.case_id, case.arm, INITIAL_GUESS, guess)
                store.save(rater, case.case_id, case.arm, INITIAL_CONFIDENCE, conf)
                st.rerun()


def suggestions_table(material: CaseMaterial) -> None:
    """The model's top-k (rank and syndrome only: no scores to anchor on)."""
    st.markdown("**The model suggests**")
    st.dataframe(
        [{"rank": s.rank, "syndrome": s.name} for s in material.suggestions],
        hide_index=True,
        width="stretch",
    )


def _likert_radios(items: Sequence[LikertItem], stored: Mapping[str, str], key: str) -> dict:
    got = {}
    for it in items:
        old = stored.get(it.key)
        got[it.key] = st.radio(
            it.text, LIKERT_OPTIONS, index=LIKERT_OPTIONS.index(int(old)) if old else None,
            horizontal=True, format_func=lambda k: f"{k} {LIKERT_LABELS[k - 1]}",
            key=f"{key}.{it.key}",
        )  # fmt: skip
    return got


def maps_step(
    store: StudyStore,
    rater: str,
    study: StudyDefinition,
    case: CasePlan,
    face: np.ndarray,
    material: CaseMaterial,
    values: Mapping[tuple[str, str, str], str],
) -> None:
    """The blinded maps in the rater's order, each with the study's Likert items."""
    suggestions_table(material)
    st.markdown(
        "**Maps of the top suggestion** — different methods, names hidden. Rate each one "
        "(1 = strongly disagree … 5 = strongly agree)."
    )
    for m in case.methods:
        label = case.blinded_label(m)
        stored = {
            it.key: values.get((case.case_id, likert_item(it.key), m)) for it in study.map_items
        }
        done = all(stored.values())
        pic, form = st.columns(MAP_COLUMNS)
        pic.image(map_picture(face, material.maps[m]), width=MAP_PX, caption=label)
        with form, st.form(f"gmx.study.map.{case.case_id}.{label}"):
            st.markdown(f"**{label}**" + (f" {SAVED_MARK}" if done else ""))
            got = _likert_radios(study.map_items, {k: v for k, v in stored.items() if v},
                                 key=f"gmx.study.likert.{rater}.{case.case_id}.{label}")  # fmt: skip
            if st.form_submit_button(f"Save ratings of {label}"):
                if any(v is None for v in got.values()):
                    st.error("Answer every statement.")
                else:
                    for k, v in got.items():
                        store.save(rater, case.case_id, case.arm, likert_item(k), v, method=m)
                    st.rerun()


def final_step(
    store: StudyStore,
    rater: str,
    case: CasePlan,
    face: np.ndarray,
    material: CaseMaterial,
    names: Mapping[str, str],
) -> None:
    """The final answer and confidence, with the model's suggestions (and maps) in view."""
    left, right = st.columns(2)
    with left:
        suggestions_table(material)
        if case.methods:
            cols = st.columns(min(len(case.methods), MAPS_PER_ROW))
            for i, m in enumerate(case.methods):
                cols[i % len(cols)].image(map_picture(face, material.maps[m]),
                                          caption=case.blinded_label(m))  # fmt: skip
    with right, st.form(f"gmx.study.final.{case.case_id}"):
        st.markdown("**Your final answer**")
        guess = st.selectbox("Syndrome", list(names), index=None, format_func=names.get,
                             placeholder="Choose a syndrome", key=f"gmx.study.fg.{case.case_id}")  # fmt: skip
        conf = st.radio("Confidence", CONFIDENCE_OPTIONS, index=None, horizontal=True,
                        format_func=lambda k: CONFIDENCE_LABELS[k - 1],
                        key=f"gmx.study.fc.{case.case_id}")  # fmt: skip
        if st.form_submit_button("Save and go to the next case", type="primary"):
            if guess is None or conf is None:
                st.error("Choose a syndrome and your confidence.")
            else:
                store.save(rater, case.case_id, case.arm, FINAL_GUESS, guess)
                store.save(rater, case.case_id, case.arm, FINAL_CONFIDENCE, conf)
                st.rerun()


def composite_step(
    store: StudyStore,
    rater: str,
    study: StudyDefinition,
    syndrome: str,
    name: str,
    composite: np.ndarray | None,
) -> None:
    """One syndrome's composite face with the composite items."""
    left, right = st.columns(MAP_COLUMNS)
    if composite is None:
        left.info("No composite face for this syndrome in the active gallery.")
    else:
        left.image(composite, width=MAP_PX, caption=f"Composite face: {name}")
    with right, st.form(f"gmx.study.composite.{syndrome}"):
        st.markdown(f"**{name}**")
        got = _likert_radios(study.composite_items, {}, key=f"gmx.study.comp.{rater}.{syndrome}")
        if st.form_submit_button("Save", type="primary"):
            if any(v is None for v in got.values()):
                st.error("Answer every statement.")
            else:
                for k, v in got.items():
                    store.save(rater, composite_case(syndrome), "", likert_item(k), v)
                st.rerun()


__all__ = [
    "RATER_KEY",
    "AnalysisRequest",
    "RaterRequest",
    "analysis_controls",
    "answered",
    "cell_label",
    "composite_step",
    "final_step",
    "impression_step",
    "maps_step",
    "rater_controls",
    "suggestions_table",
]
