"""Syndromes: syndrome-level maps (mean, spread, contrast), composite faces, stability, comparison."""

from __future__ import annotations

import streamlit as st

from gmx.aggregate import DEFAULT_METHODS, TARGET_MODES
from gmx.explain import get_method, list_methods
from ui import colours, common, resources, syndromes_view

cfg = common.page_setup("Syndromes")
st.title("Syndromes")
st.caption(
    "Every gallery image explained against its own syndrome, averaged per syndrome in template "
    "coordinates (faces are aligned). Split-half r: agreement of the mean maps of two random halves "
    "of the patients (1 = stable)."
)
with st.expander("How to read the causal-region table (synthetic demo)"):
    st.markdown(
        "The demo's syndromes change known facial regions. Each syndrome's mean map over "
        "**held-out** patients (never trained on) is scored against its region (AUROC: 0.5 = "
        "chance, 1 = the region holds all the highest values). A high AUROC alone can come from "
        "a generic face prior, so it is shown minus four nulls: the other syndromes' maps on this "
        "region, the unaffected cohort explained against this syndrome, the mean of the other "
        "syndromes' maps, and this map on the other syndromes' regions. Brackets: 95 % bootstrap "
        "interval over patients. Only a difference whose interval lies above 0 is evidence that the "
        "map finds *this syndrome's* region."
    )
diag = resources.diagnoser(cfg)
gallery = diag.gallery

with st.sidebar:
    st.header("Results")
    target = st.radio(
        "Target",
        TARGET_MODES,
        format_func={
            "similarity": "Similarity to the nearest other patient of the syndrome",
            "logit": "Classifier logit",
            "auto": "Logit where the classifier has the class, else similarity",
        }.__getitem__,
    )
    methods = st.multiselect(
        "Methods",
        list(list_methods()),
        default=list(DEFAULT_METHODS),
        format_func=lambda m: get_method(m).display_name,
    )
    st.header("Display")
    kind = st.radio("Map", list(syndromes_view.KINDS), format_func=syndromes_view.KINDS.__getitem__)
    colours.palette_control()
    palette = st.session_state[colours.PALETTE]
    opacity = st.slider("Opacity", 0.0, 1.0, 0.6)

if not methods:
    st.info("Choose at least one method in the sidebar.")
    st.stop()

fingerprint = diag.models[0].fingerprint
path = syndromes_view.results_path(cfg, fingerprint, target, methods)
if not path.exists():
    st.info(
        f"No syndrome-level results yet for this model, gallery, target and {len(methods)} "
        f"method(s). Computing them explains all {len(gallery.images)} gallery images once "
        "(resumable: finished chunks are kept if you leave)."
    )
    if st.button("Compute syndrome maps", type="primary"):
        bar = st.progress(0.0, text="Explaining gallery images…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"Explaining gallery images… {done}/{total}")

        syndromes_view.compute_results(
            diag.models, gallery, path, methods=methods, target=target, progress=progress
        )
        bar.empty()
        st.rerun()
    st.stop()

mtime = path.stat().st_mtime
results = resources.syndrome_results(str(path), mtime)
ids = list(results.syndromes)

with st.sidebar:
    st.header("Syndromes")
    first = st.selectbox("Syndrome", ids, format_func=lambda s: f"{s} · {results.names[s]}")
    compare = st.toggle("Compare with a second syndrome")
    second = None
    if compare:
        others = [s for s in ids if s != first] or ids
        second = st.selectbox(
            "Second syndrome", others, format_func=lambda s: f"{s} · {results.names[s]}"
        )

shown = [s for s in (first, second) if s is not None]
columns = st.columns(len(shown))
for col, syndrome in zip(columns, shown, strict=True):
    with col:
        st.subheader(f"{syndrome} · {results.names[syndrome]}")
        rows = syndromes_view.summary_rows(results, syndrome)
        if rows:
            st.markdown(f"**{rows[0]['patients']} patients**, {rows[0]['images']} images")
        hpo = gallery.syndromes[syndrome].hpo if syndrome in gallery.syndromes else ()
        features = syndromes_view.hpo_features(syndrome, hpo)
        st.markdown(
            "**Facial features (HPO):** " + (", ".join(features) if features else "unknown")
        )
        faces = st.columns(2)
        if syndrome in results.composites:
            faces[0].image(results.composites[syndrome], caption="Composite face", width="stretch")
        else:
            faces[0].caption(syndromes_view.composite_caption(results, syndrome))
        diff = syndromes_view.composite_difference_image(results, syndrome)
        if diff is not None:
            faces[1].image(diff, caption="Composite minus unaffected (grey = 0)", width="stretch")
        shown_methods = [m for m in methods if (syndrome, m) in results.maps]
        tiles = st.columns(max(len(shown_methods), 1))
        for tile, method in zip(tiles, shown_methods, strict=False):
            image = resources.syndrome_overlay(
                str(path), mtime, syndrome, method, kind, palette, opacity
            )
            if image is None:
                tile.caption(f"{get_method(method).display_name}: no {kind} map")
            else:
                tile.image(image, caption=get_method(method).display_name, width="stretch")
        st.dataframe(rows, hide_index=True, width="stretch")
        located = syndromes_view.localisation_rows(results, syndrome)
        if located:
            st.markdown("**Does the map find the known causal region?** (held-out images)")
            st.dataframe(located, hide_index=True, width="stretch")
