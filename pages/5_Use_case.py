"""Use case: one demo patient through Diagnose, Explain, Similarity and Syndromes to a case report."""

from __future__ import annotations

import streamlit as st

from ui import common, photo, report_view, resources, tables, usecase_view

cfg = common.page_setup("Use case")
st.title("Use case: one patient, every explanation, a report")
if not usecase_view.intro(cfg):
    st.stop()
if not photo.has_photo():
    st.info(f"Press *{usecase_view.LOAD_LABEL}* to start.")
    st.stop()
current = photo.current(cfg)  # unreadable / no face / unconfirmed: message + stop
diag = resources.diagnoser(cfg)
st.caption(f"Patient: **{current.name}**")

first, *middle, last = usecase_view.STEPS
usecase_view.step(first)
st.dataframe(
    tables.syndrome_table(
        current.diagnosis.ranking, diag.gallery, usecase_view.SUMMARY_TOP_K, show_photos=False
    ),
    hide_index=True,
    width="stretch",
    column_config=tables.SYNDROME_COLUMNS,
)
for item in middle:
    usecase_view.step(item)
usecase_view.step(last)
top_k = report_view.kept_top_k()
report_view.report_downloads(
    current,
    diag,
    cfg,
    top_k=top_k,
    choices=report_view.kept_choices(current, diag.gallery, top_k),
    maps=usecase_view.report_maps(current, diag),
    page="use_case",
)
