"""The Scorecard page's pieces and the Explain badges' lookup: which scorecard file belongs to the
active models, the controls, the leaderboard table and the plotly curves. The numbers come from
:mod:`gmx.metrics.scorecard`; nothing is computed here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from gmx.config import DEMO_DIR
from gmx.explain import get_method
from gmx.explain.compare import SplitAgreement
from gmx.metrics.pairs import PAIR_METRICS, PAIR_PREFIX, pair_table
from gmx.metrics.scorecard import (
    DEMO_SCORECARD_NAME,
    LEADERBOARD_METRICS,
    METRIC_INFO,
    NULL_METHOD,
    SANITY_MAX_SPEARMAN,
    Scorecard,
    find_scorecard,
    format_summary,
    leaderboard,
    scorecard_agreement,
    scorecard_paths,
)
from gmx.regions import (
    REGION_LABELS,
    REGIONS,
    FaceRegions,
    RegionProfile,
    RegionProfiles,
    region_profiles_path,
)
from gmx.similarity import PAIR_METHODS
from ui import resources, state

DEMO_SCORECARD = DEMO_DIR / DEMO_SCORECARD_NAME
#: Methods whose curves are drawn by default (where the scorecard has them).
DEFAULT_CURVE_METHODS: tuple[str, ...] = ("saliency", "gradcam", "deeplift", "occlusion", "random")
CURVE_HEIGHT = 340
AGREEMENT_HEIGHT = 460
#: Heatmap colour ranges and scales: Spearman is signed (diverging), IoU is not.
SPEARMAN_RANGE = (-1.0, 1.0)
IOU_RANGE = (0.0, 1.0)
SPEARMAN_COLORSCALE = "RdBu_r"
IOU_COLORSCALE = "Viridis"

HOW_TO_READ = f"""
**What this page answers: which attribution maps can be trusted for this model.** Every method
explained the same held-out faces (never seen in training, not in the gallery) against their own
syndrome, and each map was then tested. Brackets are 95 % bootstrap intervals over the faces.

* **Passes sanity** — when the model's learned weights are replaced by random ones, layer by
  layer from the top, the map changes early (its Spearman correlation with the original map,
  averaged over the steps, stays below {SANITY_MAX_SPEARMAN} over the whole interval). A map that
  stays the same shows the photo (edges, contrast), not what the model learned: do not read it
  as an explanation.
* **Faithful** — deleting the map's most important pixels lowers GestaltMatcher's score, and
  inserting them raises it, faster than for a random map (both differences above 0). A faithful
  map points at what the score really depends on.
* **Localises** — on the synthetic demo the changed facial region of each syndrome is known. The
  map ranks that region above the regions of the other syndromes (AUROC difference above 0).

