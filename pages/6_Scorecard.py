"""Scorecard: which attribution maps to trust (faithfulness, sanity, localisation, with CIs)."""

from __future__ import annotations

import streamlit as st

from ui import common, resources, scorecard_view

cfg = common.page_setup("Scorecard")
st.title("Scorecard")
diag = resources.diagnoser(cfg)
card = scorecard_view.current(diag.gallery.model_fingerprint)  # the models + TTA that embedded it
with st.expander("How to read this", icon=":material/help:", expanded=card is None):
    st.markdown(scorecard_view.HOW_TO_READ)
if card is None:
    st.info(
        "No scorecard was made with the active model. Run `gmx scorecard --out RUN --json "
        "FILE` with your models and gallery, and put FILE in gmx's cache folder under "
        "`scorecards/` (docs/metrics.md)."
    )
    st.stop()

request = scorecard_view.scorecard_controls(card)
st.caption(scorecard_view.provenance(card))
st.subheader("Leaderboard")
st.dataframe(scorecard_view.leaderboard_rows(card), hide_index=True, width="stretch")
with st.expander("What the columns mean"):
    st.markdown(scorecard_view.column_help())

method = st.selectbox("Verdict of", list(card.methods), format_func=scorecard_view.method_name)
st.markdown(card.verdicts[method].sentence())

st.subheader("Curves")
for kind, title in (
    ("deletion", "Deletion: most relevant pixels blurred first (falls fast = faithful)"),
    ("insertion", "Insertion: most relevant pixels restored first (rises fast = faithful)"),
    ("mprt", "Randomisation: similarity to the original map as stages are randomised"),
):
    fig = scorecard_view.curve_figure(card, kind, request.curve_methods)
    if fig is None:
        st.caption(f"{title}: not stored for the chosen methods.")
        continue
    st.markdown(f"**{title}**")
    st.plotly_chart(fig, width="stretch")

agreement = scorecard_view.agreement_figures(card)
if agreement is not None:
    st.subheader("Method agreement over the faces")
    st.caption(scorecard_view.agreement_caption(card))
    left, right = st.columns(2)
    left.plotly_chart(agreement[0], width="stretch")
    right.plotly_chart(agreement[1], width="stretch")

pairs = scorecard_view.pair_rows(card)
if pairs is not None:
    st.subheader("Pair maps (Similarity page)")
    st.caption(scorecard_view.pair_caption(card))
    st.dataframe(pairs, hide_index=True, width="stretch")

profiles = scorecard_view.region_profiles(diag.gallery.model_fingerprint)
if profiles is not None and profiles.faces:
    st.subheader("Regions per syndrome")
    st.caption(scorecard_view.REGIONS_CAPTION)
    names = {sid: s.name for sid, s in diag.gallery.syndromes.items()}
    st.dataframe(scorecard_view.regions_overview(profiles, names), hide_index=True,
                 width="stretch", column_config=scorecard_view.REGIONS_OVERVIEW_COLUMNS)  # fmt: skip
    sid = st.selectbox("Syndrome", list(profiles.faces), format_func=lambda s: names.get(s, s),
                       key=scorecard_view.REGION_SYNDROME)  # fmt: skip
    face = profiles.faces[sid]
    method = st.selectbox("Map", list(face.methods), format_func=scorecard_view.method_name,
                          key=scorecard_view.REGION_METHOD)  # fmt: skip
    hpo = diag.gallery.syndromes[sid].hpo if sid in diag.gallery.syndromes else ()
    profile = face.profile(method, hpo, label=names.get(sid, sid))
    left, right = st.columns(2)
    left.plotly_chart(scorecard_view.region_figure(face), width="stretch")
    right.plotly_chart(scorecard_view.score_figure(face), width="stretch")
    st.markdown(scorecard_view.features_text(face, profile))
