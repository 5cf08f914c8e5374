"""Diagnose: photo -> aligned face with landmarks -> top-k syndromes with their nearest gallery patients."""

from __future__ import annotations

import streamlit as st

from gmx.gallery import suggested_features
from gmx.viz import image_figure
from ui import common, diagnose_view, examples, photo, report_view, resources, tables

cfg = common.page_setup("Diagnose")
st.title("Diagnose")
request = diagnose_view.diagnose_controls()
diagnose_view.photo_input(request, cfg)
if not photo.has_photo():
    st.info("Upload a frontal face photo, take one with the camera, or pick a demo face.")
current = photo.diagnosis(cfg, on_diagnose_page=True)
diagnosis = current.diagnosis
photo.face_picker(current)

face = diagnosis.face
left, right, info = st.columns(diagnose_view.RESULT_COLUMNS)
with left:
    st.plotly_chart(
        examples.photo_figure(current.data, diagnosis.alignment, current.name),
        width="stretch",
        config={"displayModeBar": False},
    )
with right:
    st.plotly_chart(
        image_figure(
            face.image,
            points=face.landmarks_template,
            height=diagnose_view.FIGURE_HEIGHT,
            title="Aligned (112×112)",
        ),
        width="stretch",
        config={"displayModeBar": False},
    )
with info:
    q = face.quality
    st.metric("Face width", f"{q.face_width_px:.0f} px")
    st.metric("Yaw / roll", f"{q.yaw_deg:+.0f}° / {q.roll_deg:+.0f}°")
    st.metric("Detection score", f"{q.detection_score:.2f}")
    if len(diagnosis.alignment.faces) > 1:
        st.caption(f"Ranked: face {diagnosis.face_index + 1} of {len(diagnosis.alignment.faces)}")
    for warning in q.warnings:
        st.warning(warning, icon=":material/warning:")
    st.caption(diagnose_view.timings_caption(diagnosis.timings))
if diagnosis.alignment.message:
    st.caption(diagnosis.alignment.message)
photo.forget_button()
photo.require_confirmation(current, on_diagnose_page=True)

diag = resources.diagnoser(cfg)
gallery = diag.gallery
st.subheader(f"Top {request.top_k} syndromes")
st.dataframe(
    tables.syndrome_table(
        diagnosis.ranking, gallery, request.top_k, show_photos=tables.photos_allowed(cfg, gallery)
    ),
    hide_index=True,
    width="stretch",
    column_config=tables.SYNDROME_COLUMNS,
)
diagnose_view.calibration_block(diagnosis.ranking, gallery, request.top_k)
with st.expander("Genes and patients"):
    g, p = st.columns(2)
    g.dataframe(
        tables.gene_table(diagnosis.ranking, request.top_k),
        hide_index=True,
        width="stretch",
        column_config=tables.GENE_COLUMNS,
    )
    p.dataframe(
        tables.patient_table(diagnosis.ranking, request.top_k),
        hide_index=True,
        width="stretch",
        column_config=tables.PATIENT_COLUMNS,
    )
features = suggested_features(diagnosis.ranking, gallery, request.top_k)
choices = diagnose_view.feature_controls(current, features)
diagnose_view.export(current, diag, cfg, request.top_k, choices)
report_view.report_downloads(
    current, diag, cfg, top_k=request.top_k, choices=choices, page="diagnose"
)
