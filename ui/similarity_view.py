"""Widgets and figures of the Similarity page (paired maps, cell correspondence, PNG export)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from gmx._typing import ImageU8
from gmx.constants import FEATURE_GRID
from gmx.gallery import Gallery, PatientMatch, Ranking
from gmx.metrics.pairs import PairFaithfulness, pair_faithfulness
from gmx.similarity import (
    PAIR_METHODS,
    SPLITS,
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
from ui import colours, resources, state
from ui.tables import DISTANCE_HELP

CELL_KEY = "gmx.similarity.cell"
CLICK_KEY = "gmx.similarity.cell_click"
_LAST_CLICK = "gmx.similarity.last_click"

SPLIT_LABELS = {
    "complete": "Each map alone sums to the similarity (minus its constant)",
    "shared": "Both maps together sum to the similarity (cell pairs split half and half)",
}

#: Slider ranges of the controls: (min, max, default[, step]).
N_PATIENTS = (1, 10, 3)
WINDOW = (8, 32, 16, 4)
STRIDE = (4, 32, 16, 4)
DEFAULT_OPACITY = 0.6
#: Layout of a pair row: query map, gallery map, text (the text column a little wider).
PAIR_COLUMNS = (1.0, 1.0, 1.1)
#: Figure heights (px).
PAIR_HEIGHT = 260
PICKER_HEIGHT = 340
HEATMAP_HEIGHT = 520
#: Marks drawn on the figures.
LANDMARK_MARKER = {"size": 6, "color": "#00b8d4", "symbol": "x"}
CELL_MARKER = {"size": 18, "color": "rgba(0,0,0,0)"}
GRID_LINE = {"color": "rgba(255,255,255,0.35)", "width": 1}
PICKED_COLOUR = "#ffb000"
MATCH_COLOUR = "#00e676"
FRAME_WIDTH = 3
#: Side (px) of each panel of the pair's PNG export (the 112 px faces enlarged twice).
PNG_SIDE = 224

_CELLS = f"{FEATURE_GRID}×{FEATURE_GRID}"
METHOD_HELP = (
    f"**Exact decomposition**: the similarity split exactly into {_CELLS} cells of each face (plus "
    "a constant), from the model's affine head. **HiResCAM / Grad-CAM**: gradient × activation of "
    "the similarity at the last feature map. **Pair occlusion**: the similarity drop when a "
    f"{WINDOW[2]}×{WINDOW[2]} patch (the default window) of one face is blacked out. The high end "
    "of the colour map (legend next to each pair) supports the similarity, the low end opposes it; "
    "both faces of a pair share one colour scale."
)
#: The numbers next to each pair, in words.
NUMBERS_HELP = (
    "Distance: cosine distance of the two face encodings (0 = the same, about 1 = unrelated); "
    "similarity: 1 − distance, the number the maps split up. Neither is a probability."
)
VARIANT_COLUMNS = {
    "distance": st.column_config.NumberColumn("distance", format="%.4f", help=DISTANCE_HELP),
    "similarity (cells + constant)": st.column_config.NumberColumn(
        "similarity (cells + constant)",
        format="%.4f",
        help="1 − distance of this variant, as the sum of its exact cell terms and constant",
    ),
}


@dataclass(frozen=True)
class SimilarityRequest:
    """What the Similarity page's sidebar asks for.

    Attributes:
        n_patients: nearest patients of the chosen syndrome to pair with the photo.
        method: key of :data:`gmx.similarity.PAIR_METHODS`.
        split: split convention of the exact maps (:data:`gmx.similarity.SPLITS`).
        window, stride: occlusion window and stride (pixels).
        opacity: overlay opacity in ``[0, 1]``.
        palette: the app's colour-map choice (:data:`gmx.viz.PALETTES`).
    """

    n_patients: int = N_PATIENTS[2]
    method: str = "exact"
    split: str = SPLITS[0]
    window: int = WINDOW[2]
    stride: int = STRIDE[2]
    opacity: float = DEFAULT_OPACITY
    palette: Palette = PALETTES[DEFAULT_PALETTE]

    def __post_init__(self) -> None:
        if self.method not in PAIR_METHODS:
            raise ValueError(f"method must be one of {list(PAIR_METHODS)}, got {self.method!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.n_patients < 1 or self.window < 1 or self.stride < 1:
            raise ValueError("n_patients, window and stride must be >= 1")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {self.opacity}")

    @property
    def params(self) -> tuple[tuple[str, int], ...]:
        """The method's parameters (a hashable cache key): occlusion's window and stride."""
        return (
            (("window", self.window), ("stride", self.stride)) if self.method == "occlusion" else ()
        )

    def with_method(self, method: str) -> SimilarityRequest:
        """The same request with another method (e.g. ``exact`` when the chosen one is unavailable)."""
        return replace(self, method=method)


def similarity_controls() -> SimilarityRequest:
    """The sidebar of the Similarity page (every setting kept across pages)."""
    with st.sidebar:
        st.header("Pairs")
        lo, hi, default = N_PATIENTS
        n_patients = st.slider(
            "Nearest patients per syndrome", lo, hi, key=state.keep("similarity.patients", default)
        )
        method = st.segmented_control(
            "Method", list(PAIR_METHODS), format_func=PAIR_METHODS.__getitem__,
            key=state.keep("similarity.method", "exact"),
        )  # fmt: skip
        split = st.radio(
            "Exact maps: split", SPLITS, format_func=SPLIT_LABELS.__getitem__,
            key=state.keep("similarity.split", SPLITS[0]),
        )  # fmt: skip
        with st.expander("Occlusion window"):
            lo, hi, default, step = WINDOW
            window = st.slider(
                "Window (px)", lo, hi, step=step, key=state.keep("similarity.window", default)
            )
            lo, hi, default, step = STRIDE
            stride = st.slider(
                "Stride (px)", lo, hi, step=step, key=state.keep("similarity.stride", default)
            )
        opacity = st.slider(
            "Opacity", 0.0, 1.0, key=state.keep("similarity.opacity", DEFAULT_OPACITY)
        )
        palette = colours.palette_control()
    return SimilarityRequest(
        int(n_patients), method or "exact", split, int(window), int(stride), float(opacity),
        palette,
    )  # fmt: skip


def syndrome_choice(ranking: Ranking, top_k: int) -> str:
    """The syndrome select box (the current top-k, with distances), kept across pages."""
    ids = [m.syndrome_id for m in ranking.syndromes[:top_k]]

    def label(s: str) -> str:
        m = ranking.syndrome(s)
        return f"#{m.rank} {m.name} (distance {m.distance:.3f})"

    return st.selectbox(
        "Syndrome (current top-k)", ids, format_func=label,
        key=state.keep_choice("similarity.syndrome", ids), help=DISTANCE_HELP,
    )  # fmt: skip


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
            marker=LANDMARK_MARKER,
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
    height: int = PAIR_HEIGHT,
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
    shapes = [{"type": "line", "x0": p, "x1": p, "y0": lo, "y1": hi, "line": GRID_LINE}
              for p in edges_x[1:-1]]  # fmt: skip
    shapes += [{"type": "line", "x0": lo, "x1": hi, "y0": p, "y1": p, "line": GRID_LINE}
               for p in edges_y[1:-1]]  # fmt: skip
    if cell is not None:
        r, c = divmod(cell, len(grid.centres_x))
        shapes.append(
            {
                "type": "rect",
                "x0": edges_x[c],
                "x1": edges_x[c + 1],
                "y0": edges_y[r],
                "y1": edges_y[r + 1],
                "line": {"color": colour, "width": FRAME_WIDTH},
            }
        )
    # One layout update: fig.add_shape per shape re-validates the whole growing list (0.15 s).
    fig.update_layout(shapes=[*fig.layout.shapes, *shapes])


def cell_picker_figure(
    query_image: ImageU8,
    pair: PairMaps,
    scale: Scale,
    cell: int,
    *,
    opacity: float,
    palette: Palette = PALETTES[DEFAULT_PALETTE],
) -> go.Figure:
    """The query map with its cell grid; a click on a cell selects it."""
    fig = map_figure(query_image, pair.query, scale, opacity=opacity, height=PICKER_HEIGHT,
                     title="Query: click a cell", value_label="similarity share",
                     cmap=palette.signed)  # fmt: skip
    grid = pair.grid
    if grid is None:
        raise ValueError(f"{pair.method} maps have no cell grid")
    centres = [grid.centre(g) for g in range(n_cells(pair))]
    values = pair.query_raw.ravel() if pair.query_raw.shape == grid.shape else None
    text = [
        cell_label(g, grid.shape) + ("" if values is None else f": {values[g]:+.4g}")
        for g in range(n_cells(pair))
    ]
    fig.add_trace(
        go.Scatter(
            x=[x for x, _ in centres],
            y=[y for _, y in centres],
            mode="markers",
            marker=CELL_MARKER,
            text=text,
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        )
    )
    _grid_shapes(fig, pair, cell, PICKED_COLOUR)
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
    assert pair.grid is not None  # correspondence_map raised otherwise
    scale = Scale.for_maps([corr.values], signed=True, percentile=100)
    fig = map_figure(
        gface.image,
        corr.values,
        scale,
        opacity=opacity,
        cmap=palette.signed,
        height=PICKER_HEIGHT,
        title=f"Gallery: matches of query {cell_label(cell, pair.grid.shape)}",
        value_label="cell-pair term per pixel",
    )
    _add_landmarks(fig, gface)
    _grid_shapes(fig, pair, pair.grid.cell_at(*corr.best_xy), MATCH_COLOUR)
    return fig


def correspondence_heatmap(
    pair: PairMaps, palette: Palette = PALETTES[DEFAULT_PALETTE]
) -> go.Figure:
    """The full cell-to-cell matrix (query cells as rows, gallery cells as columns)."""
    if pair.decomposition is None or pair.grid is None:
        raise ValueError(f"{pair.method} maps have no cell correspondence")
    k = pair.decomposition.correspondence
    m = Scale.for_maps([k], signed=True, percentile=100).vmax
    labels = [cell_label(g, pair.grid.shape) for g in range(len(k))]
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
        height=HEATMAP_HEIGHT,
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
    if pair.grid is None:
        raise ValueError(f"{pair.method} maps have no cell grid")
    shape = pair.grid.shape
    cells = range(shape[0] * shape[1])
    if st.session_state.get(CELL_KEY) not in cells:
        st.session_state[CELL_KEY] = pair.strongest_query_cell() or 0
    return int(
        st.selectbox("Query cell", cells, format_func=lambda g: cell_label(g, shape), key=CELL_KEY)
    )


def n_cells(pair: PairMaps) -> int:
    """Number of cells of the pair's grid (0 for pixel maps)."""
    return 0 if pair.grid is None else pair.grid.shape[0] * pair.grid.shape[1]


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
    side: int = PNG_SIDE,
    palette: Palette = PALETTES[DEFAULT_PALETTE],
) -> bytes:
    """PNG of the pair: query, query map, gallery map, gallery picture (one shared scale)."""
    scale = pair_scale(pair)
    panels = [
        query_image,
        overlay(query_image, pair.query, scale, opacity=opacity, cmap=palette.signed),
        overlay(gface.image, pair.gallery, scale, opacity=opacity, cmap=palette.signed),
        gface.image,
    ]
    return to_png_bytes(montage(panels, columns=len(panels), side=side))


