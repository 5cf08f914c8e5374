"""Study analysis: Likert distributions, inter-rater agreement, arms, where raters looked."""

from __future__ import annotations

from functools import partial

import streamlit as st

from gmx.config import DEMO_DIR
from gmx.study import StudyError, StudyStore, StudyStoreError, analyse, to_csv, to_json
from gmx.study.analysis import to_markdown
from gmx.study.cases import answered_region_cases, case_source_text
from gmx.study.plots import likert_figure
from gmx.study.regions import parse_fixations
from gmx.study.views import resolve_study, study_location
from ui import common, resources, study_view

cfg = common.page_setup("Study analysis")
st.title("Study analysis")
location = study_location()
if not location.db_path.is_file():
    st.info(f"No answers yet ({location.db_path}): raters answer on the **Study** page.")
    st.stop()
try:
    study = resolve_study(location, DEMO_DIR)
    store = StudyStore(location.db_path, study_name=study.name, fingerprint=study.fingerprint)
except (StudyError, StudyStoreError, OSError) as exc:
    st.error(f"The study cannot be opened: {exc}")
    st.stop()
request = study_view.analysis_controls()
answers = store.answers()
source = resources.study_source_config(study, location.study_dir, cfg)
st.caption(f"{study.name} · {location.db_path} · {case_source_text(study, source)}")
if not answers:
    st.info("No answers yet: raters answer on the **Study** page.")
    st.stop()

fixations = None
if request.fixations_csv is not None:
    try:
        fixations = parse_fixations(request.fixations_csv.decode("utf-8"), name="the uploaded CSV")
    except (StudyError, UnicodeDecodeError) as exc:
        st.error(f"Fixations not used: {exc}")
try:
    cases = resources.study_cases(study, source)
except StudyError as exc:
    st.error(f"The study's cases cannot be opened: {exc}")
    st.stop()
maps = {}
if request.with_maps and study.methods:
    marked = [c for c in answered_region_cases(answers) if c in cases.faces]
    with st.spinner(f"Computing the maps of {len(marked)} marked case(s)…"):
        for c in marked:
            material = resources.study_material(source, c, cases.faces[c], study.methods,
                                                study.top_k, cases.subjects.get(c))  # fmt: skip
            maps.update({(c, m): v for m, v in material.maps.items()})
result = analyse(study, answers, truth=cases.labels, maps=maps, masks=cases.masks,
                 fixations=fixations, top_percent=request.top_percent)  # fmt: skip

st.metric("Raters", result.raters)
likert = [r for r in result.likert if r.scope == "map"]
if likert:
    st.subheader("Likert answers per method (unblinded here)")
    st.plotly_chart(likert_figure(likert), width="stretch")
st.markdown(to_markdown(result))
d1, d2 = st.columns(2)
d1.download_button("Download answers (CSV)", partial(to_csv, answers), file_name="study_answers.csv",
                   mime="text/csv", on_click="ignore")  # fmt: skip
d2.download_button("Download answers (tidy JSON)", partial(to_json, answers, store.meta()),
                   file_name="study_answers.json", mime="application/json", on_click="ignore")  # fmt: skip
with st.expander("What the numbers mean"):
    st.markdown(
        "See docs/study.md. Likert CIs: 95 % percentile bootstrap of the mean. Alpha: "
        "Krippendorff's ordinal alpha (1 = perfect agreement, 0 = chance). Arms: the rater's own "
        "guess before the model against the final answer on the same case (McNemar exact, "
        "Wilcoxon signed-rank). Regions: AUC-Judd (0.5 = chance), NSS (0 = chance), IoU of the "
        "map's top-k % with the marked region."
    )
