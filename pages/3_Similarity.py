"""Similarity: which regions make the query similar to each nearest gallery patient, and vice versa."""

from __future__ import annotations

import streamlit as st

from gmx.errors import GalleryError, ImageLoadError
from gmx.similarity import PAIR_METHODS, SPLITS, nearest_patients
from ui import colours, common, resources, similarity_view, state, tables

cfg = common.page_setup("Similarity")
st.title("Similarity to gallery patients")
data, name = common.require_photo()
diag = resources.diagnoser(cfg)
try:
    diagnosis = resources.diagnose_photo(
        resources.config_key(cfg), data, int(state.get(state.FACE_INDEX, 0)), None
    )
except ImageLoadError as exc:
    st.error(f"**{name}** cannot be used: {exc}")
    st.stop()
if not diagnosis.ok:
    st.warning(f"**{name}**: {diagnosis.message} Choose another photo on the Diagnose page.")
    st.stop()
face, ranking, gallery = diagnosis.face, diagnosis.ranking, diag.gallery
explainer = resources.pair_explainer(cfg)

with st.sidebar:
    st.header("Pairs")
    top_k = int(state.get(state.TOP_K, state.TOP_K_DEFAULT))
    n_patients = st.slider("Nearest patients per syndrome", 1, 10, 3)
    method = (
        st.segmented_control(
            "Method", list(PAIR_METHODS), format_func=PAIR_METHODS.__getitem__, default="exact"
        )
        or "exact"
    )
    split = st.radio(
        "Exact maps: split", SPLITS, format_func=similarity_view.SPLIT_LABELS.__getitem__
    )
    with st.expander("Occlusion window"):
        window = st.slider("Window (px)", 8, 32, 16, step=4)
        stride = st.slider("Stride (px)", 4, 32, 16, step=4)
    opacity = st.slider("Opacity", 0.0, 1.0, 0.6)
    palette = colours.palette_control()
st.caption(similarity_view.METHOD_HELP)

matches = ranking.syndromes[:top_k]
syndrome_id = st.selectbox(
    "Syndrome (current top-k)",
    [m.syndrome_id for m in matches],
    format_func=lambda s: (
        f"#{ranking.syndrome(s).rank} {ranking.syndrome(s).name} "
        f"(distance {ranking.syndrome(s).distance:.3f})"
    ),
)
patients = nearest_patients(ranking, gallery, syndrome_id, n_patients)
show_photos = tables.photos_allowed(cfg, gallery)
if not show_photos:
    st.info(
        "Gallery photos may not be shown here: each patient's map is drawn on the syndrome's "
        "composite face (mean of at least 5 patients' photos) or on a template face, with the "
        "template landmarks. Only the patient's id, syndrome, distance and maps are shown.",
        icon="🔒",
    )
reason = explainer.unavailable(method)
if reason is not None:
    st.warning(f"{reason}. Showing the exact decomposition instead.")
    method = "exact"

key = (resources.config_key(cfg), diagnosis.image_sha256, diagnosis.face_index)
query = resources.similarity_query(*key, explainer, face)
params = (("window", window), ("stride", stride)) if method == "occlusion" else ()
bar = st.progress(0.0, text=f"{PAIR_METHODS[method]}…") if method != "exact" else None
try:
    pairs = resources.similarity_pairs(
        *key, tuple(p.image_index for p in patients), method, split, params, explainer, face, query,
        (lambda done, total: bar.progress(done / total)) if bar else None,
    )  # fmt: skip
except GalleryError as exc:
    st.error(str(exc))
    st.stop()
if bar is not None:
    bar.empty()

pictures = [similarity_view.gallery_picture(gallery, p.image_index, show_photos) for p in patients]
for patient, pair, picture in zip(patients, pairs, pictures, strict=True):
    scale = similarity_view.pair_scale(pair)
    fq, fp = similarity_view.pair_figures(
        face.image, picture, pair, scale, opacity=opacity, palette=palette
    )
    left, mid, info = st.columns([1, 1, 1.1])
    left.plotly_chart(fq, width="stretch", config={"displayModeBar": False},
                      key=f"q-{pair.image_index}")  # fmt: skip
    mid.plotly_chart(fp, width="stretch", config={"displayModeBar": False},
                     key=f"p-{pair.image_index}")  # fmt: skip
    info.markdown(similarity_view.patient_caption(patient, pair))
    info.caption(picture.caption)
    with info:
        colours.legend(scale, palette, "similarity share")

st.subheader("Pair details")
pick = st.radio(
    "Patient",
    range(len(patients)),
    format_func=lambda j: f"#{patients[j].rank} {patients[j].subject_id}",
    horizontal=True,
)
pair, picture = pairs[pick], pictures[pick]
if pair.decomposition is not None:
    st.markdown("**Correspondence**: where on the gallery face a query cell finds its match.")
    cell = similarity_view.selected_cell(pair)
    a, b = st.columns(2)
    a.plotly_chart(
        similarity_view.cell_picker_figure(
            face.image,
            pair,
            similarity_view.pair_scale(pair),
            cell,
            opacity=opacity,
            palette=palette,
        ),
        width="stretch",
        on_select="rerun",
        selection_mode="points",
        key=similarity_view.CLICK_KEY,
    )
    b.plotly_chart(
        similarity_view.correspondence_figure(
            picture, pair, cell, opacity=opacity, palette=palette
        ),
        width="stretch",
        config={"displayModeBar": False},
    )
    with st.expander("All 49 × 49 cell pairs"):
        st.plotly_chart(similarity_view.correspondence_heatmap(pair, palette), width="stretch")
else:
    st.caption("The cell-to-cell correspondence comes with the exact decomposition.")

st.markdown("**Distance per model / TTA variant**")
st.dataframe(similarity_view.variant_rows(ranking, pair), hide_index=True, width="stretch")
st.download_button(
    "Download this pair (PNG)",
    similarity_view.pair_png(face.image, picture, pair, opacity=opacity, palette=palette),
    file_name=f"gmx_similarity_{patients[pick].subject_id}.png",
    mime="image/png",
)