# --- pair-map checks (issue 11, thesis 6.4.3: the scorecard's deletion/insertion on a pair) ------
CHECKS_TOGGLE = "gmx.similarity.checks"
CHECKS_LABEL = "Check the maps (deletion and insertion on both faces against a random map)"
CHECKS_HELP = (
    "Deletion and insertion on the pair's similarity, on each face: the query's pixels are blurred "
    "(deletion) or restored (insertion) most relevant first by its map and the similarity to the "
    "gallery image recorded; then the same with the gallery photo against the query. A random map "
    "on the same face is the reference: a faithful map makes the similarity fall faster at "
    "deletion and rise faster at insertion than random does (differences above 0)."
)


def compute_checks(
    key: tuple, explainer: Any, face: ImageU8, pairs: tuple[PairMaps, ...]
) -> tuple[PairFaithfulness, ...]:
    """:func:`gmx.metrics.pairs.pair_faithfulness` of the shown pairs (both faces when the gallery
    holds its photos, else the query's only), kept in the photo store under ``key`` (it starts
    with the photo's hash)."""
    gallery = explainer.gallery
    sides = ("query", "gallery") if gallery.photos is not None else ("query",)
    with st.spinner("Checking the pair maps"):
        return resources.photo_checks(
            (*key, "pair_checks", sides),
            lambda: pair_faithfulness(explainer.ensemble, gallery, face, pairs, sides=sides),
        )


