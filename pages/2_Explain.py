"""Explain: which facial regions drive GestaltMatcher's answer, top-k syndromes x methods."""

from __future__ import annotations

import json

import streamlit as st

from gmx.explain import THESIS_PANEL, list_methods
from gmx.panel import (
    SCALE_MODES,
    contrast_rows,
    display_maps,
    grid_png,
    logit_rows,
    maps_npz,
    similarity_rows,
)
from gmx.viz import COLORMAPS, DIVERGING
from ui import common, explain_view, photo, resources, state

cfg = common.page_setup("Explain")
st.title("Explain")
current = photo.current(cfg)  # no photo / unreadable / no face / unconfirmed: message + stop
name, diagnosis = current.name, current.diagnosis
diag = resources.diagnoser(cfg)
face = diagnosis.face.image
gallery = diag.gallery

with st.sidebar:
    st.header("What to explain")
    n_rows = st.slider("Top syndromes", 1, min(10, len(diagnosis.ranking.syndromes)), 3)
    target_kind = st.radio(
        "Target",
        ["similarity", "logit", "contrast"],
        format_func={
            "similarity": "GestaltMatcher score (similarity to nearest gallery image)",
            "logit": "Classifier logit",
            "contrast": "Syndrome rather than the next one",
        }.__getitem__,
    )
    all_variants = st.toggle(
        "All models and TTA variants (the model's real answer)",
        value=True,
        help="Off: only the first model, unflipped colour input (faster).",
    )
    st.header("Methods")
    names = list(list_methods())
    fast_default = [m for m in THESIS_PANEL if m not in explain_view.SLOW_METHODS]
    methods = st.multiselect(
        "Methods", names, default=fast_default, format_func=explain_view.method_label
    )
    slow_on = st.toggle(
        "Slow methods: occlusion (10×10, stride 5) and integrated gradients (32 steps)",
        value=state.get("gmx.explain.slow", False),
        key="gmx.explain.slow",
    )
    with st.expander("Method parameters"):
        window = st.slider("Occlusion window (px)", 4, 32, 10)
        stride = st.slider("Occlusion stride (px)", 2, 16, 5)
        rerank = st.toggle(
            "Occlusion: re-rank the syndrome's gallery images",
            help="Score each occluded face as GestaltMatcher does (its nearest image of the syndrome "
            "may change) instead of keeping the unoccluded face's nearest image.",
        )
        ig_steps = st.slider("Integrated gradients steps", 8, 128, 32, step=8)
        smooth = st.slider("SmoothGrad samples (gradient methods; 0 = off)", 0, 32, 0)
    st.header("Display")
    cmap = st.selectbox("Colour map (signed maps)", [c for c in COLORMAPS if c in DIVERGING])
    opacity = st.slider("Opacity", 0.0, 1.0, 0.6)
    sign_mode = st.radio("Sign", ["both", "positive", "negative"], horizontal=True)
    scale_label = st.radio("Colour scale", list(SCALE_MODES))

if not methods and not slow_on:
    st.info("Choose at least one method in the sidebar.")
    st.stop()

params = {
    "occlusion": {"window": window, "stride": stride, "rerank": rerank},
    "integrated_gradients": {"steps": ig_steps, "smooth_samples": 0},
    **{m: {"smooth_samples": smooth} for m in ("saliency", "deconvolution", "guided_backprop")},
}
variants = list(diag.ensemble.variants if all_variants else diag.ensemble.variants[:1])
models = [m.model for m in diag.models]
ranking = diagnosis.ranking
if target_kind == "logit":
    rows, skipped = logit_rows(ranking, diag.models[0].card.classes, n_rows)
    if skipped:
        st.caption("No classifier logit for: " + ", ".join(skipped) + " (not classifier classes).")
    if not rows:
        st.warning("The classifier knows none of these syndromes; use the similarity target.")
        st.stop()
else:
    rows = similarity_rows(ranking, gallery, variants, n_rows + (target_kind == "contrast"))
    if target_kind == "contrast":
        rows = contrast_rows(rows)

# cache key: photo hash, model fingerprint, gallery version, face, target, variants (+ method, params)
key_prefix = (diagnosis.image_sha256, diag.ensemble.fingerprint, gallery.name, gallery.version,
              diagnosis.face_index, target_kind, tuple(v.label for v in variants))  # fmt: skip
