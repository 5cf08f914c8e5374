"""Plotly figures of a study's analysis."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from gmx.study.analysis import LikertRow
from gmx.study.definition import LIKERT_LABELS

#: Diverging colours of the 5 Likert points (disagree red ... agree blue; colour-blind safe).
LIKERT_COLOURS: tuple[str, ...] = ("#ca0020", "#f4a582", "#d9d9d9", "#92c5de", "#0571b0")


def likert_figure(rows: Sequence[LikertRow], *, height: int = 360) -> go.Figure:
    """Stacked horizontal bars: the share of each answer per (method or syndrome, item)."""
    labels = [f"{r.subject} · {r.item}" for r in rows]
    fig = go.Figure()
    for k, (name, colour) in enumerate(zip(LIKERT_LABELS, LIKERT_COLOURS, strict=True)):
        fig.add_bar(
            y=labels,
            x=[r.counts[k] / r.n if r.n else 0.0 for r in rows],
            name=f"{k + 1} {name}",
            orientation="h",
            marker_color=colour,
        )
    fig.update_layout(
        barmode="stack",
        height=height,
        xaxis={"title": "share of answers", "tickformat": ".0%", "range": [0, 1]},
        yaxis={"autorange": "reversed"},
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    return fig


__all__ = ["LIKERT_COLOURS", "likert_figure"]
