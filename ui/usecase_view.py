"""The "Use case" walkthrough: one demo patient through Diagnose, Explain, Similarity and Syndromes
to a case report, with what to look at on each page and what its picture does not show.

The steps are data (:data:`STEPS`); the page draws them with :func:`step` and ends with the report
downloads of :mod:`ui.report_view`, whose maps (:data:`REPORT_METHODS` for the top syndrome) are
computed through the Explain page's shared store (so Explain reuses them, and the other way round).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from gmx.config import GmxConfig
from gmx.panel import PanelRequest, panel_rows
from gmx.pipeline import Diagnoser
from gmx.report import ReportMaps
from ui import common, examples, explain_view, photo, resources

#: The walkthrough's patient: a held-out synthetic test patient of syndrome C (long philtrum + thin
#: upper lip vermilion), never seen in training.
PATIENT_FILE = "syndrome_C_1209.jpg"
LOAD_LABEL = "Load the demo patient (syndrome C 1209)"
#: Methods drawn in the walkthrough's report, for its top syndrome (fast on a CPU; the signed
#: Grad-CAM shows direction, saliency the pixels the score is most sensitive to).
REPORT_METHODS = ("gradcam_signed", "saliency")
REPORT_ROWS = 1
#: Syndromes shown in the first step's summary table.
SUMMARY_TOP_K = 3


@dataclass(frozen=True)
class Step:
    """One stop of the walkthrough.

    Attributes:
        title: the step's heading.
        page: the page it opens (script path), or ``""`` for this page.
        look_at: what to look at there, for this patient.
        not_shown: what the picture does not show (the limits to keep in mind).
    """

    title: str
    page: str
    look_at: str
    not_shown: str


STEPS: tuple[Step, ...] = (
    Step(
        "1 · Diagnose: what does GestaltMatcher suggest?",
        "pages/1_Diagnose.py",
        "Check the aligned face and its quality first: a small, turned or blurred face weakens "
        "every later step. Then the top syndromes: the distance (smaller = more similar) and the "
        "calibrated statement (in the case report, step 5): how often a gallery match this close "
        "was the patient's own syndrome. For this patient, syndrome C should lead. Open *Facial features "
        "of the suggested syndromes* and mark what you see: here, a long philtrum and a thin "
        "upper lip.",
        "A rank is not a diagnosis. The gestalt score is a similarity, not a probability; the "
        "calibration counts matches in the gallery, so it depends on the gallery's syndromes and "
        "says nothing certain about this patient.",
    ),
    Step(
        "2 · Explain: which regions drive the match?",
        "pages/2_Explain.py",
        "Compare several methods for the top syndrome: where they agree is more trustworthy than "
        "any one map. For syndrome C, look at the region between nose and upper lip. Switch the "
        "target to *Syndrome rather than the next one* to see what separates #1 from #2.",
        "A map shows what changed the model's score, not a clinical feature. Methods disagree, "
        "and a plausible-looking map does not prove the model uses that region (see the methods' "
        "sanity checks in docs/metrics.md).",
    ),
    Step(
        "3 · Similarity: what does this face share with its nearest patients?",
        "pages/3_Similarity.py",
        "For the nearest gallery patients, see on both faces which regions make them similar. "
        "A match carried by the mouth region supports the syndrome's features; a match carried "
        "by hair, background or expression does not.",
        "Similar regions are not the same dysmorphic feature. Gallery photos may be hidden (real "
        "GMDB photos are access-controlled); the maps then show on a composite or template face.",
    ),
    Step(
        "4 · Syndromes: is this the syndrome's usual pattern?",
        "pages/4_Syndromes.py",
        "Where the model looks across all patients of syndrome C, and its composite face: does "
        "this patient's map look like the syndrome's pattern?",
        "Syndrome maps average many patients: for a syndrome with few patients they are noisy, "
        "and an average can hide two different patterns.",
    ),
    Step(
        "5 · Report: file what you found",
        "",
        "Download the case report: top syndromes with distances and calibrated statements, the "
        "features you marked, the maps below (top syndrome, two methods) with their colour bars, "
        "and the provenance (models, gallery, parameters, photo hash, time). The face is left "
        "out unless you tick the box.",
        "The report records this analysis; it is not a clinical finding. Without the face it "
        "holds no picture of the patient.",
    ),
)


def intro(cfg: GmxConfig) -> bool:
    """What the walkthrough is, and the button that loads its patient. Returns whether it can run
    (the demo is active)."""
    st.markdown(
        "One patient, every explanation, a decision: this page takes a demo patient through the "
        "app, page by page, with what to look at on each and what its picture does **not** show. "
        "Open each step's page, come back here (sidebar), and end with the case report."
    )
    if not cfg.is_demo:
        st.info(
            "The walkthrough uses a patient of the embedded demo; switch back to the demo on the "
            "Home page to follow it. Your own photo can go the same way: Diagnose, Explain, "
            "Similarity, Syndromes, then the case report on Diagnose or Explain."
        )
        return False
    path = examples.EXAMPLES_DIR / PATIENT_FILE
    current = common.current_photo()
    if current is not None and current[1] != PATIENT_FILE:
        st.caption(f"The current photo is **{current[1]}**; the steps below apply to it.")
    if st.button(LOAD_LABEL, icon=":material/person:", disabled=not path.is_file()):
        photo.accept(resources.example_bytes(str(path)), PATIENT_FILE)
    return True


def step(item: Step) -> None:
    """One step: heading, what to look at, its limits, and a link to its page."""
    st.subheader(item.title)
    st.markdown(item.look_at)
    st.caption(f"What it does not show: {item.not_shown}")
    if item.page:
        title = next((p.title for p in common.PAGES if p.script == item.page), item.page)
        common.page_link(item.page, f"Open {title}")


def report_maps(current: photo.CurrentPhoto, diagnoser: Diagnoser) -> ReportMaps:
    """The report's maps: :data:`REPORT_METHODS` for the top syndrome, all variants, the Explain
    page's default display (computed once, through its shared store)."""
    d = current.diagnosis
    gallery = diagnoser.gallery
    request = PanelRequest(n_rows=REPORT_ROWS, methods=REPORT_METHODS)
    variants = list(diagnoser.ensemble.variants)
    rows, _ = panel_rows("similarity", d.ranking, gallery, variants, None, REPORT_ROWS)
    key_prefix = (d.image_sha256, diagnoser.ensemble.fingerprint, gallery.name, gallery.version,
                  d.face_index, request.target, tuple(v.label for v in variants))  # fmt: skip
    grid = explain_view.compute_maps(
        key_prefix, [m.model for m in diagnoser.models], d.face.image, rows, variants,
        REPORT_METHODS, request.params, progress_label="Computing the report's maps",
    )  # fmt: skip
    return ReportMaps(rows, grid, REPORT_METHODS, target=request.target)
