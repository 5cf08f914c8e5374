"""Widgets of the Diagnose page: its controls (a frozen request), the photo input, the export."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import streamlit as st

from gmx.config import GmxConfig
from gmx.constants import NEAR_DUPLICATE_DISTANCE
from gmx.gallery import (
    HELD_OUT,
    CalibratedMatch,
    FeatureChoices,
    Gallery,
    Ranking,
    SuggestedFeature,
    SyndromeMatch,
    to_gene_tsv,
    to_phenopacket_json,
    to_service_json,
)
from gmx.pipeline import Diagnoser
from ui import examples, photo, state

#: Photo sources of the Diagnose page.
SOURCES = ("Upload", "Camera", "Demo faces")
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")
#: Most syndromes the top-k slider offers.
TOP_K_MAX = 30
#: Widths of the photo, aligned-face and quality columns.
RESULT_COLUMNS = (4, 3, 3)
#: Height of the photo and aligned-face figures, in pixels.
FIGURE_HEIGHT = examples.PREVIEW_HEIGHT
MS_PER_S = 1000
#: Characters of the photo's hash in the default case id.
CASE_ID_HASH_CHARS = 8
#: Columns of the export buttons: service JSON, Phenopacket, gene table.
EXPORT_COLUMNS = 3
#: The choices on a suggested facial feature (the first is the default).
NOT_ASSESSED, PRESENT, ABSENT = "not assessed", "present", "absent"
FEATURE_OPTIONS = (NOT_ASSESSED, PRESENT, ABSENT)
FEATURES_TITLE = "Facial features of the suggested syndromes"
CALIBRATION_TITLE = "How close is close? Calibrated statements"
#: Calibrated statements shown open; those of lower ranks are folded into an expander.
CALIBRATION_FIRST = 3
NOT_CALIBRATED = (
    "This gallery is not calibrated, so the distances above come without counts of how often "
    "same-syndrome patients, other syndromes and unaffected people are that close. Store a "
    "calibration with `gmx gallery calibrate GALLERY --unaffected DIR_OR_CSV` (docs/gallery.md)."
)


@dataclass(frozen=True)
class DiagnoseRequest:
    """What the Diagnose page was asked for."""

    top_k: int
    drop_near_duplicates: bool
    source: str


def diagnose_controls() -> DiagnoseRequest:
    """The sidebar settings (kept across pages) and the photo source."""
    with st.sidebar:
        top_k = st.slider(
            "Top-k syndromes", 1, TOP_K_MAX, key=state.keep("top_k", state.TOP_K_DEFAULT)
        )
        drop = st.toggle(
            f"Drop near-duplicate gallery matches (distance ≤ {NEAR_DUPLICATE_DISTANCE})",
            key=state.keep("drop_near_duplicates", False),
            help="The GestaltMatcher service v1.1.2 drops gallery images this close to the query "
            "(likely the same photo). Explain and Similarity use the same setting.",
        )
    source = st.segmented_control(
        "Photo", SOURCES, default=SOURCES[0], label_visibility="collapsed"
    )
    return DiagnoseRequest(int(top_k), bool(drop), str(source or SOURCES[0]))


def photo_input(request: DiagnoseRequest, cfg: GmxConfig) -> None:
    """The chosen source's widget; a new photo is validated before it becomes the current one."""
    if request.source == "Upload":
        st.file_uploader(
            "Frontal face photo (JPEG, PNG, WebP, BMP, TIFF, GIF). Kept in memory only.",
            type=list(UPLOAD_TYPES),
            key=photo.uploader_key(),
            on_change=photo.on_upload,
        )
    elif request.source == "Camera":
        st.camera_input("Take a frontal photo", key=photo.camera_key(), on_change=photo.on_camera)
    else:
        chosen = examples.picker(cfg)
        if chosen is not None:
            photo.accept(*chosen)
    photo.show_refusal()


def timings_caption(timings: Mapping[str, float]) -> str:
    """``decode 12 ms · align 80 ms · ...``"""
    return " · ".join(f"{k} {v * MS_PER_S:.0f} ms" for k, v in timings.items())


def default_case_id(current: photo.CurrentPhoto) -> str:
    """A neutral case id (never the file name): ``case-`` and the start of the photo's hash."""
    return f"case-{current.sha256[:CASE_ID_HASH_CHARS]}"


def feature_key(current: photo.CurrentPhoto, hpo_id: str) -> str:
    """Session key of the choice on one feature: per photo, kept across pages, cleared by forget."""
    return state.keep(f"{state.HPO_CHOICE_PREFIX}{current.sha256}.{hpo_id}", NOT_ASSESSED)


def feature_controls(
    current: photo.CurrentPhoto, features: tuple[SuggestedFeature, ...]
) -> FeatureChoices:
    """An expander listing each suggested feature once (with the syndromes that have it) and a
    three-way choice per feature: not assessed (default), present, absent."""
    present: list[str] = []
    absent: list[str] = []
    with st.expander(f"{FEATURES_TITLE} ({len(features)})"):
        if not features:
            st.caption("The gallery lists no HPO features for the suggested syndromes.")
        else:
            st.caption(
                "Mark what you see on this face. Present features go into the Phenopacket as "
                "phenotypic features, absent ones as excluded features; both are listed in the "
                "JSON's gmx block. Forget this photo clears the choices."
            )
        for feature in features:
            choice = st.radio(
                feature.term.display,
                FEATURE_OPTIONS,
                key=feature_key(current, feature.hpo_id),
                horizontal=True,
            )
            st.caption(f"In: {', '.join(feature.syndromes)}")
            if choice == PRESENT:
                present.append(feature.hpo_id)
            elif choice == ABSENT:
                absent.append(feature.hpo_id)
    return FeatureChoices(tuple(present), tuple(absent))


