"""Study: a rater goes case by case through a clinician evaluation study (docs/study.md)."""

from __future__ import annotations

import streamlit as st

from gmx.config import DEMO_DIR
from gmx.study import StudyError, StudyStore, StudyStoreError, next_step, rater_plan
from gmx.study.views import resolve_study, study_location
from ui import common, resources, study_view

cfg = common.page_setup("Study")
st.title("Study")
location = study_location()
try:
    study = resolve_study(location, DEMO_DIR)
except StudyError as exc:
    st.error(f"The study cannot be opened: {exc}")
    st.stop()
st.caption(
    f"{study.name} · answers are saved at once in {location.db_path.name}; only image ids and "
    "your answers are stored, under your pseudonymous id."
)
request = study_view.rater_controls()
if request.problem:
    st.error(request.problem)
# the cases load after the rater box is drawn (the demo data takes a while on a busy machine)
source = resources.study_source_config(study, location.study_dir, cfg)
try:
    cases = resources.study_cases(study, source)
except StudyError as exc:
    st.error(f"The study's cases cannot be opened: {exc}")
    st.stop()
names = dict(cases.syndrome_names)
if request.rater is None:
    st.info("Enter your rater id in the sidebar to start (or continue) the study.")
    st.stop()
rater = request.rater
try:  # created on the first rater's visit
    store = StudyStore(location.db_path, study_name=study.name, fingerprint=study.fingerprint)
except (StudyStoreError, OSError) as exc:
    st.error(f"The study database cannot be opened: {exc}")
    st.stop()
plan = rater_plan(study, rater)
values = study_view.answered(store, rater)
step = next_step(study, plan, set(values))
total = len(plan.cases)
st.progress(step.fraction_done(total), text=f"{step.done_cases} of {total} cases done")

if step.stage == "done":
    st.success("All done — thank you. You can close this tab.")
    st.stop()
if step.stage == "composite":
    st.subheader("Composite faces")
    composite = resources.study_composite(resources.config_key(source), step.syndrome, source)
    study_view.composite_step(store, rater, study, step.syndrome,
                              names.get(step.syndrome, step.syndrome), composite)  # fmt: skip
    st.stop()

case = plan.cases[step.case_index]
face = cases.faces[case.case_id]
st.subheader(f"Case {step.case_index + 1} of {total}")
if step.stage == "impression":
    study_view.impression_step(store, rater, case, face, names, values)
    st.stop()
with st.spinner("The model is looking at this face…"):
    material = resources.study_material(source, case.case_id, face, case.methods, study.top_k,
                                        cases.subjects.get(case.case_id))  # fmt: skip
left, right = st.columns(study_view.CASE_COLUMNS)
left.image(face, caption="The patient (aligned face)", width=study_view.MAP_PX)
with right:
    if step.stage == "maps":
        study_view.maps_step(store, rater, study, case, face, material, values)
    else:
        study_view.final_step(store, rater, case, face, material, names)
