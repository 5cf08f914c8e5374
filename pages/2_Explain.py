"""Explain: which facial regions drive GestaltMatcher's answer, top-k syndromes x methods."""

from __future__ import annotations

import json
from functools import partial

import streamlit as st

from gmx.panel import (
    explanation_provenance,
    grid_png,
    map_units,
    maps_npz,
    panel_rows,
    reading,
)
from ui import colours, common, explain_view, photo, report_view, resources, scorecard_view

cfg = common.page_setup("Explain")
st.title("Explain")
current = photo.current(cfg)  # no photo / unreadable / no face / unconfirmed: message + stop
name, diagnosis = current.name, current.diagnosis
diag = resources.diagnoser(cfg)
face = diagnosis.face.image
gallery = diag.gallery

request = explain_view.explain_controls(len(diagnosis.ranking.syndromes))
if not request.methods and not request.slow:
    st.info("Choose at least one method in the sidebar.")
    st.stop()

params = request.params
variants = list(diag.ensemble.variants if request.all_variants else diag.ensemble.variants[:1])
models = [m.model for m in diag.models]
rows, skipped = panel_rows(
    request.target, diagnosis.ranking, gallery, variants, diag.models[0].card.classes,
    request.n_rows,
)  # fmt: skip
if skipped:
    st.caption("No classifier logit for: " + ", ".join(skipped) + " (not classifier classes).")
if not rows:
    st.warning(
        "The classifier knows none of these syndromes; use the similarity target."
        if request.target == "logit"
        else "A contrast needs two syndromes in the ranking; use the similarity target."
    )
    st.stop()

# cache key: photo hash, model fingerprint, gallery version, face, target, variants (+ method, params)
key_prefix = (diagnosis.image_sha256, diag.ensemble.fingerprint, gallery.name, gallery.version,
              diagnosis.face_index, request.target, tuple(v.label for v in variants))  # fmt: skip
st.caption(
    f"{name}, face {diagnosis.face_index + 1}: each map is the average over {len(variants)} "
    f"model / test-time variant(s) ({', '.join(v.label for v in variants)}). Maps keep their sign "
    "and size; the colours and their scale are only a display choice."
)

fast, slow = request.fast_methods, request.slow_methods
grid = explain_view.compute_maps(
    key_prefix, models, face, rows, variants, fast, params,
    progress_label="Computing fast maps" if fast else None,
)  # fmt: skip
if slow:
    slow_grid = explain_view.compute_maps(
        key_prefix, models, face, rows, variants, slow, params,
        progress_label="Computing occlusion / integrated gradients", cancellable=True,
    )  # fmt: skip
    for g, s in zip(grid, slow_grid, strict=True):
        g.update(s)

order = [m for m in (*fast, *slow) if all(m in g for g in grid)]
if not order:
    st.info("No maps yet: compute the slow methods or choose other methods in the sidebar.")
    st.stop()
card = scorecard_view.current(gallery.model_fingerprint)  # None: no scorecard for these models
badges = explain_view.scorecard_badges(card, order)
checks = None
checking = common.checks_controls(
    explain_view.CHECKS_LABEL, key=explain_view.CHECKS_TOGGLE, help=explain_view.CHECKS_HELP
)
if checking.on:
    checks = explain_view.compute_checks(key_prefix, models, face, rows, grid, order, variants,
                                         params)  # fmt: skip
notes = explain_view.check_notes(checks) if checks is not None else None
values, scales = explain_view.draw_grid(face, rows, grid, order, request, badges, notes)
if checks is not None:
    explain_view.checks_block(checks, rows)
explain_view.agreement_block(rows, grid, order, request.colours)
explain_view.region_block(diagnosis.face, rows, grid, order, gallery)

st.subheader("Large view")
choices = [(i, m) for i in range(len(rows)) for m in order]
pick = st.selectbox(
    "Map",
    range(len(choices)),
    format_func=lambda j: (
        f"{rows[choices[j][0]].label} — {explain_view.method_label(choices[j][1])}"
    ),
)
i, m = choices[pick]
amap = grid[i][m]
palette = request.colours
big, raw = st.columns(explain_view.LARGE_VIEW_WEIGHTS)
meta = st.container()
big.plotly_chart(
    explain_view.cell_figure(face, values[pick], scales[pick], amap, palette, request.opacity,
                             explain_view.LARGE_VIEW_HEIGHT),
    width="stretch",
)  # fmt: skip
with big:
    colours.legend(scales[pick], palette, map_units(m))
raw.plotly_chart(explain_view.raw_figure(amap, scales[pick], palette), width="stretch")
raw.caption(explain_view.raw_caption(amap))
meta.markdown(f"**{amap.display_name}**  \n{amap.target_description}")
meta.caption(reading(rows[i], amap.signed, palette))
meta.json(
    {
        "signed": amap.signed,
        "params": dict(amap.params),
        "elapsed_s": round(amap.elapsed_s, 3),
        "variants": [v.label for v in amap.variants],
        "sum": float(amap.values.sum()),
        "min": float(amap.values.min()),
        "max": float(amap.values.max()),
        "colour scale": [scales[pick].vmin, scales[pick].vmax],
    },
    expanded=False,
)

provenance = explanation_provenance(diagnosis, diag, variants, request.target)
d1, d2 = st.columns(2)
# Deferred: the PNG and the .npz are built only when a button is clicked, not on every run.
d1.download_button(
    "Download grid (PNG)",
    partial(grid_png, face, rows, grid, order, scale_mode=request.share, sign_mode=request.sign,
            palette=palette, opacity=request.opacity, demo=cfg.is_demo, provenance=provenance),
    file_name="gmx_explain_grid.png",
    mime="image/png",
    on_click="ignore",
)  # fmt: skip
d2.download_button(
    "Download raw maps (.npz)",
    partial(maps_npz, rows, grid, provenance=provenance, demo=cfg.is_demo),
    file_name="gmx_explain_maps.npz",
    mime="application/octet-stream",
    on_click="ignore",
)
st.caption(json.dumps({"methods": order, "scale": request.scale, "sign": request.sign}))
top_k = report_view.kept_top_k()
report_view.report_downloads(
    current, diag, cfg, top_k=top_k, choices=report_view.kept_choices(current, gallery, top_k),
    maps=report_view.shown_maps(rows, grid, order, request), page="explain",
)  # fmt: skip