A method can be faithful without localising (the model may use other cues than the designed
region) and can localise without being faithful. None of this says the model is right about a
patient; it says how far each picture of the model's reasoning can be believed. The synthetic
demo's figures say nothing about real patients or real GestaltMatcher weights: run
`gmx scorecard` on them.
"""


@dataclass(frozen=True)
class ScorecardRequest:
    """What the page shows: the methods whose curves are drawn."""

    curve_methods: tuple[str, ...]


def candidates() -> list[Path]:
    """Scorecard files the app looks at (:func:`gmx.metrics.scorecard.scorecard_paths`)."""
    return scorecard_paths()


def current(model_fingerprint: str) -> Scorecard | None:
    """The scorecard made with the active models (their ensemble fingerprint, which the gallery
    records as ``model_fingerprint``); ``None``: none."""
    path = find_scorecard(model_fingerprint, candidates())
    if path is None:
        return None
    return resources.scorecard(str(path), path.stat().st_mtime)


def method_name(method: str) -> str:
    """Display name (the registry's), or the name itself for a method no longer registered."""
    try:
        return get_method(method).display_name
    except ValueError:
        return method


def scorecard_controls(card: Scorecard) -> ScorecardRequest:
    """Sidebar: the methods whose curves are drawn."""
    default = [m for m in DEFAULT_CURVE_METHODS if m in card.methods]
    chosen = st.sidebar.multiselect(
        "Curves of",
        list(card.methods),
        format_func=method_name,
        key=state.keep("scorecard.curves", default),
    )
    return ScorecardRequest(tuple(chosen))


def leaderboard_rows(card: Scorecard) -> list[dict[str, str]]:
    """The leaderboard with display names and readable column titles."""
    titles = {m: m.replace("_", " ") for m in LEADERBOARD_METRICS}
    rows = leaderboard(card, names={m: method_name(m) for m in card.methods})
    return [{titles.get(k, k): v for k, v in row.items()} for row in rows]


def column_help() -> str:
    """What each leaderboard column means, one line each."""
    return "\n".join(
        f"* **{m.replace('_', ' ')}** ({'higher' if METRIC_INFO[m][0] == '+' else 'lower'} "
        f"is better): {METRIC_INFO[m][1]}"
        if METRIC_INFO[m][0]
        else f"* **{m.replace('_', ' ')}**: {METRIC_INFO[m][1]}"
        for m in LEADERBOARD_METRICS
    )


def curve_figure(card: Scorecard, kind: str, methods: Sequence[str]) -> go.Figure | None:
    """Mean ``kind`` curves (``"deletion"``, ``"insertion"``, ``"mprt"``) of ``methods``
    (``None`` when none is stored)."""
    fig = go.Figure()
    for m in methods:
        ys = card.curves.get(m, {}).get(kind)
        if not ys:
            continue
        xs = list(card.mprt_stages) if kind == "mprt" else list(card.fractions)
        dash = "dot" if m == NULL_METHOD else None
        fig.add_trace(
            go.Scatter(x=xs, y=list(ys), mode="lines+markers", name=method_name(m),
                       line={"dash": dash})
        )  # fmt: skip
    if not fig.data:
        return None
    x_title = "stages randomised (top down)" if kind == "mprt" else "fraction of pixels"
    y_title = "Spearman to the original map" if kind == "mprt" else "GestaltMatcher score"
    fig.update_layout(
        height=CURVE_HEIGHT, xaxis_title=x_title, yaxis_title=y_title,
        margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )  # fmt: skip
    return fig


def agreement_figures(card: Scorecard) -> tuple[go.Figure, go.Figure] | None:
    """Heatmaps of the split-averaged method agreement (Spearman, top-10 % IoU), ``None`` when
    the scorecard does not carry it."""
    got: SplitAgreement | None = scorecard_agreement(card)
    if got is None:
        return None
    names = [method_name(m) for m in got.methods]
    out = []
    for matrix, (lo, hi), scale, title in (
        (got.spearman, SPEARMAN_RANGE, SPEARMAN_COLORSCALE, "Spearman rank correlation"),
        (got.iou, IOU_RANGE, IOU_COLORSCALE, f"IoU of the top {got.top:.0%} pixels"),
    ):
        fig = go.Figure(
            go.Heatmap(
                z=[[None if v != v else v for v in row] for row in matrix.tolist()],
                x=names, y=names, zmin=lo, zmax=hi, colorscale=scale, texttemplate="%{z:.2f}",
                hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>",
            )
        )  # fmt: skip
        fig.update_layout(
            title=title, height=AGREEMENT_HEIGHT, yaxis={"autorange": "reversed"},
            margin={"l": 10, "r": 10, "t": 40, "b": 10},
        )  # fmt: skip
        out.append(fig)
    return out[0], out[1]


def agreement_caption(card: Scorecard) -> str:
    """What the agreement heatmaps average."""
    got = scorecard_agreement(card)
    if got is None:
        return ""
    return (
        f"Every pair of methods compared on the same face, averaged over the scorecard's {got.n} "
        "faces: rank correlation of all pixels (1 = the same order, 0 = unrelated, -1 = "
        f"reversed) and the overlap of their top {got.top:.0%} pixels. High agreement is not "
        "correctness: read it beside the verdicts (the per-photo view is on the Explain page)."
    )


def provenance(card: Scorecard) -> str:
    """One line: what was scored, with which settings fingerprint."""
    s = card.settings
    return (
        f"{card.n_images} held-out faces ({card.n_mprt_images} with the randomisation test), "
        f"{len(card.methods)} methods, deletion/insertion with {s.get('steps')} steps "
        f"({s.get('fill')} fill), {s.get('n_boot')} bootstrap replicates (seed {s.get('seed')}); "
        f"model {card.model_fingerprint[:12]}, gallery {card.gallery!r}, "
        f"settings fingerprint {card.fingerprint[:12]}."
    )


# --- pair maps (the Similarity page's methods) in the scorecard --------------------------------
PAIR_CAPTION = (
    "The Similarity page's pair maps scored the same way, on the pair's similarity: each held-out "
    "face paired with the nearest gallery image of its own syndrome, deletion and insertion on "
    "the query face and on the gallery face, against a random map (above 0 = better than random)."
)


def pair_rows(card: Scorecard) -> list[dict[str, str]] | None:
    """The pair rows of the scorecard (``gmx scorecard-pairs``) as a table, ``None``: none."""
    got = pair_table(card)
    if got is None:
        return None
    rows = []
    for m in got.methods:
        metrics = got.table[PAIR_PREFIX + m]
        for side in got.sides:
            row = {"pair method": PAIR_METHODS.get(m, m), "face": side}
            for metric in PAIR_METRICS:
                cell = metrics.get(f"{metric}_{side}")
                row[metric.replace("_", " ")] = "" if cell is None else format_summary(cell)
            rows.append(row)
    return rows


def pair_caption(card: Scorecard) -> str:
    got = pair_table(card)
    n = 0 if got is None else got.n_pairs
    return f"{PAIR_CAPTION} {n} pair(s); brackets: 95 % bootstrap intervals over the pairs."


# --- region profiles per syndrome (issue 11, RQ3) -------------------------------------------------
#: Height of the region bar charts (pixels).
REGION_CHART_HEIGHT = 420
#: Margins of the region charts: room on top for the title above the legend.
REGION_CHART_MARGIN = {"l": 10, "r": 10, "t": 90, "b": 10}
REGIONS_CAPTION = (
    "One held-out example photo per syndrome, explained against its own syndrome's score. Bars: "
    "how much of each map's positive relevance lies in a region, divided by the region's share "
    "of the face (1 = as much as its size predicts). Score: how much GestaltMatcher's score drops "
    "when only that region is blurred (and, where computed, the region's exact Shapley value). "
    "On the synthetic demo the regions the generator changed are known (marked *true*). One face "
    "per syndrome: a picture, not a verdict."
)


#: The overview keeps the syndrome column in view (pinned, medium width) while the wide table
#: scrolls sideways; the full names are in the syndrome select box below it.
REGIONS_OVERVIEW_COLUMNS = {
    "syndrome": st.column_config.TextColumn("syndrome", width="medium", pinned=True),
    "true regions": st.column_config.TextColumn("true regions", width="medium"),
}
REGION_SYNDROME = "gmx.scorecard.region_syndrome"
REGION_METHOD = "gmx.scorecard.region_method"


def features_text(face: FaceRegions, profile: RegionProfile) -> str:
    """The syndrome's HPO features against the chosen map's regions, with the photo (markdown)."""
    from ui.explain_view import feature_lines

    return (
        f"{feature_lines(profile)}  \n{profile.summary}  \n"
        f"*Example photo {face.photo} (the syndrome ranked #{face.rank}); score "
        f"{face.full:.3f}, {face.empty:.3f} with every region blurred.*"
    )


def region_profiles(model_fingerprint: str) -> RegionProfiles | None:
    """The stored region profiles made with the active models (``None``: none)."""
    path = region_profiles_path(model_fingerprint)
    if path is None:
        return None
    return resources.region_profiles(str(path), path.stat().st_mtime)


def _top(order: Sequence[str], truth: Sequence[str]) -> str:
    if not order:
        return ""
    head = REGION_LABELS[order[0]]
    return f"{head} (true)" if order[0] in truth else head


def regions_overview(profiles: RegionProfiles, names: dict[str, str]) -> list[dict[str, str]]:
    """One row per syndrome: its true regions and each map's / the score's top region."""
    rows = []
    for sid, f in profiles.faces.items():
        row = {
            "syndrome": names.get(sid, sid),
            "true regions": ", ".join(REGION_LABELS[r] for r in f.true_regions),
        }
        for m in profiles.methods:  # a map not stored for this face: empty, not "None"
            mass = f.methods.get(m)
            row[method_name(m)] = (
                "" if mass is None else _top(mass.ranking("density"), f.true_regions)
            )
        row["occlusion"] = _top(f.score_ranking("occlusion"), f.true_regions)
        row["Shapley"] = _top(f.score_ranking("shapley"), f.true_regions)
        rows.append(row)
    return rows


def region_figure(face: FaceRegions) -> go.Figure:
    """Density of each method's map per region (grouped bars), true regions marked."""
    labels = [REGION_LABELS[r] + (" (true)" if r in face.true_regions else "") for r in REGIONS]
    fig = go.Figure()
    for m, mass in face.methods.items():
        fig.add_trace(
            go.Bar(x=labels, y=[None if v != v else v for v in mass.density.tolist()],
                   name=method_name(m))
        )  # fmt: skip
    fig.update_layout(
        title="Each map per region", showlegend=True,
        height=REGION_CHART_HEIGHT, barmode="group", yaxis_title="share / size (1 = by size)",
        margin=REGION_CHART_MARGIN,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )  # fmt: skip
    return fig


def score_figure(face: FaceRegions) -> go.Figure:
    """The score per region: occlusion drop, and the Shapley value where computed."""
    labels = [REGION_LABELS[r] + (" (true)" if r in face.true_regions else "") for r in REGIONS]
    fig = go.Figure(go.Bar(x=labels, y=face.occlusion.tolist(), name="drop when blurred alone"))
    if face.shapley is not None:
        fig.add_trace(go.Bar(x=labels, y=face.shapley.tolist(), name="exact Shapley value"))
    fig.update_layout(
        title="The score per region", showlegend=True,
        height=REGION_CHART_HEIGHT, barmode="group", yaxis_title="GestaltMatcher score",
        margin=REGION_CHART_MARGIN,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )  # fmt: skip
    return fig


__all__ = [
    "DEMO_SCORECARD",
    "HOW_TO_READ",
    "PAIR_CAPTION",
    "REGIONS_CAPTION",
    "REGIONS_OVERVIEW_COLUMNS",
    "REGION_METHOD",
    "REGION_SYNDROME",
    "ScorecardRequest",
    "agreement_caption",
    "agreement_figures",
    "candidates",
    "column_help",
    "current",
    "curve_figure",
    "features_text",
    "leaderboard_rows",
    "method_name",
    "pair_caption",
    "pair_rows",
    "provenance",
    "region_figure",
    "region_profiles",
    "regions_overview",
    "score_figure",
    "scorecard_controls",
]