def _word(value: float) -> str:
    return f":green[{value:+.3f}]" if value > 0 else f":red[{value:+.3f}]"


def check_caption(results: tuple[PairFaithfulness, ...], image_index: int) -> str:
    """One pair's checks in one line per face (markdown): the differences to random."""
    lines = [
        f"{r.side} face vs random: deletion {_word(r.deletion_vs_random)}, insertion "
        f"{_word(r.insertion_vs_random)}"
        for r in results
        if r.image_index == image_index
    ]
    return "  \n".join(lines)


def checks_table(
    results: tuple[PairFaithfulness, ...], patients: list[PatientMatch]
) -> list[dict[str, Any]]:
    """Every check as a row: patient, face, the AUCs and their differences to random."""
    by_image = {p.image_index: p for p in patients}
    return [
        {
            "patient": f"#{by_image[r.image_index].rank} {by_image[r.image_index].subject_id}"
            if r.image_index in by_image
            else str(r.image_index),
            "face": r.side,
            "method": r.method,
            "deletion AUC": r.deletion.auc,
            "random deletion AUC": r.random_deletion.auc,
            "deletion vs random": r.deletion_vs_random,
            "insertion AUC": r.insertion.auc,
            "random insertion AUC": r.random_insertion.auc,
            "insertion vs random": r.insertion_vs_random,
        }
        for r in results
    ]


__all__ = [
    "CELL_KEY",
    "CHECKS_HELP",
    "CHECKS_LABEL",
    "CHECKS_TOGGLE",
    "CLICK_KEY",
    "METHOD_HELP",
    "NUMBERS_HELP",
    "PAIR_COLUMNS",
    "SPLIT_LABELS",
    "VARIANT_COLUMNS",
    "SimilarityRequest",
    "cell_picker_figure",
    "check_caption",
    "checks_table",
    "compute_checks",
    "correspondence_figure",
    "correspondence_heatmap",
    "gallery_picture",
    "n_cells",
    "pair_figures",
    "pair_png",
    "pair_scale",
    "patient_caption",
    "selected_cell",
    "similarity_controls",
    "syndrome_choice",
    "variant_rows",
]
