"""Widgets and figures of the Similarity page (paired maps, cell correspondence, PNG export)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from gmx._typing import ImageU8
from gmx.gallery import Gallery, PatientMatch, Ranking
from gmx.similarity import (
    GalleryFace,
    PairMaps,
    cell_label,
    correspondence_map,
    gallery_face,
)
from gmx.viz import (
    DEFAULT_PALETTE,
    PALETTES,
    Palette,
    Scale,
    map_figure,
    montage,
    overlay,
    plotly_colorscale,
    to_png_bytes,
)

CELL_KEY = "gmx.similarity.cell"
CLICK_KEY = "gmx.similarity.cell_click"
_LAST_CLICK = "gmx.similarity.last_click"

SPLIT_LABELS = {
    "complete": "Each map alone sums to the similarity (minus its constant)",
    "shared": "Both maps together sum to the similarity (cell pairs split half and half)",
}

METHOD_HELP = (
    "**Exact decomposition**: the similarity split exactly into 7×7 cells of each face (plus a "
    "constant), from the model's affine head. **HiResCAM / Grad-CAM**: gradient × activation of "
    "the similarity at the last feature map. **Pair occlusion**: the similarity drop when a 16×16 "
    "patch of one face is blacked out. The high end of the colour map (legend next to each pair) "
    "supports the similarity, the low end opposes it; both faces of a pair share one colour scale."
)


def pair_scale(pair: PairMaps) -> Scale:
    """One symmetric colour scale for both maps of a pair."""
    return Scale.for_maps([pair.query, pair.gallery], signed=True)


def gallery_picture(gallery: Gallery, index: int, show_photos: bool) -> GalleryFace:
    """The picture the gallery side is drawn on (photo only when allowed)."""
    return gallery_face(gallery, index, show_photo=show_photos)


def _add_landmarks(fig: go.Figure, gface: GalleryFace) -> None:
    if gface.kind == "photo":
        return
    pts = gface.landmarks
    fig.add_trace(
        go.Scatter(
            x=pts[:, 0],
            y=pts[:, 1],
            mode="markers",
            marker={"size": 6, "color": "#00b8d4", "symbol": "x"},
            hoverinfo="skip",
            showlegend=False,
        )
    )


def pair_figures(
    query_image: ImageU8,
    gface: GalleryFace,
    pair: PairMaps,
    scale: Scale,
    *,
    opacity: float,
    height: int = 260,
    palette: Palette = PALETTES[DEFAULT_PALETTE],
) -> tuple[go.Figure, go.Figure]:
    """The query map and the gallery map, same scale, hover values in units of the similarity."""
    fq = map_figure(
        query_image, pair.query, scale, opacity=opacity, height=height, title="Query",
        value_label="similarity share", cmap=palette.signed,
    )  # fmt: skip
    fp = map_figure(
        gface.image, pair.gallery, scale, opacity=opacity, height=height,
        title=f"Gallery ({gface.kind})", value_label="similarity share", cmap=palette.signed,
    )  # fmt: skip
    _add_landmarks(fp, gface)
    return fq, fp


def _grid_shapes(fig: go.Figure, pair: PairMaps, cell: int | None, colour: str) -> None:
    """The pair's cell grid (boundaries midway between gmx's cell centres) and one framed cell."""
    grid = pair.grid
    if grid is None:
        return
    edges_y, edges_x = grid.edges()
    lo, hi = -0.5, grid.size - 0.5
    for pos in edges_x[1:-1]:
        fig.add_shape(type="line", x0=pos, x1=pos, y0=lo, y1=hi,
                      line={"color": "rgba(255,255,255,0.35)", "width": 1})  # fmt: skip
    for pos in edges_y[1:-1]:
        fig.add_shape(type="line", x0=lo, x1=hi, y0=pos, y1=pos,
                      line={"color": "rgba(255,255,255,0.35)", "width": 1})  # fmt: skip
    if cell is not None:
        r, c = divmod(cell, len(grid.centres_x))
        fig.add_shape(
            type="rect",
            x0=edges_x[c],
            x1=edges_x[c + 1],
            y0=edges_y[r],
            y1=edges_y[r + 1],
            line={"color": colour, "width": 3},
        )


def cell_picker_figure(
    query_image: ImageU8,
    pair: PairMaps,
    scale: Scale,
    cell: int,
    *,
    opacity: float,
    palette: Palette = PALETTES[DEFAULT_PALETTE],
) -> go.Figure:
    """The query map with its 7x7 grid; a click on a cell selects it."""
    fig = map_figure(query_image, pair.query, scale, opacity=opacity, height=340,
                     title="Query: click a cell", value_label="similarity share",
                     cmap=palette.signed)  # fmt: skip
    grid = pair.grid
    if grid is None:
        raise ValueError(f"{pair.method} maps have no cell grid")
    xs, ys = np.meshgrid(grid.centres_x, grid.centres_y)
    raw = np.asarray(pair.query_raw)
    text = [
        cell_label(g) + (f": {raw.ravel()[g]:+.4g}" if raw.shape == (7, 7) else "")
        for g in range(49)
    ]
    fig.add_trace(
        go.Scatter(
            x=xs.ravel(),
            y=ys.ravel(),
            mode="markers",
            marker={"size": 18, "color": "rgba(0,0,0,0)"},
            text=text,
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        )
    )
    _grid_shapes(fig, pair, cell, "#ffb000")
    fig.update_layout(clickmode="event+select", dragmode=False)
    return fig


def correspondence_figure(
    gface: GalleryFace,
    pair: PairMaps,
    cell: int,
    *,
    opacity: float,
    palette: Palette = PALETTES[DEFAULT_PALETTE],
) -> go.Figure:
    """Where on the gallery face the selected query cell matches (gmx places each variant's row)."""
    corr = correspondence_map(pair, cell)
    scale = Scale.for_maps([corr.values], signed=True, percentile=100)
    fig = map_figure(
        gface.image,
        corr.values,
        scale,
        opacity=opacity,
        cmap=palette.signed,
        height=340,
        title=f"Gallery: matches of query {cell_label(cell)}",
        value_label="cell-pair term per pixel",
    )
    _add_landmarks(fig, gface)
    assert pair.grid is not None  # correspondence_map raised otherwise
    _grid_shapes(fig, pair, pair.grid.cell_at(*corr.best_xy), "#00e676")
    return fig


def correspondence_heatmap(
    pair: PairMaps, palette: Palette = PALETTES[DEFAULT_PALETTE]
) -> go.Figure:
    """The full 49x49 cell-to-cell matrix (query cells as rows, gallery cells as columns)."""
    if pair.decomposition is None:
        raise ValueError(f"{pair.method} maps have no cell correspondence")
    k = pair.decomposition.correspondence
    m = float(np.abs(k).max()) or 1.0
    labels = [cell_label(g) for g in range(49)]
    fig = go.Figure(
        go.Heatmap(
            z=k,
            x=labels,
            y=labels,
            zmin=-m,
            zmax=m,
            colorscale=plotly_colorscale(palette.signed),
            hovertemplate="query %{y} ↔ gallery %{x}<br>%{z:.3g}<extra></extra>",
        )
    )
    fig.update_layout(
        height=520,
        margin={"l": 0, "r": 0, "t": 10, "b": 0},
        xaxis={"title": "gallery cell", "showticklabels": False},
        yaxis={"title": "query cell", "showticklabels": False, "autorange": "reversed"},
    )
    return fig


def selected_cell(pair: PairMaps) -> int:
    """The query cell chosen by a click on the picker figure or in the select box.

    Default: the query cell that supports the similarity most. Call before drawing the figure and
    the select box (both keyed), once per run.
    """
    event: Any = st.session_state.get(CLICK_KEY)
    clicked = None
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and pair.grid is not None:
        p = points[0]
        clicked = pair.grid.cell_at(p["x"], p["y"])
    if clicked is not None and clicked != st.session_state.get(_LAST_CLICK):
        st.session_state[CELL_KEY] = clicked
        st.session_state[_LAST_CLICK] = clicked
    if CELL_KEY not in st.session_state:
        st.session_state[CELL_KEY] = int(np.argmax(np.asarray(pair.query_raw)))
    return int(st.selectbox("Query cell", range(49), format_func=cell_label, key=CELL_KEY))


def variant_rows(ranking: Ranking, pair: PairMaps) -> list[dict[str, Any]]:
    """Per model/TTA variant: the ranking's distance and, for the exact method, the decomposed cosine."""
    i = pair.image_index
    d = pair.decomposition
    rows = []
    for v, variant in enumerate(ranking.variants):
        row: dict[str, Any] = {
            "variant": variant.label,
            "distance": float(ranking.per_variant_distances[v, i]),
            "in mean": bool(ranking.variant_mask[v]),
        }
        if d is not None and variant in d.variants:
            j = d.variants.index(variant)
            row["similarity (cells + constant)"] = float(d.per_variant_cosine[j])
        rows.append(row)
    return rows


def patient_caption(patient: PatientMatch, pair: PairMaps) -> str:
    """What is shown about a gallery patient: ids, syndrome, distance and the pair's numbers."""
    text = (
        f"**#{patient.rank} patient {patient.subject_id}** (image {patient.image_id})  \n"
        f"{patient.syndrome_name} · distance {patient.distance:.3f} · similarity {pair.score:.3f}"
    )
    if pair.split == "shared":
        text += f"  \nshared constant (bias · bias) {pair.query_constant:+.3f}"
    elif pair.query_constant is not None:
        text += (
            f"  \nconstant: query {pair.query_constant:+.3f}, gallery {pair.gallery_constant:+.3f}"
        )
    return text + f"  \n{pair.display_name} · {pair.elapsed_s * 1000:.0f} ms"


def pair_png(
    query_image: ImageU8,
    gface: GalleryFace,
    pair: PairMaps,
    *,
    opacity: float,
    side: int = 224,
    palette: Palette = PALETTES[DEFAULT_PALETTE],
) -> bytes:
    """PNG of the pair: query, query map, gallery map, gallery picture (one shared scale)."""
    scale = pair_scale(pair)

    def big(img: ImageU8) -> ImageU8:
        return cv2.resize(np.asarray(img), (side, side), interpolation=cv2.INTER_LINEAR)

    panels = [
        big(query_image),
        big(overlay(query_image, pair.query, scale, opacity=opacity, cmap=palette.signed)),
        big(overlay(gface.image, pair.gallery, scale, opacity=opacity, cmap=palette.signed)),
        big(gface.image),
    ]
    return to_png_bytes(montage(panels, columns=4))


__all__ = [
    "CELL_KEY",
    "CLICK_KEY",
    "METHOD_HELP",
    "SPLIT_LABELS",
    "cell_picker_figure",
    "correspondence_figure",
    "correspondence_heatmap",
    "gallery_picture",
    "pair_figures",
    "pair_png",
    "pair_scale",
    "patient_caption",
    "selected_cell",
    "variant_rows",
]