st.caption(
    f"{name} · face {diagnosis.face_index + 1} · {len(variants)} variant(s): "
    f"{', '.join(v.label for v in variants)} · maps keep their sign and scale; colours are a display choice."
)

fast = [m for m in methods if m not in explain_view.SLOW_METHODS]
slow = [m for m in explain_view.SLOW_METHODS if slow_on or m in methods]
grid = explain_view.compute_maps(
    key_prefix, models, face, rows, variants, fast, params,
    progress_label="Computing fast maps" if fast else None,
)  # fmt: skip
if slow:
    if st.button("Cancel slow methods", help="Stops occlusion / integrated gradients."):
        st.session_state["gmx.explain.slow"] = False
        st.rerun()
    slow_grid = explain_view.compute_maps(
        key_prefix, models, face, rows, variants, slow, params,
        progress_label="Computing occlusion / integrated gradients",
    )  # fmt: skip
    for g, s in zip(grid, slow_grid, strict=True):
        g.update(s)

order = [m for m in (*fast, *slow) if m in grid[0]]
flat = [grid[i][m] for i in range(len(rows)) for m in order]
values, scales = display_maps(flat, SCALE_MODES[scale_label], sign_mode)

header = st.columns([1.1, *([1] * len(order))])
header[0].markdown("**Syndrome**")
for c, m in zip(header[1:], order, strict=True):
    c.markdown(f"**{explain_view.method_label(m)}**")
k = 0
for i, row in enumerate(rows):
    cols = st.columns([1.1, *([1] * len(order))])
    cols[0].markdown(f"**#{row.match.rank} {row.match.name}**  \ndistance {row.match.distance:.3f}")
    cols[0].image(face, width="stretch")
    for c, m in zip(cols[1:], order, strict=True):
        amap = grid[i][m]
        c.plotly_chart(
            explain_view.cell_figure(face, values[k], scales[k], amap, cmap, opacity, 170),
            width="stretch",
            config={"displayModeBar": False},
            key=f"cell-{i}-{m}",
        )
        c.caption(f"{amap.elapsed_s * 1000:.0f} ms · max |v| {abs(amap.values).max():.2g}")
        k += 1

st.subheader("Large view")
choices = [(i, m) for i in range(len(rows)) for m in order]
pick = st.selectbox(
    "Map",
    range(len(choices)),
    format_func=lambda j: (
        f"#{rows[choices[j][0]].match.rank} {rows[choices[j][0]].match.name} — "
        f"{explain_view.method_label(choices[j][1])}"
    ),
)
i, m = choices[pick]
amap = grid[i][m]
j = choices.index((i, m))
big, raw, meta = st.columns([1.2, 1, 1])
big.plotly_chart(
    explain_view.cell_figure(face, values[j], scales[j], amap, cmap, opacity, 420),
    width="stretch",
)
raw.plotly_chart(explain_view.raw_figure(amap, scales[j]), width="stretch")
raw.caption(explain_view.raw_caption(amap))
meta.markdown(f"**{amap.display_name}**  \n{amap.target_description}")
meta.json(
    {
        "signed": amap.signed,
        "params": dict(amap.params),
        "elapsed_s": round(amap.elapsed_s, 3),
        "variants": [v.label for v in amap.variants],
        "sum": float(amap.values.sum()),
        "min": float(amap.values.min()),
        "max": float(amap.values.max()),
        "colour scale": [scales[j].vmin, scales[j].vmax],
    },
    expanded=False,
)

d1, d2 = st.columns(2)
d1.download_button(
    "Download grid (PNG)",
    grid_png(face, [[grid[r][m] for m in order] for r in range(len(rows))],
             scale_mode=SCALE_MODES[scale_label], sign_mode=sign_mode, cmap=cmap, opacity=opacity),
    file_name="gmx_explain_grid.png",
    mime="image/png",
)  # fmt: skip
d2.download_button(
    "Download raw maps (.npz)",
    maps_npz(
        rows,
        grid,
        provenance={
            "photo_sha256": diagnosis.image_sha256,
            "models": [f"{mm.card.name} {mm.fingerprint[:12]}" for mm in diag.models],
            "gallery": f"{gallery.name} {gallery.version}",
            "face_index": diagnosis.face_index,
            "variants": [v.label for v in variants],
        },
    ),
    file_name="gmx_explain_maps.npz",
    mime="application/octet-stream",
)
st.caption(json.dumps({"methods": order, "scale": scale_label, "sign": sign_mode}))
