"""The case-report downloads of the Diagnose and Explain pages (HTML and PDF, built on click).

One block for both pages: a checkbox "Include the aligned face" (off by default, never kept across
pages or photos) and two download buttons whose content is built only when clicked
(:func:`gmx.report.build_report` + :func:`gmx.report.render`). The report takes the page's top-k,
the case id and the facial-feature choices made on Diagnose, and, on Explain, the maps shown.
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from gmx.config import GmxConfig
from gmx.explain import AttributionMap
from gmx.gallery import FeatureChoices, Gallery, suggested_features
from gmx.panel import PanelRequest, PanelRow
from gmx.pipeline import Diagnoser
from gmx.report import ReportMaps, build_report, render
from ui import diagnose_view, photo, resources, state

#: Labels of the two buttons (tests and the walkthrough find them by these).
HTML_LABEL = "Case report (HTML)"
PDF_LABEL = "Case report (PDF)"
FACE_LABEL = "Include the aligned face in the case report"
FACE_HELP = (
    "Off: the report holds no picture of the face (maps are drawn as colour maps alone). On: the "
    "112×112 aligned face is in the report and the maps are drawn over it. The report is built in "
    "memory when you click and is not kept."
)
REPORT_COLUMNS = 2
#: File names offered by the browser.
HTML_FILE = "gmx_case_report.html"
PDF_FILE = "gmx_case_report.pdf"


def case_id(current: photo.CurrentPhoto) -> str:
    """The photo's case id as typed on Diagnose (the neutral default otherwise)."""
    typed = state.get(f"{state.KEEP_PREFIX}{state.CASE_ID_PREFIX}{current.sha256}") or ""
    return str(typed).strip() or diagnose_view.default_case_id(current)


def kept_top_k() -> int:
    """The top-k chosen on Diagnose (its sidebar slider, kept across pages)."""
    return int(state.get(state.TOP_K, state.TOP_K_DEFAULT))


def kept_choices(current: photo.CurrentPhoto, gallery: Gallery, top_k: int) -> FeatureChoices:
    """The facial-feature choices made on Diagnose for this photo (read, no widget drawn)."""
    present: list[str] = []
    absent: list[str] = []
    prefix = f"{state.KEEP_PREFIX}{state.HPO_CHOICE_PREFIX}{current.sha256}."
    for feature in suggested_features(current.diagnosis.ranking, gallery, top_k):
        choice = state.get(prefix + feature.hpo_id, diagnose_view.NOT_ASSESSED)
        if choice == diagnose_view.PRESENT:
            present.append(feature.hpo_id)
        elif choice == diagnose_view.ABSENT:
            absent.append(feature.hpo_id)
    return FeatureChoices(tuple(present), tuple(absent))


def shown_maps(
    rows: list[PanelRow],
    grid: list[dict[str, AttributionMap]],
    methods: list[str],
    request: PanelRequest,
) -> ReportMaps:
    """The maps the Explain page shows, with its display choices, for the report."""
    return ReportMaps(
        rows=tuple(rows),
        grid=tuple(dict(g) for g in grid),
        methods=tuple(methods),
        target=request.target,
        palette=request.colours,
        scale_mode=request.share,
        sign_mode=request.sign,
        opacity=request.opacity,
    )


def report_bytes(
    fmt: str,
    current: photo.CurrentPhoto,
    diagnoser: Diagnoser,
    cfg: GmxConfig,
    *,
    top_k: int,
    choices: FeatureChoices,
    case: str,
    maps: ReportMaps | None,
    include_face: bool,
) -> bytes:
    """The report file (called by the download button when clicked)."""
    report = build_report(
        current.diagnosis,
        diagnoser.ensemble,
        diagnoser.gallery,
        case_id=case,
        top_k=top_k,
        choices=choices,
        maps=maps,
        include_face=include_face,
        demo=cfg.is_demo,
        gallery_file=cfg.gallery_path,
        calibration=resources.report_calibration(cfg, diagnoser),
        parameters={
            "near-duplicate threshold": "off"
            if current.min_distance is None
            else current.min_distance
        },
    )
    return render(report, fmt)


def report_downloads(
    current: photo.CurrentPhoto,
    diagnoser: Diagnoser,
    cfg: GmxConfig,
    *,
    top_k: int,
    choices: FeatureChoices,
    page: str,
    maps: ReportMaps | None = None,
) -> None:
    """The face checkbox (off) and the two deferred report downloads."""
    include_face = st.checkbox(
        FACE_LABEL, value=False, key=f"gmx.report.face.{page}", help=FACE_HELP
    )
    build = partial(
        report_bytes,
        current=current,
        diagnoser=diagnoser,
        cfg=cfg,
        top_k=top_k,
        choices=choices,
        case=case_id(current),
        maps=maps,
        include_face=bool(include_face),
    )
    what = "the maps shown above, " if maps is not None else ""
    help_text = (
        f"Top-{top_k} syndromes with calibrated statements, genes, facial features, {what}and "
        "the provenance. Built when you click."
    )
    html_col, pdf_col = st.columns(REPORT_COLUMNS)
    html_col.download_button(
        HTML_LABEL,
        partial(build, "html"),
        file_name=HTML_FILE,
        mime="text/html",
        on_click="ignore",
        help=help_text,
        key=f"gmx.report.html.{page}",
    )
    pdf_col.download_button(
        PDF_LABEL,
        partial(build, "pdf"),
        file_name=PDF_FILE,
        mime="application/pdf",
        on_click="ignore",
        help=help_text,
        key=f"gmx.report.pdf.{page}",
    )