def statement_line(match: SyndromeMatch, s: CalibratedMatch) -> str:
    """One suggested syndrome's calibrated statement in words (Markdown)."""
    photos = (
        "held-out photos of affected patients"
        if s.method == HELD_OUT
        else "gallery photos (own patient left out)"
    )
    parts = [
        f"**{match.rank}. {match.name}** (distance {s.distance:.3f}): a same-syndrome gallery "
        f"patient was this close for {s.n_own_within} of {s.n_own} {photos} "
        f"({s.frac_own_within:.0%}), one of another syndrome for {s.n_other_within} "
        f"({s.frac_other_within:.0%})"
    ]
    if s.n_unaffected is not None:
        parts.append(
            f"{s.n_unaffected_within} of {s.n_unaffected} unaffected people "
            f"({s.frac_unaffected_within:.0%}) were this close to some syndrome"
        )
    if s.ppv is None:
        parts.append("no match this close, so no PPV")
    else:
        parts.append(f"estimated PPV {s.ppv:.0%} (95 % interval {s.ppv_low:.0%}-{s.ppv_high:.0%})")
    line = "; ".join(parts) + "."
    if s.not_closer_than_typical:
        who = "unaffected faces" if s.n_unaffected else "matches to a different syndrome"
        line += f" *Not closer than typical {who} (median {s.typical_distance:.3f}).*"
    return line


def calibration_block(ranking: Ranking, gallery: Gallery, top_k: int) -> None:
    """The face-level "not closer than typical unaffected faces" message and, per suggested
    syndrome, the gallery's calibrated statement (or a note that the gallery is not calibrated)."""
    calibration = gallery.calibration
    st.subheader(CALIBRATION_TITLE)
    if calibration is None:
        st.info(NOT_CALIBRATED, icon=":material/info:")
        return
    if ranking.syndromes:
        message = calibration.not_closer_message(ranking.syndromes[0].distance)
        if message is not None:
            st.warning(message, icon=":material/warning:")
    shown = ranking.syndromes[:top_k]
    for match in shown[:CALIBRATION_FIRST]:
        st.markdown(statement_line(match, calibration.statement(match.distance)))
    if len(shown) > CALIBRATION_FIRST:
        with st.expander(f"Statements for ranks {CALIBRATION_FIRST + 1}–{len(shown)}"):
            for match in shown[CALIBRATION_FIRST:]:
                st.markdown(statement_line(match, calibration.statement(match.distance)))
    st.caption(
        f"Counted {calibration.method} on the gallery {calibration.gallery_name!r}: "
        f"{calibration.provenance or 'no details recorded'}. PPV = same-syndrome share of the "
        "nearest matches at this distance or closer; it depends on the gallery's syndrome mix and "
        "is no probability that this person has the syndrome (docs/gallery.md, Calibrated answers)."
    )


def export(
    current: photo.CurrentPhoto,
    diagnoser: Diagnoser,
    cfg: GmxConfig,
    top_k: int,
    choices: FeatureChoices,
) -> None:
    """Case id input and the downloads: the GestaltMatcher service JSON, a GA4GH Phenopacket and the
    gene table (TSV), all with the same case id and a demo flag on the demo; the facial features
    marked present / absent go into the JSON's gmx block and the Phenopacket. The Phenopacket and
    the table are built only when their button is clicked."""
    case_id = st.text_input(
        "Case id (written in the export)",
        key=state.keep(f"{state.CASE_ID_PREFIX}{current.sha256}", default_case_id(current)),
        help="The exports do not contain the photo's file name unless you type it here.",
    )
    case_id = case_id.strip() or default_case_id(current)
    ranking = current.diagnosis.ranking
    report = to_service_json(
        ranking,
        case_id=case_id,
        model_version=",".join(m.card.name for m in diagnoser.models),
        gallery_version=diagnoser.gallery.version,
        top_k=top_k,
        demo=cfg.is_demo,
        confirmed_hpo=choices.present,
        rejected_hpo=choices.absent,
        calibration=diagnoser.gallery.calibration,
    )
    json_col, packet_col, genes_col = st.columns(EXPORT_COLUMNS)
    json_col.download_button(
        "Download result (GestaltMatcher service JSON)",
        json.dumps(report, indent=2),
        file_name="gmx_result.json",
        mime="application/json",
    )
    packet_col.download_button(
        "Download Phenopacket (GA4GH v2 JSON)",
        partial(
            to_phenopacket_json,
            ranking,
            case_id=case_id,
            gallery_version=diagnoser.gallery.version,
            hpo_ids=choices.present,
            excluded_hpo_ids=choices.absent,
            top_k=top_k,
            demo=cfg.is_demo,
        ),
        file_name="gmx_phenopacket.json",
        mime="application/json",
        on_click="ignore",
        help="The case with the facial features you marked (present, or excluded when absent) and "
        "the top-k syndromes as candidate diagnoses (OMIM ids where the gallery has them), for tools "
        "that read Phenopackets.",
    )
    genes_col.download_button(
        "Download gene table (TSV)",
        partial(to_gene_tsv, ranking, top_k=top_k, demo=cfg.is_demo, case_id=case_id),
        file_name="gmx_genes.tsv",
        mime="text/tab-separated-values",
        on_click="ignore",
        help="Case id, gene, syndrome, distance, gestalt score and rank of the top-k genes, for variant "
        "prioritisation (PEDIA-style).",
    )
