"""Syndromes: syndrome-level maps (mean, spread, contrast), composite faces, stability, comparison."""

from __future__ import annotations

import streamlit as st

from ui import common, resources, syndromes_view

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
request = syndromes_view.syndromes_controls()
diag = resources.diagnoser(cfg)
gallery = diag.gallery
if not request.methods:
    st.info("Choose at least one method in the sidebar.")
    st.stop()

fingerprint = diag.models[0].fingerprint
path = syndromes_view.results_path(cfg, fingerprint, request.target, request.methods)
if not path.exists():
    st.info(
        f"No syndrome-level results yet for this model, gallery, target and "
        f"{len(request.methods)} method(s). Computing them explains all {len(gallery.images)} "
        "gallery images once (resumable: finished chunks are kept if you leave)."
    )
    if st.button("Compute syndrome maps", type="primary"):
        bar = st.progress(0.0, text="Explaining gallery images…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"Explaining gallery images… {done}/{total}")

        syndromes_view.compute_results(
            diag.models, gallery, path, methods=request.methods, target=request.target,
            progress=progress,
        )  # fmt: skip
        bar.empty()
        st.rerun()
    st.stop()

mtime = path.stat().st_mtime
results = resources.syndrome_results(str(path), mtime)
choice = syndromes_view.syndrome_choice(list(results.syndromes), results.names)

columns = st.columns(len(choice.shown))
for col, syndrome in zip(columns, choice.shown, strict=True):
    with col:
        st.subheader(f"{syndrome} · {results.names[syndrome]}")
        rows = syndromes_view.summary_rows(results, syndrome)
        if rows:
            st.markdown(f"**{rows[0]['patients']} patients**, {rows[0]['images']} images")
        st.markdown(syndromes_view.syndrome_facts(gallery, syndrome))
        faces = st.columns(2)
        if syndrome in results.composites:
            faces[0].image(results.composites[syndrome], caption="Composite face", width="stretch")
        else:
            faces[0].caption(syndromes_view.composite_caption(results, syndrome))
        diff = syndromes_view.composite_difference_image(results, syndrome)
        if diff is not None:
            faces[1].image(diff, caption="Composite minus unaffected (grey = 0)", width="stretch")
        shown_methods = [m for m in request.methods if (syndrome, m) in results.maps]
        tiles = st.columns(max(len(shown_methods), 1))
        for column, method in zip(tiles, shown_methods, strict=False):
            tile = resources.syndrome_tile(str(path), mtime, syndrome, method, request)
            name = syndromes_view.method_name(method)
            if tile is None:
                column.caption(f"{name}: no {syndromes_view.KINDS[request.kind].lower()}")
            else:
                column.image(tile.image, caption=name, width="stretch")
                column.caption(syndromes_view.tile_legend(tile))
        outlined = request.region and syndrome in results.masks
        st.caption(syndromes_view.row_legend(request.kind, outlined))
        if request.region and not outlined:
            st.caption(syndromes_view.NO_REGION)
        st.dataframe(rows, hide_index=True, width="stretch")
        located = syndromes_view.localisation_rows(results, syndrome)
        if located:
            st.markdown("**Does the map find the known causal region?** (held-out images)")
            st.dataframe(located, hide_index=True, width="stretch")
