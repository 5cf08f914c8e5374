"""Widgets of the Explain page: computing maps with progress and cancellation, drawing the grid."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from gmx.explain import AttributionMap, explain_targets, get_method
from gmx.panel import PanelRow
from gmx.viz import Scale, map_figure, plotly_colorscale
from ui import resources

#: Methods that take seconds (batched forward passes): computed after the fast ones, with progress.
SLOW_METHODS = ("occlusion", "integrated_gradients")


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
) -> list[dict[str, AttributionMap]]:
    """Maps of ``methods`` for every row, from the shared store where already computed.

    Missing maps are computed in one engine call (shared passes); with ``progress_label`` a progress
    bar is shown, and a rerun (e.g. the Cancel button) stops the computation between batches.
    """
    store = resources.map_store()
    out: list[dict[str, AttributionMap]] = [{} for _ in rows]
    missing_rows: dict[int, list[str]] = {}
    for i, row in enumerate(rows):
        for m in methods:
            key = (
                *key_prefix,
                row.target.description,
                m,
                json.dumps(params.get(m, {}), sort_keys=True),
            )
            hit = store.get(key)
            if hit is not None:
                out[i][m] = hit  # type: ignore[assignment]
            else:
                missing_rows.setdefault(i, []).append(m)
    if not missing_rows:
        return out
    todo_methods = sorted({m for ms in missing_rows.values() for m in ms}, key=list(methods).index)
    todo_rows = sorted(missing_rows)
    bar = st.progress(0.0, text=progress_label) if progress_label else None

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.progress(min(1.0, done / max(total, 1)), text=f"{progress_label} ({done}/{total})")

    results = explain_targets(
        list(models),
        face,
        [rows[i].target for i in todo_rows],
        list(variants),
        methods=todo_methods,
        params={m: params[m] for m in todo_methods if m in params},
        progress=progress,
    )
    for i, maps in zip(todo_rows, results, strict=True):
        for m, amap in maps.items():
            key = (
                *key_prefix,
                rows[i].target.description,
                m,
                json.dumps(params.get(m, {}), sort_keys=True),
            )
            resources.map_store().put(key, amap)
            out[i][m] = amap
    if bar is not None:
        bar.empty()
    return out


def cell_figure(
    face: Any,
    values: Any,
    scale: Scale,
    amap: AttributionMap,
    cmap: str,
    opacity: float,
    height: int,
) -> go.Figure:
    """One small map over the face, raw values on hover."""
    return map_figure(
        face,
        values,
        scale,
        cmap=cmap if amap.signed else "inferno",
        opacity=opacity,
        height=height,
        value_label=amap.display_name,
    )


def raw_figure(amap: AttributionMap, scale: Scale) -> go.Figure:
    """``amap.raw`` as a heatmap (7x7 cells for CAMs; see :func:`raw_caption`)."""
    fig = go.Figure(
        go.Heatmap(
            z=amap.raw,
            zmin=scale.vmin,
            zmax=scale.vmax,
            colorscale=plotly_colorscale("PiYG" if amap.signed else "inferno"),
            hovertemplate="row %{y} col %{x}: %{z:.4g}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_layout(height=320, margin={"l": 0, "r": 0, "t": 10, "b": 0})
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
