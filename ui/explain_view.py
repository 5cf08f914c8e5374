"""Widgets of the Explain page: the controls, computing maps with progress and cancellation, the grid.

The page reads :func:`explain_controls` (a frozen :class:`gmx.panel.PanelRequest`), computes the maps
with :func:`compute_maps` (shared store, progress, a Cancel button for slow methods) and draws them
with :func:`draw_grid`; the colours come from the one palette of the app (:mod:`ui.colours`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from gmx.align import AlignedFace
from gmx.explain import (
    THESIS_PANEL,
    AttributionMap,
    ExplanationCancelled,
    explain_targets,
    get_method,
    list_methods,
)
from gmx.explain.compare import agreement_matrix
from gmx.metrics.photo import PhotoChecks, photo_checks
from gmx.panel import (
    SCALE_MODES,
    SIGN_MODES,
    SLOW_METHODS,
    TARGET_LABELS,
    PanelRequest,
    PanelRow,
    display_maps,
    map_units,
    reading_note,
)
from gmx.regions import (
    REGION_LABELS,
    REGIONS,
    TOP_REGIONS,
    RegionProfile,
    region_masks,
    region_profile,
)
from gmx.viz import (
    Palette,
    Scale,
    legend_text,
    map_figure,
    overlay,
    plotly_colorscale,
    range_text,
)
from ui import colours, resources, state

__all__ = [
    "CHECKS_HELP",
    "CHECKS_LABEL",
    "CHECKS_TOGGLE",
    "SLOW_METHODS",
    "agreement_block",
    "cell_figure",
    "check_notes",
    "checks_block",
    "compute_checks",
    "compute_maps",
    "draw_grid",
    "explain_controls",
    "method_label",
    "raw_caption",
    "raw_figure",
    "scorecard_badges",
]

#: Session key of the cancelled slow computation (its job id); set by the Cancel button's callback.
STOP = "gmx.explain.stop"
CANCEL_BUTTON = "gmx.explain.cancel"
RESUME_BUTTON = "gmx.explain.resume"

#: Relative width of the syndrome-label column of the grid (the face and each method column is 1).
LABEL_COLUMN_WEIGHT = 1.1
#: Methods per block of the grid: more methods continue in a second block below, so that cells
#: stay readable (>= 60 px at a 1024 px window with the sidebar open; tests/app/test_browser.py).
MAX_GRID_METHODS = 5
#: Relative widths of the large view and the raw panel (the details follow below them).
LARGE_VIEW_WEIGHTS = (1.0, 1.0)
#: Heights (pixels) of the large view and of the raw panel.
LARGE_VIEW_HEIGHT = 420
RAW_VIEW_HEIGHT = 320
#: Top syndromes offered, and the default.
MAX_ROWS = 10
DEFAULT_ROWS = 3
#: Slider ranges (min, max, default, step) of the method parameters.
WINDOW_RANGE = (4, 32, 10, 1)
STRIDE_RANGE = (2, 16, 5, 1)
IG_STEPS_RANGE = (8, 128, 32, 8)
SMOOTH_RANGE = (0, 32, 0, 1)
#: Overlay opacity: (min, max, default).
OPACITY_RANGE = (0.0, 1.0, 0.6)


def _slider(label: str, name: str, bounds: tuple[int, int, int, int], **kw: Any) -> int:
    low, high, default, step = bounds
    return int(st.slider(label, low, high, step=step, key=state.keep(name, default), **kw))


def explain_controls(n_syndromes: int) -> PanelRequest:
    """The sidebar of the Explain page; every setting is kept across pages (``state.keep``)."""
    max_rows = max(1, min(MAX_ROWS, n_syndromes))
    rows_key = state.keep("explain.rows", DEFAULT_ROWS)
    if int(st.session_state[rows_key]) > max_rows:  # a kept value from a larger ranking
        st.session_state[rows_key] = max_rows
    with st.sidebar:
        st.header("What to explain")
        n_rows = int(st.slider("Top syndromes", 1, max_rows, key=rows_key)) if max_rows > 1 else 1
        target = st.radio(
            "Target",
            list(TARGET_LABELS),
            format_func=TARGET_LABELS.__getitem__,
            key=state.keep("explain.target", "similarity"),
        )
        all_variants = st.toggle(
            "All models and TTA variants (the model's real answer)",
            help="Off: only the first model, unflipped colour input (faster).",
            key=state.keep("explain.all_variants", True),
        )
        st.header("Methods")
        fast_default = [m for m in THESIS_PANEL if m not in SLOW_METHODS]
        methods = st.multiselect(
            "Methods",
            list(list_methods()),
            format_func=method_label,
            key=state.keep("explain.methods", fast_default),
        )
        slow = st.toggle(
            "Slow methods: occlusion and integrated gradients",
            help="Computed after the other maps, with a progress bar and a Cancel button.",
            key=state.keep("explain.slow", False),
        )
        with st.expander("Method parameters"):
            window = _slider("Occlusion window (px)", "explain.window", WINDOW_RANGE)
            stride = _slider("Occlusion stride (px)", "explain.stride", STRIDE_RANGE)
            rerank = st.toggle(
                "Occlusion: re-rank the syndrome's gallery images",
                help="Score each occluded face as GestaltMatcher does (its nearest image of the "
                "syndrome may change) instead of keeping the unoccluded face's nearest image.",
                key=state.keep("explain.rerank", False),
            )
            ig_steps = _slider("Integrated gradients steps", "explain.ig_steps", IG_STEPS_RANGE)
            smooth = _slider(
                "SmoothGrad samples (gradient methods; 0 = off)", "explain.smooth", SMOOTH_RANGE
            )
        st.header("Display")
        colours.palette_control()
        low, high, default = OPACITY_RANGE
        opacity = st.slider("Opacity", low, high, key=state.keep("explain.opacity", default))
        sign = st.radio(
            "Sign", SIGN_MODES, horizontal=True, key=state.keep("explain.sign", SIGN_MODES[0])
        )
        scale = st.radio(
            "Colour scale",
            list(SCALE_MODES),
            key=state.keep("explain.scale", next(iter(SCALE_MODES))),
            help="Shared per method: one scale per column, so the syndromes compare. Methods in "
            "different units (FullGrad, gradients, attributions) never share a scale.",
        )
    return PanelRequest(
        n_rows=n_rows,
        target=target,
        all_variants=bool(all_variants),
        methods=tuple(methods),
        slow=bool(slow),
        window=window,
        stride=stride,
        rerank=bool(rerank),
        ig_steps=ig_steps,
        smooth=smooth,
        palette=str(st.session_state[colours.PALETTE]),
        opacity=float(opacity),
        sign=sign,
        scale=scale,
    )


# --- computing ----------------------------------------------------------------------------------
def job_id(key_prefix: tuple, rows: Sequence[PanelRow], methods: Sequence[str], params: Any) -> str:
    """A stable id of one computation (what a Cancel applies to)."""
    text = json.dumps(
        [list(map(str, key_prefix)), [r.target.description for r in rows], list(methods), params],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def request_stop(job: str) -> None:
    """Cancel button callback: stop ``job`` (the engine checks between batches)."""
    st.session_state[STOP] = job


def resume() -> None:
    """ "Compute them" button callback: forget the cancellation."""
    st.session_state.pop(STOP, None)


def cancelled(job: str) -> bool:
    """Whether the user cancelled ``job``."""
    return state.get(STOP) == job


def _store_key(key_prefix: tuple, row: PanelRow, method: str, params: Mapping[str, Any]) -> tuple:
    return (
        *key_prefix,
        row.target.description,
        method,
        json.dumps(params.get(method, {}), sort_keys=True),
    )


def compute_maps(
    key_prefix: tuple,
    models: Sequence[Any],
    face: Any,
    rows: Sequence[PanelRow],
    variants: Sequence[Any],
    methods: Sequence[str],
    params: Mapping[str, Mapping[str, Any]],
    *,
    progress_label: str | None = None,
    cancellable: bool = False,
) -> list[dict[str, AttributionMap]]:
    """Maps of ``methods`` for every row, from the shared store where already computed.

    Missing maps are computed in one engine call (shared passes); with ``progress_label`` a progress
    bar is shown. With ``cancellable`` a Cancel button stands under it while maps are computed (and
    disappears when they are done); a cancelled computation shows what was finished and a button to
    compute the rest. A row misses the methods that were not computed.
    """
    store = resources.map_store()
    out: list[dict[str, AttributionMap]] = [{} for _ in rows]
    missing_rows: dict[int, list[str]] = {}
    for i, row in enumerate(rows):
        for m in methods:
            hit = store.get(_store_key(key_prefix, row, m, params))
            if hit is not None:
                out[i][m] = hit  # type: ignore[assignment]
            else:
                missing_rows.setdefault(i, []).append(m)
    if not missing_rows:
        return out
    todo_methods = sorted({m for ms in missing_rows.values() for m in ms}, key=list(methods).index)
    todo_rows = sorted(missing_rows)
    job = job_id(key_prefix, rows, methods, params)
    names = ", ".join(method_label(m) for m in todo_methods)
    if cancellable and cancelled(job):
        _cancelled_note(names)
        return out
    bar = st.progress(0.0, text=progress_label) if progress_label else None
    slot = st.empty()
    if cancellable:
        slot.button(
            "Cancel slow methods",
            key=CANCEL_BUTTON,
            on_click=request_stop,
            args=(job,),
            help=f"Stops {names} between batches.",
        )

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.progress(min(1.0, done / max(total, 1)), text=f"{progress_label} ({done}/{total})")

    try:
        results = explain_targets(
            list(models),
            face,
            [rows[i].target for i in todo_rows],
            list(variants),
            methods=todo_methods,
            params={m: params[m] for m in todo_methods if m in params},
            progress=progress,
            should_stop=(lambda: cancelled(job)) if cancellable else None,
        )
    except ExplanationCancelled as stop:
        results = stop.completed
    for i, maps in zip(todo_rows, results, strict=True):
        for m, amap in maps.items():
            store.put(_store_key(key_prefix, rows[i], m, params), amap)
            out[i][m] = amap
    slot.empty()
    if bar is not None:
        bar.empty()
    if cancellable and cancelled(job):
        _cancelled_note(names)
    return out


def _cancelled_note(names: str) -> None:
    st.info(f"Cancelled: {names}. The other maps are shown.")
    st.button("Compute them", key=RESUME_BUTTON, on_click=resume)


# --- drawing ------------------------------------------------------------------------------------
#: Badge words of a scorecard verdict: (passed, failed); not judged: no badge.
BADGE_NOTE = (
    "Badges: this method's verdicts in the scorecard of the active model, over held-out faces "
    "(not this photo); see the Scorecard page."
)


def scorecard_badges(card: Any, methods: Sequence[str]) -> dict[str, str]:
    """Method -> markdown badges of its scorecard verdicts (``{}`` without a scorecard; methods
    the scorecard lacks get none)."""
    if card is None:
        return {}
    out = {}
    for m in methods:
        verdict = card.verdicts.get(m)
        if verdict is None:
            continue
        parts = []
        for words, value in verdict.words():
            parts.append(f":green-badge[{words}]" if value else f":red-badge[{words}]")
        out[m] = " ".join(parts)
    return out


def draw_grid(
    face: Any,
    rows: Sequence[PanelRow],
    grid: Sequence[Mapping[str, AttributionMap]],
    order: Sequence[str],
    request: PanelRequest,
    badges: Mapping[str, str] | None = None,
    notes: Mapping[tuple[int, str], tuple[str, str]] | None = None,
) -> tuple[list[Any], list[Scale]]:
    """The grid: syndromes x methods, square cells, a colour bar per method column (per map when
    each map has its own scale), the method's scorecard ``badges`` under its name, and under a
    cell its per-photo check ``notes[(row, method)]`` (text, help); returns the drawn values and
    scales (row-major)."""
    badges = badges or {}
    notes = notes or {}
    palette = request.colours
    flat = [grid[i][m] for i in range(len(rows)) for m in order]
    values, scales = display_maps(flat, request.share, request.sign)
    per_map = request.share == "map"
    st.caption(reading_note(palette))
    if badges:
        st.caption(BADGE_NOTE)
    with st.container(key="explain-grid"):
        for start in range(0, len(order), MAX_GRID_METHODS):
            block = range(start, min(start + MAX_GRID_METHODS, len(order)))
            weights = [LABEL_COLUMN_WEIGHT, 1, *([1] * MAX_GRID_METHODS)]
            header = st.columns(weights)
            header[0].markdown("**Syndrome**")
            header[1].markdown("**Face**")
            for c, j in zip(header[2:], block, strict=False):
                with c:
                    st.markdown(f"**{method_label(order[j])}**")
                    if order[j] in badges:
                        st.markdown(badges[order[j]])
                    note = map_units(order[j]) + ("" if flat[j].signed else ", no direction")
                    if per_map:
                        colours.bar(palette, flat[j].signed)
                        st.caption("own scale per map", help=note)
                    else:
                        colours.legend(scales[j], palette, note, compact=True)
            for i, row in enumerate(rows):
                cols = st.columns(weights)
                cols[0].markdown(f"**{row.label}**  \ndistance {row.match.distance:.3f}")
                cols[1].image(face, width="stretch")
                for c, j in zip(cols[2:], block, strict=False):
                    k = i * len(order) + j
                    cmap = palette.cmap(flat[k].signed)
                    c.image(
                        overlay(face, values[k], scales[k], cmap=cmap, opacity=request.opacity),
                        width="stretch",
                    )
                    if per_map:
                        c.caption(range_text(scales[k]), help=legend_text(scales[k], cmap))
                    if (i, order[j]) in notes:
                        text, tip = notes[i, order[j]]
                        c.caption(text, help=tip)
    return values, scales


AGREEMENT_HEIGHT = 360
#: Colour range of the agreement heatmaps: Spearman (signed) and IoU.
SPEARMAN_RANGE = (-1.0, 1.0)
IOU_RANGE = (0.0, 1.0)
AGREEMENT_ROW = "gmx.explain.agreement_row"
AGREEMENT_TOGGLE = "gmx.explain.agreement"


def _agreement_figure(
    matrix: Any, names: Sequence[str], title: str, palette: Palette, signed: bool
) -> go.Figure:
    lo, hi = SPEARMAN_RANGE if signed else IOU_RANGE
    fig = go.Figure(
        go.Heatmap(
            z=matrix.tolist(), x=list(names), y=list(names), zmin=lo, zmax=hi,
            colorscale=plotly_colorscale(palette.cmap(signed)), texttemplate="%{z:.2f}",
            hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title=title, height=AGREEMENT_HEIGHT, margin={"l": 10, "r": 10, "t": 40, "b": 10},
        yaxis={"autorange": "reversed"},
    )  # fmt: skip
    return fig


def agreement_block(
    rows: Sequence[PanelRow], grid: Sequence[Mapping[str, AttributionMap]], order: Sequence[str],
    palette: Palette,
) -> None:  # fmt: skip
    """Expander: how far the shown methods agree on this photo (one syndrome row): Spearman rank
    correlation and top-10 % IoU of every pair of maps (:func:`gmx.explain.compare.agreement_matrix`)."""
    if len(order) < 2 or not st.toggle(
        "Do the methods agree on this photo?", key=AGREEMENT_TOGGLE,
        help="Rank correlation and top-10 % overlap of every pair of the maps above.",
    ):  # fmt: skip
        return
    with st.container(border=True):
        i = st.selectbox(
            "Syndrome", range(len(rows)), format_func=lambda r: rows[r].label, key=AGREEMENT_ROW
        )
        agreement = agreement_matrix({m: grid[i][m].values for m in order})
        names = [method_label(m) for m in agreement.methods]
        left, right = st.columns(2)
        left.plotly_chart(
            _agreement_figure(
                agreement.spearman, names, "Spearman rank correlation", palette, True
            ),
            width="stretch",
        )
        right.plotly_chart(
            _agreement_figure(
                agreement.iou, names, f"IoU of the top {agreement.top:.0%} pixels", palette, False
            ),
            width="stretch",
        )
        st.caption(
            "1 = the two maps rank the face's pixels the same way / pick the same top pixels; "
            "0 = unrelated (Spearman) or no shared top pixels (IoU). Signed maps are ranked by "
            "value, so negative evidence counts as least important. Methods that disagree "
            "cannot all be right about this photo; the Scorecard page says which ones held up "
            "on held-out faces."
        )


def cell_figure(
    face: Any,
    values: Any,
    scale: Scale,
    amap: AttributionMap,
    palette: Palette,
    opacity: float,
    height: int,
) -> go.Figure:
    """A map over the face, raw values on hover, in the palette's colours."""
    return map_figure(
        face,
        values,
        scale,
        cmap=palette.cmap(amap.signed),
        opacity=opacity,
        height=height,
        value_label=amap.display_name,
    )


