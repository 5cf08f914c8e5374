"""Rows for the app's tables (lists of dicts: st.dataframe renders them directly)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from gmx.config import GmxConfig
from gmx.gallery import Gallery, Ranking, may_show_photos
from gmx.viz import to_data_uri

SYNDROME_COLUMNS = {
    "rank": st.column_config.NumberColumn("#", width="small"),
    "nearest": st.column_config.ImageColumn("Nearest patient", width="small"),
    "syndrome": st.column_config.TextColumn("Syndrome", width="large"),
    "distance": st.column_config.NumberColumn(
        "Distance", format="%.3f", help="Mean cosine distance to the nearest gallery image"
    ),
    "gestalt_score": st.column_config.ProgressColumn(
        "Gestalt score", format="%.3f", min_value=0.0, max_value=1.3, help="1.3 − distance"
    ),
}


def photos_allowed(cfg: GmxConfig, gallery: Gallery) -> bool:
    """Gallery photos are shown only when the gallery allows it and the configuration does not forbid
    it (the gallery-picture policy, :func:`gmx.gallery.may_show_photos`)."""
    return may_show_photos(gallery, cfg.photos_visible)


def syndrome_table(
    ranking: Ranking, gallery: Gallery, top_k: int, *, show_photos: bool
) -> list[dict[str, Any]]:
    """One row per syndrome of the top-k."""
    rows = []
    for m in ranking.syndromes[:top_k]:
        syndrome = gallery.syndromes[m.syndrome_id]
        row: dict[str, Any] = {"rank": m.rank}
        if show_photos:
            row["nearest"] = to_data_uri(gallery.photos[m.image_index])
        row |= {
            "syndrome": m.name,
            "distance": m.distance,
            "gestalt_score": m.gestalt_score,
            "OMIM": m.omim or "",
            "patient": m.subject_id,
            "image": m.image_id,
            "genes": ", ".join(syndrome.genes),
            "HPO features": ", ".join(syndrome.hpo),
        }
        rows.append(row)
    return rows


def gene_table(ranking: Ranking, top_k: int) -> list[dict[str, Any]]:
    """Genes ranked by their nearest gallery image."""
    return [
        {"gene": g.gene, "distance": round(g.distance, 4), "image": g.image_id}
        for g in ranking.genes[:top_k]
    ]


def patient_table(ranking: Ranking, top_k: int) -> list[dict[str, Any]]:
    """Gallery patients ranked by their nearest image."""
    return [
        {
            "patient": p.subject_id,
            "syndrome": p.syndrome_id,
            "distance": round(p.distance, 4),
            "image": p.image_id,
        }
        for p in ranking.patients[:top_k]
    ]
