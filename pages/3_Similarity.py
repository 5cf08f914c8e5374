"""Similarity: which regions make the query similar to each nearest gallery patient, and vice versa."""

from __future__ import annotations

from functools import partial

import streamlit as st

from gmx.errors import GalleryError
from gmx.gallery import MIN_COMPOSITE_SUBJECTS
from gmx.similarity import PAIR_METHODS, nearest_patients
from ui import colours, common, photo, resources, similarity_view, state, tables

cfg = common.page_setup("Similarity")
st.title("Similarity to gallery patients")
current = photo.current(cfg)  # no photo / unreadable / no face / unconfirmed: message + stop
name, diagnosis = current.name, current.diagnosis
diag = resources.diagnoser(cfg)
face, ranking, gallery = diagnosis.face, diagnosis.ranking, diag.gallery
explainer = resources.pair_explainer(cfg)

request = similarity_view.similarity_controls()
top_k = int(state.get(state.TOP_K, state.TOP_K_DEFAULT))
st.caption(similarity_view.METHOD_HELP)

syndrome_id = similarity_view.syndrome_choice(ranking, top_k)
patients = nearest_patients(ranking, gallery, syndrome_id, request.n_patients)
show_photos = tables.photos_allowed(cfg, gallery)
if not show_photos:
    st.info(
        "Gallery photos may not be shown here: each patient's map is drawn on the syndrome's "
        f"composite face (mean of at least {MIN_COMPOSITE_SUBJECTS} patients' photos) or on a "
        "template face, with the template landmarks. Only the patient's id, syndrome, distance and maps are shown.",
        icon=":material/lock:",
    )
reason = explainer.unavailable(request.method)
if reason is not None:
    st.warning(f"{reason}. Showing the exact decomposition instead.")
    request = request.with_method("exact")
method, opacity, palette = request.method, request.opacity, request.palette

key = (resources.config_key(cfg), diagnosis.image_sha256, diagnosis.face_index)
query = resources.similarity_query(*key, explainer, face)
bar = st.progress(0.0, text=f"{PAIR_METHODS[method]}…") if method != "exact" else None
try:
    pairs = resources.similarity_pairs(
        *key, tuple(p.image_index for p in patients), method, request.split, request.params,
        explainer, face, query, (lambda done, total: bar.progress(done / total)) if bar else None,
    )  # fmt: skip
except GalleryError as exc:
    st.error(str(exc))
    st.stop()
if bar is not None:
    bar.empty()

pictures = [similarity_view.gallery_picture(gallery, p.image_index, show_photos) for p in patients]
st.caption(similarity_view.NUMBERS_HELP)
checks = None
checking = common.checks_controls(
    similarity_view.CHECKS_LABEL,
    key=similarity_view.CHECKS_TOGGLE,
    help=similarity_view.CHECKS_HELP,
)
if checking.on:
    checks_key = (diagnosis.image_sha256, resources.config_key(cfg), diagnosis.face_index,
                  tuple(p.image_index for p in patients), method, request.split, request.params)  # fmt: skip
    checks = similarity_view.compute_checks(checks_key, explainer, face.image, pairs)
for patient, pair, picture in zip(patients, pairs, pictures, strict=True):
    scale = similarity_view.pair_scale(pair)
    fq, fp = similarity_view.pair_figures(
        face.image, picture, pair, scale, opacity=opacity, palette=palette
    )
    left, mid, info = st.columns(list(similarity_view.PAIR_COLUMNS))
    left.plotly_chart(fq, width="stretch", config={"displayModeBar": False},
                      key=f"q-{pair.image_index}")  # fmt: skip
    mid.plotly_chart(fp, width="stretch", config={"displayModeBar": False},
                     key=f"p-{pair.image_index}")  # fmt: skip
    info.markdown(similarity_view.patient_caption(patient, pair))
    info.caption(picture.caption)
    if checks is not None:
        info.markdown(similarity_view.check_caption(checks, pair.image_index))
    with info:
        colours.legend(scale, palette, "similarity share")
if checks is not None:
    with st.expander("Checks of these pair maps"):
        st.dataframe(similarity_view.checks_table(checks, patients), hide_index=True)
        st.caption(similarity_view.CHECKS_HELP)

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
    cells = similarity_view.n_cells(pair)
    with st.expander(f"All {cells} × {cells} cell pairs"):
        st.plotly_chart(similarity_view.correspondence_heatmap(pair, palette), width="stretch")
else:
    st.caption("The cell-to-cell correspondence comes with the exact decomposition.")

st.markdown("**Distance per model / TTA variant**")
st.dataframe(
    similarity_view.variant_rows(ranking, pair),
    hide_index=True,
    width="stretch",
    column_config=similarity_view.VARIANT_COLUMNS,
)
st.download_button(
    "Download this pair (PNG)",
    partial(similarity_view.pair_png, face.image, picture, pair, opacity=opacity, palette=palette),
    file_name=f"gmx_similarity_{patients[pick].subject_id}.png",
    mime="image/png",
    on_click="ignore",  # deferred: the PNG is built on click, not on every run
)