def raw_figure(amap: AttributionMap, scale: Scale, palette: Palette) -> go.Figure:
    """``amap.raw`` as a heatmap with a colour bar (7x7 cells for CAMs; see :func:`raw_caption`)."""
    fig = go.Figure(
        go.Heatmap(
            z=amap.raw,
            zmin=scale.vmin,
            zmax=scale.vmax,
            colorscale=plotly_colorscale(palette.cmap(amap.signed)),
            colorbar={"thickness": 12, "title": {"text": map_units(amap.method), "side": "right"}},
            hovertemplate="row %{y} col %{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_layout(height=RAW_VIEW_HEIGHT, margin={"l": 0, "r": 0, "t": 10, "b": 0})
    return fig


def raw_caption(amap: AttributionMap) -> str:
    """What the raw panel shows: the cell map, or why it is the placed average."""
    h, w = amap.raw.shape
    if (h, w) != amap.values.shape:
        return f"native resolution {h}×{w} cells, before placement on the face"
    if get_method(amap.method).family == "layer" and any(v.flip for v in amap.variants):
        return (
            f"{h}×{w}: a flipped variant's cells sit on a mirrored grid, so no cell map is the "
            "variants' average; this is the average placed on the face"
        )
    return f"native resolution {h}×{w} pixels"


def method_label(name: str) -> str:
    """Display name of a registered method."""
    return get_method(name).display_name


# --- regions (issue 11 "Regions (RQ3)", issue 12 "HPO features linked to regions") ---------------
REGION_METHOD = "gmx.explain.region_method"
REGION_HELP = (
    "Share of the map's positive relevance inside each facial region (regions from the face mesh "
    "of this photo). The x-size column divides that share by the region's share of the image: 1 = "
    "as much as its size predicts, so a big region does not win by size alone."
)


def _syndrome_hpo(gallery: Any, row: PanelRow) -> tuple[str, ...]:
    syndrome = gallery.syndromes.get(row.match.syndrome_id)
    return tuple(syndrome.hpo) if syndrome is not None else ()


def region_table(profiles: Sequence[RegionProfile]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (one per region) and column config: per syndrome, its share and its density."""
    config: dict[str, Any] = {"Region": st.column_config.TextColumn("Region")}
    rows: list[dict[str, Any]] = [{"Region": REGION_LABELS[n]} for n in REGIONS]
    for p in profiles:
        share, dens = f"{p.row_label}: share", f"{p.row_label}: x size"
        config[share] = st.column_config.ProgressColumn(
            share, format="percent", min_value=0.0, max_value=1.0, help=REGION_HELP
        )
        config[dens] = st.column_config.NumberColumn(dens, format="%.1f", help=REGION_HELP)
        for r, name in enumerate(REGIONS):
            i = p.mass.names.index(name)
            rows[r][share] = float(p.mass.mass[i])
            rows[r][dens] = float(p.mass.density[i])
    return rows, config


def feature_lines(profile: RegionProfile) -> str:
    """The syndrome's features against the map's regions, in words (markdown)."""
    if not profile.features:
        return f"**{profile.row_label}**: no HPO features in the gallery's metadata."
    marks = [
        f"{':green[highlighted]' if f.highlighted else 'not among the top regions'}: {f.summary}"
        for f in profile.features
    ]
    return f"**{profile.row_label}**  \n" + "  \n".join(marks)


def region_block(
    face: AlignedFace, rows: Sequence[PanelRow], grid: Sequence[Mapping[str, AttributionMap]],
    order: Sequence[str], gallery: Any,
) -> list[RegionProfile]:  # fmt: skip
    """Region bars of every syndrome row for one method, and its features' regions."""
    st.subheader("Regions")
    method = st.selectbox(
        "Map summarised per region", list(order), format_func=method_label, key=REGION_METHOD
    )
    regions = region_masks(face.landmarks_template)
    profiles = [
        region_profile(
            regions,
            grid[i][method].values,
            _syndrome_hpo(gallery, row),
            row_label=row.label,
            method=method_label(method),
        )
        for i, row in enumerate(rows)
    ]
    table, config = region_table(profiles)
    st.dataframe(table, column_config=config, hide_index=True)
    st.markdown(
        f"**Features and regions** — a feature's region is *highlighted* when it is among the map's "
        f"top {TOP_REGIONS} regions by relevance per pixel."
    )
    for p in profiles:
        st.markdown(feature_lines(p) + f"  \n{p.summary}")
    return profiles


# --- per-photo checks (issue 11: the scorecard's cheap metrics on this photo, on demand) ---------
CHECKS_TOGGLE = "gmx.explain.checks"
CHECKS_LABEL = "Check the maps on this photo (deletion against a random map, completeness)"
CHECKS_HELP = (
    "Deletion: the face's pixels are blurred, most relevant first by each map, and GestaltMatcher's "
    "score is recorded after every step (the scorecard's deletion test, on this photo only). A map "
    "that points at what the score depends on makes it fall faster than a random map does. "
    "Completeness: Integrated Gradients and DeepLIFT promise that their map adds up to the score "
    "change from the baseline to the photo; the residual says how far it does not."
)


def compute_checks(
    key_prefix: tuple, models: Sequence[Any], face: Any, rows: Sequence[PanelRow],
    grid: Sequence[Mapping[str, AttributionMap]], order: Sequence[str], variants: Sequence[Any],
    params: Mapping[str, Mapping[str, Any]],
) -> PhotoChecks:  # fmt: skip
    """The checks of every shown map (kept per photo, rows, methods and parameters)."""
    key = (
        *key_prefix,
        "photo_checks",
        tuple(r.target.description for r in rows),
        tuple(order),
        json.dumps({m: params.get(m, {}) for m in order}, sort_keys=True, default=str),
    )
    maps = [{m: grid[i][m].values for m in order} for i in range(len(rows))]
    with st.spinner("Checking the maps on this photo"):
        return resources.photo_checks(
            key,
            lambda: photo_checks(
                list(models), face, [r.target for r in rows], maps, list(variants), params=params
            ),
        )


#: Below this relative residual, the percentage is written in scientific notation (DeepLIFT's
#: residual is about 1e-7: "0.0 %" would hide it).
SMALL_RESIDUAL = 1e-4


def residual_text(relative: float) -> str:
    """A relative completeness residual in words: ``0.26%`` or ``3.6e-07`` (tiny ones)."""
    if relative != relative:
        return "undefined (no score change)"
    return f"{relative:.2%}" if relative >= SMALL_RESIDUAL else f"{relative:.1e}"


def check_notes(checks: PhotoChecks) -> dict[tuple[int, str], tuple[str, str]]:
    """(row, method) -> (caption under the map, its help): the deletion difference to random and
    the completeness residual, in words."""
    out = {}
    for key, c in checks.checks.items():
        colour = "green" if c.beats_random else "red"
        word = "beats random" if c.beats_random else "not better than random"
        text = f":{colour}[{word} ({c.deletion_vs_random:+.3f})]"
        tip = (
            f"Deletion AUC on this photo {c.deletion_auc:.3f}, a random map's "
            f"{c.random_deletion_auc:.3f} (lower falls faster); score on the clean face "
            f"{c.score:.3f}."
        )
        if c.completeness is not None:
            text += f"  \ncompleteness residual {residual_text(c.completeness.relative)}"
            tip += (
                f" The map sums to {c.completeness.total:.4f}; the score changes by "
                f"{c.completeness.delta:.4f} from the baseline to the photo (first model, plain "
                "input)."
            )
        out[key] = (text, tip)
    return out


def checks_block(checks: PhotoChecks, rows: Sequence[PanelRow]) -> None:
    """The per-photo checks as a table, with what they mean."""
    table = [
        {
            "Syndrome": rows[c.row].label,
            "Method": method_label(c.method),
            "Deletion AUC": c.deletion_auc,
            "Random map's": c.random_deletion_auc,
            "Random minus map": c.deletion_vs_random,
            "Completeness residual": (
                c.completeness.relative if c.completeness is not None else None
            ),
        }
        for c in checks.checks.values()
    ]
    with st.expander("Checks on this photo", expanded=False):
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                "Deletion AUC": st.column_config.NumberColumn(format="%.3f"),
                "Random map's": st.column_config.NumberColumn(format="%.3f"),
                "Random minus map": st.column_config.NumberColumn(format="%+.3f"),
                "Completeness residual": st.column_config.NumberColumn(format="percent"),
            },
        )
        st.caption(
            f"{CHECKS_HELP} Deletion in {checks.steps} steps with the {checks.fill} fill, against "
            f"the random map of seed {checks.seed}: the scorecard's settings. One photo is one "
            "sample; the badges are the scorecard's verdicts over many faces."
        )
