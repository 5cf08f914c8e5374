"""Rows for the app's tables (lists of dicts: st.dataframe renders them directly)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from gmx.config import GmxConfig
from gmx.constants import GESTALT_SCORE_OFFSET
from gmx.gallery import Gallery, Ranking, Syndrome, may_show_photos
from gmx.hpo import describe, warm_up
from gmx.synth import is_synthetic
from gmx.viz import to_data_uri

warm_up()  # load the HPO (about 1 s) while the page loads its models and aligns the photo

#: What a distance is, in words (column help and captions wherever a distance is shown).
DISTANCE_HELP = (
    "Cosine distance between the face encoding of this photo and the nearest gallery image: "
    "0 = the same encoding, about 1 = unrelated faces, at most 2. Smaller means more similar. "
    "It ranks gallery matches for this photo; it is not a probability."
)
#: What the gestalt score is, in words.
GESTALT_HELP = (
    f"{GESTALT_SCORE_OFFSET} minus the distance, as the GestaltMatcher service reports it: higher "
    f"means more similar (at most {GESTALT_SCORE_OFFSET}). A similarity for ranking syndromes, not "
    "the probability of having the syndrome and not a diagnosis."
)
#: Why a syndrome has no OMIM number / genes / HPO terms.
SYNTHETIC_NO_OMIM = "synthetic demo syndrome: no OMIM entry"
SYNTHETIC_NO_GENES = "synthetic demo syndrome: no genes"
NO_OMIM = "no OMIM number in the gallery's metadata"
NOT_IN_METADATA = "not in the gallery's metadata"

SYNDROME_COLUMNS = {
    "rank": st.column_config.NumberColumn("#", width="small"),
    "nearest": st.column_config.ImageColumn("Nearest patient", width="small"),
    "syndrome": st.column_config.TextColumn("Syndrome", width="large"),
    "distance": st.column_config.NumberColumn("Distance", format="%.3f", help=DISTANCE_HELP),
    "gestalt_score": st.column_config.ProgressColumn(
        "Gestalt score",
        format="%.3f",
        min_value=0.0,
        max_value=GESTALT_SCORE_OFFSET,
        help=GESTALT_HELP,
    ),
    "OMIM": st.column_config.TextColumn(
        "OMIM", help="OMIM number of the disorder; when there is none, the cell says why"
    ),
    "genes": st.column_config.TextColumn(
        "Genes", help="Genes the gallery associates with the disorder; when none, the cell says why"
    ),
    "HPO features": st.column_config.TextColumn(
        "HPO features",
        help="Facial features of the disorder as Human Phenotype Ontology terms (label and id)",
        width="large",
    ),
}
#: Column help of :func:`gene_table` and :func:`patient_table`.
GENE_COLUMNS = {
    "distance": st.column_config.NumberColumn("Distance", format="%.4f", help=DISTANCE_HELP),
}
PATIENT_COLUMNS = GENE_COLUMNS


def omim_text(syndrome: Syndrome) -> str:
    """The OMIM number, or why there is none."""
    if syndrome.omim:
        return syndrome.omim
    return SYNTHETIC_NO_OMIM if is_synthetic(syndrome.syndrome_id, syndrome.name) else NO_OMIM


def genes_text(syndrome: Syndrome) -> str:
    """The genes, or why there are none."""
    if syndrome.genes:
        return ", ".join(syndrome.genes)
    if is_synthetic(syndrome.syndrome_id, syndrome.name):
        return SYNTHETIC_NO_GENES
    return NOT_IN_METADATA


def hpo_text(syndrome: Syndrome) -> str:
    """The HPO terms with their labels (``Hypertelorism (HP:0000316), ...``), or why none."""
    return describe(syndrome.hpo) or NOT_IN_METADATA


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
            "OMIM": omim_text(syndrome),
            "patient": m.subject_id,
            "image": m.image_id,
            "genes": genes_text(syndrome),
            "HPO features": hpo_text(syndrome),
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
