"""Diagnose: photo -> aligned face with landmarks -> top-k syndromes with their nearest gallery patients."""

from __future__ import annotations

import json

import streamlit as st

from gmx.errors import ImageLoadError
from gmx.gallery import to_service_json
from gmx.viz import image_figure
from ui import common, examples, resources, state, tables

cfg = common.page_setup("Diagnose")
st.title("Diagnose")

with st.sidebar:
    top_k = st.slider("Top-k syndromes", 1, 30, key=state.keep("top_k", state.TOP_K_DEFAULT))
    drop_near_duplicates = st.toggle(
        "Drop near-duplicate gallery matches (distance ≤ 0.3)",
        value=False,
        help="The GestaltMatcher service v1.1.2 drops gallery images this close to the query "
        "(likely the same photo).",
    )

source = st.segmented_control(
    "Photo", ["Upload", "Camera", "Demo faces"], default="Upload", label_visibility="collapsed"
)
if source == "Upload":
    upload = st.file_uploader(
        "Frontal face photo (JPEG, PNG, WebP, BMP, TIFF, GIF). Kept in memory only.",
        type=["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"],
    )
    if upload is not None:
        state.set_photo(upload.getvalue(), upload.name)
elif source == "Camera":
    shot = st.camera_input("Take a frontal photo")
    if shot is not None:
        state.set_photo(shot.getvalue(), "camera.jpg")
else:
    chosen = examples.picker(cfg)
    if chosen is not None:
        state.set_photo(*chosen)

photo = common.current_photo()
if photo is None:
    st.info("Upload a frontal face photo, take one with the camera, or pick a demo face.")
    st.stop()
data, name = photo

diag_resource = resources.diagnoser(cfg)
try:
    with st.spinner("Finding faces and ranking syndromes…"):
        diagnosis = resources.diagnose_photo(
            resources.config_key(cfg),
            data,
            int(state.get(state.FACE_INDEX, 0)),
            0.3 if drop_near_duplicates else None,
        )
except ImageLoadError as exc:
    st.error(f"**{name}** cannot be used: {exc}")
    st.stop()

alignment = diagnosis.alignment
if not alignment.faces:
    st.warning(f"**{name}**: {diagnosis.message}")
    st.stop()

if len(alignment.faces) > 1:
    labels = [
        f"Face {i + 1} ({f.quality.face_width_px:.0f} px wide)"
        for i, f in enumerate(alignment.faces)
    ]
    choice = st.radio(
        f"{len(alignment.faces)} faces found — which one is the patient?",
        range(len(labels)),
        format_func=labels.__getitem__,
        horizontal=True,
        index=min(int(state.get(state.FACE_INDEX, 0)), len(labels) - 1),
    )
    if choice != state.get(state.FACE_INDEX, 0):
        st.session_state[state.FACE_INDEX] = choice
        st.rerun()

face = diagnosis.face
left, right, info = st.columns([1.3, 1, 1])
with left:
    st.plotly_chart(
        examples.photo_figure(data, alignment, name),
        width="stretch",
        config={"displayModeBar": False},
    )
with right:
    st.plotly_chart(
        image_figure(
            face.image, points=face.landmarks_template, height=340, title="Aligned (112×112)"
        ),
        width="stretch",
        config={"displayModeBar": False},
    )
with info:
    q = face.quality
    st.metric("Face width", f"{q.face_width_px:.0f} px")
    st.metric("Yaw / roll", f"{q.yaw_deg:+.0f}° / {q.roll_deg:+.0f}°")
    for warning in q.warnings:
        st.warning(warning, icon=":material/warning:")
    st.caption(" · ".join(f"{k} {v * 1000:.0f} ms" for k, v in diagnosis.timings.items()))

st.subheader(f"Top {top_k} syndromes")
gallery = diag_resource.gallery
st.dataframe(
    tables.syndrome_table(
        diagnosis.ranking, gallery, top_k, show_photos=tables.photos_allowed(cfg, gallery)
    ),
    hide_index=True,
    width="stretch",
    column_config=tables.SYNDROME_COLUMNS,
)
with st.expander("Genes and patients"):
    g, p = st.columns(2)
    g.dataframe(tables.gene_table(diagnosis.ranking, top_k), hide_index=True, width="stretch")
    p.dataframe(tables.patient_table(diagnosis.ranking, top_k), hide_index=True, width="stretch")

report = to_service_json(
    diagnosis.ranking,
    case_id=name,
    model_version=",".join(m.card.name for m in diag_resource.models),
    gallery_version=gallery.version,
    top_k=top_k,
)
st.download_button(
    "Download result (GestaltMatcher service JSON)",
    json.dumps(report, indent=2),
    file_name="gmx_result.json",
    mime="application/json",
)
if st.session_state.get(state.PHOTO_BYTES) and st.button("Forget this photo"):
    state.clear_photo()
    st.rerun()
