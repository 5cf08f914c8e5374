"""The case report as data: :class:`CaseReport` and :func:`build_report` (no rendering here).

A report is built in memory from what the Diagnose / Explain pages (or ``gmx report``) already have:
the :class:`~gmx.pipeline.Diagnosis`, the models and gallery, the user's facial-feature choices and,
optionally, the explanation maps. Every picture is encoded once here as PNG bytes; the renderers
(:func:`~gmx.report.to_html`, :func:`~gmx.report.to_pdf`) only lay them out.

The aligned face is **left out unless asked for** (``include_face=True``): without it the maps are
drawn as colour maps alone (:func:`gmx.viz.colorize`), not over the face, so no pixel of the face is
in the report.
"""

from __future__ import annotations

import io
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from gmx.gallery import (
    DEMO_NOTICE,  # the one wording of the demo notice (as the exports)
    LEAVE_ONE_PATIENT_OUT,
    METADATA_KEY,
    CalibratedMatch,
    Calibration,
    FeatureChoices,
    Gallery,
    Ranking,
    calibrate,
    suggested_features,
)
from gmx.hpo import hpo_terms
from gmx.regions import TOP_REGIONS
from gmx.viz import Palette, colorize, colour_bar, legend_text, overlay, to_png_bytes

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from gmx.align import AlignedFace
    from gmx.encode import Ensemble
    from gmx.explain import AttributionMap
    from gmx.metrics.scorecard import Scorecard
    from gmx.panel import PanelRow
    from gmx.pipeline import Diagnosis

#: Size (pixels) of a map tile in the report (the 112x112 template, upscaled by nearest neighbour).
MAP_TILE_PX = 224
#: Width and height (pixels) of a colour bar in the report.
COLOUR_BAR_PX = (224, 12)
#: Default top-k of a report.
DEFAULT_TOP_K = 5
#: Where the calibration came from (:func:`report_calibration`).
CALIBRATION_STORED = "stored in the gallery file"
CALIBRATION_COMPUTED = "computed from the gallery at report time (leave-one-patient-out)"
#: Title of every report.
REPORT_TITLE = "GestaltMatcher case report"
#: What the report is and is not, printed under the title.
REPORT_CAVEAT = (
    "A facial-similarity analysis to support, not replace, clinical assessment and genetic "
    "testing. Distances and gestalt scores rank gallery syndromes by facial similarity; the "
    "calibrated statements are counts on the gallery, not probabilities for this patient."
)


@dataclass(frozen=True)
class ReportMatch:
    """One suggested syndrome.

    Attributes:
        rank, syndrome_id, name, omim, distance, gestalt_score: as in
            :class:`~gmx.gallery.SyndromeMatch`.
        genes: the syndrome's genes in the gallery.
        calibrated: what the gallery's calibration says at this distance (``None`` without one).
    """

    rank: int
    syndrome_id: str
    name: str
    omim: str | None
    distance: float
    gestalt_score: float
    genes: tuple[str, ...]
    calibrated: CalibratedMatch | None


@dataclass(frozen=True)
class ReportGene:
    """One ranked gene (the rows of :func:`~gmx.gallery.to_gene_tsv`)."""

    rank: int
    gene: str
    syndrome: str
    distance: float
    gestalt_score: float


@dataclass(frozen=True)
class ReportFeature:
    """One facial feature (HPO term) listed in the report.

    Attributes:
        hpo_id: the term.
        display: label and id in words (:attr:`gmx.hpo.HpoTerm.display`).
        syndromes: suggested syndromes that list the term (empty for a term only the user gave).
        confirmed: the user marked it present.
    """

    hpo_id: str
    display: str
    syndromes: tuple[str, ...]
    confirmed: bool


@dataclass(frozen=True)
class ReportMap:
    """One explanation map as drawn in the report.

    Attributes:
        row_label: the explained syndrome (``#1 Name``; contrasts say what with).
        method: registered method name; ``method_name`` its display name.
        units: what the values are (:func:`gmx.panel.map_units`).
        signed: whether the map has a sign (diverging colours).
        png: the tile (map over the face, or the colour map alone without the face).
        colour_bar_png: the colour bar of the tile's colour map, low values on the left.
        legend: the colour scale in words (:func:`gmx.viz.legend_text`).
        reading: how to read the map (:func:`gmx.panel.reading`).
    """

    row_label: str
    method: str
    method_name: str
    units: str
    signed: bool
    png: bytes
    colour_bar_png: bytes
    legend: str
    reading: str


@dataclass(frozen=True)
class ReportMaps:
    """The maps to put in a report, as the Explain page (or the CLI) computed them.

    Attributes:
        rows: the explained syndromes (:func:`gmx.panel.panel_rows`).
        grid: per row, method name -> :class:`~gmx.explain.AttributionMap`.
        methods: the methods to show, in order (each must be in every row).
        target: ``similarity``, ``logit`` or ``contrast`` (for the provenance).
        palette, scale_mode, sign_mode, opacity: the display choices (:class:`gmx.panel.PanelRequest`).
    """

    rows: Sequence[PanelRow]
    grid: Sequence[Mapping[str, AttributionMap]]
    methods: Sequence[str]
    target: str = "similarity"
    palette: Palette = field(default_factory=Palette)
    scale_mode: str = "method"
    sign_mode: str = "both"
    opacity: float = 0.6

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.grid):
            raise ValueError(f"{len(self.rows)} rows but {len(self.grid)} rows of maps")
        missing = sorted({m for maps in self.grid for m in self.methods if m not in maps})
        if missing:
            raise ValueError(f"methods without a map in every row: {', '.join(missing)}")


@dataclass(frozen=True)
class ReportRegions:
    """Region relevance of one explanation map (:mod:`gmx.regions`), beside the syndrome's features.

    Attributes:
        row_label: the explained syndrome (``#1 Name``).
        method_name: the map's method (display name).
        top: the map's top regions with their share of the positive relevance and their density,
            in words (:attr:`gmx.regions.RegionProfile.summary`).
        features: per HPO feature of the syndrome, ``(words, highlighted)``: its regions and their
            rank in the map, and whether one is among the map's top regions.
    """

    row_label: str
    method_name: str
    top: str
    features: tuple[tuple[str, bool], ...]


#: What the methods' scorecard verdicts are measured on (``n``: faces; ``fp``: settings fingerprint).
SCORECARD_NOTE = (
    "Verdicts of each method in the scorecard of these models ({n} held-out faces, settings "
    "fingerprint {fp}): measured over those faces, not on this photo. 'Passes sanity' = the map "
    "changes when the model's weights are randomised; 'faithful' = removing and restoring the "
    "pixels it ranks first moves the score more than a random map; 'localises' = it finds the "
    "known causal regions better than other syndromes' regions (docs/metrics.md)."
)
#: Said when no scorecard was made with these models.
SCORECARD_NONE = (
    "No scorecard was made with these models, so the maps carry no verdicts (`gmx scorecard`)."
)

#: How to read the region relevance section.
REGION_NOTE = (
    "Facial regions come from the face mesh of this photo. Share = the region's part of the map's "
    "positive relevance; density = that share divided by the region's share of the image (1 = as "
    "much as its size predicts). A feature is 'highlighted' when one of its regions is among the "
    "map's {top} regions by density. This says where the map points on this face, not that the "
    "feature is present."
)


@dataclass(frozen=True)
class Provenance:
    """Where every number of the report came from.

    Attributes:
        gmx_version: the gmx that made the report.
        models: ``(name, weights fingerprint)`` of each model, in ensemble order.
        ensemble_fingerprint: the ensemble's fingerprint (models + preprocessing + TTA).
        gallery_name, gallery_version: the gallery.
        gallery_metadata_sha256: the SHA-256 recorded over the gallery file's metadata (``None``
            when unknown: no file given, or a file written before gmx recorded one).
        calibration: where the calibration came from and what it counted, in words.
        parameters: the settings of the analysis (top-k, face, methods, ...), as text.
        photo_sha256: SHA-256 of the photo's bytes.
        created_utc: when the report was built (ISO 8601, UTC).
    """

    gmx_version: str
    models: tuple[tuple[str, str], ...]
    ensemble_fingerprint: str
    gallery_name: str
    gallery_version: str
    gallery_metadata_sha256: str | None
    calibration: str
    parameters: tuple[tuple[str, str], ...]
    photo_sha256: str
    created_utc: str

    def items(self) -> tuple[tuple[str, str], ...]:
        """The provenance as ``(label, text)`` lines, in the order the renderers print them."""
        models = "; ".join(f"{name} (weights {fp})" for name, fp in self.models)
        return (
            ("gmx version", self.gmx_version),
            ("Models", models),
            ("Ensemble fingerprint", self.ensemble_fingerprint),
            ("Gallery", f"{self.gallery_name} {self.gallery_version}".strip()),
            ("Gallery metadata SHA-256", self.gallery_metadata_sha256 or "not recorded"),
            ("Calibration", self.calibration),
            *((f"Parameter {k}", v) for k, v in self.parameters),
            ("Photo SHA-256", self.photo_sha256 or "not recorded"),
            ("Created (UTC)", self.created_utc),
        )


@dataclass(frozen=True)
class CaseReport:
    """Everything a case report shows (built by :func:`build_report`, drawn by the renderers).

    Attributes:
        case_id: the case's id (never the photo's file name unless the user typed it).
        demo_notice: the synthetic-demo notice, or ``None`` for real models and galleries.
        face_png: the aligned face (112x112 PNG) when it was asked for, else ``None``.
        matches: the top-k syndromes with their calibrated statements.
        genes: the top-k genes.
        features: the suggested facial features (user-confirmed ones marked, rejected ones left
            out) and any confirmed term no suggested syndrome lists.
        n_rejected_features: how many features the user marked absent (not listed).
        maps: the explanation maps (empty when none were asked for).
        map_reading: how to read the maps' colours (empty without maps).
        calibration_note: what the calibration is, or why there is none.
        provenance: the :class:`Provenance`.
        regions: region relevance of every map (empty without maps).
        region_note: how to read the region relevance (empty without maps).
        scorecard: ``(method display name, verdicts in words)`` for each method of the maps, from
            the scorecard of these models (empty without maps or without a scorecard).
        scorecard_note: what the verdicts are measured on, or that no scorecard exists.
    """

    case_id: str
    demo_notice: str | None
    face_png: bytes | None
    matches: tuple[ReportMatch, ...]
    genes: tuple[ReportGene, ...]
    features: tuple[ReportFeature, ...]
    n_rejected_features: int
    maps: tuple[ReportMap, ...]
    map_reading: str
    calibration_note: str
    provenance: Provenance
    regions: tuple[ReportRegions, ...] = ()
    region_note: str = ""
    scorecard: tuple[tuple[str, str], ...] = ()
    scorecard_note: str = ""

    @property
    def title(self) -> str:
        """The report's title."""
        return REPORT_TITLE

    @property
    def caveat(self) -> str:
        """What the report is and is not."""
        return REPORT_CAVEAT


# --- sources ---------------------------------------------------------------------------------------
def report_calibration(gallery: Gallery) -> tuple[Calibration | None, str]:
    """The gallery's calibration and where it came from, in words.

    The calibration stored with the gallery is used when the gallery carries one (a
    :class:`~gmx.gallery.Calibration` as its ``calibration`` attribute); otherwise it is computed
    from the gallery's stored embeddings (:func:`~gmx.gallery.calibrate`, leave-one-patient-out;
    a fraction of a second on the demo). ``None`` when the gallery cannot be calibrated (no
    syndrome with two patients).
    """
    stored = getattr(gallery, "calibration", None)
    if isinstance(stored, Calibration):
        return stored, _calibration_words(stored, CALIBRATION_STORED)
    try:
        computed = calibrate(gallery)
    except ValueError as exc:
        return None, f"none: {exc}"
    return computed, _calibration_words(computed, CALIBRATION_COMPUTED)


def _calibration_words(cal: Calibration, source: str) -> str:
    counted = "gallery images" if cal.method == LEAVE_ONE_PATIENT_OUT else "held-out images"
    words = f"{source} ({cal.method}); {cal.n_images} {counted} counted"
    if cal.n_skipped_images:
        words += f", {cal.n_skipped_images} skipped (syndromes with a single patient)"
    if cal.unaffected_distances is not None:
        words += f"; unaffected cohort of {cal.unaffected_distances.size}"
    return words


def gallery_metadata_sha256(path: str | Path) -> str | None:
    """The metadata SHA-256 recorded in a gallery file (``None`` if the file has none).

    Reads one row of the file's ``meta`` table, read-only; the file is not loaded. A file that
    cannot be read (moved or replaced since the gallery was loaded) gives ``None`` and a warning.
    """
    uri = f"file:{Path(path).resolve().as_posix()}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (METADATA_KEY,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:  # the gallery was loaded; its file may have moved since
        log.warning("cannot read the metadata checksum of %s: %s", path, exc)
        return None
    return None if row is None else str(row[0])


# --- building --------------------------------------------------------------------------------------
def _matches(
    ranking: Ranking, gallery: Gallery, top_k: int, calibration: Calibration | None
) -> tuple[ReportMatch, ...]:
    out = []
    for m in ranking.syndromes[:top_k]:
        syndrome = gallery.syndromes.get(m.syndrome_id)
        out.append(
            ReportMatch(
                rank=m.rank,
                syndrome_id=m.syndrome_id,
                name=m.name,
                omim=m.omim,
                distance=float(m.distance),
                gestalt_score=float(m.gestalt_score),
                genes=tuple(syndrome.genes) if syndrome is not None else (),
                calibrated=None if calibration is None else calibration.statement(m.distance),
            )
        )
    return tuple(out)


def _genes(ranking: Ranking, top_k: int) -> tuple[ReportGene, ...]:
    names = {m.syndrome_id: m.name for m in ranking.syndromes}
    return tuple(
        ReportGene(
            rank=g.rank,
            gene=g.gene,
            syndrome=names.get(g.syndrome_id, g.syndrome_id),
            distance=float(g.distance),
            gestalt_score=float(g.gestalt_score),
        )
        for g in ranking.genes[:top_k]
    )


def _features(
    ranking: Ranking, gallery: Gallery, top_k: int, choices: FeatureChoices
) -> tuple[ReportFeature, ...]:
    present = set(choices.present)
    absent = set(choices.absent)
    suggested = suggested_features(ranking, gallery, top_k)
    listed = [
        ReportFeature(f.hpo_id, f.term.display, f.syndromes, f.hpo_id in present)
        for f in suggested
        if f.hpo_id not in absent
    ]
    seen = {f.hpo_id for f in suggested}
    extra = [h for h in choices.present if h not in seen]
    listed += [ReportFeature(t.hpo_id, t.display, (), True) for t in hpo_terms(extra)]
    return tuple(listed)


def _tile(image: np.ndarray) -> bytes:
    """PNG of an image upscaled to the report's tile size (nearest neighbour: no smoothing)."""
    from PIL import Image

    big = Image.fromarray(np.ascontiguousarray(image)).resize(
        (MAP_TILE_PX, MAP_TILE_PX), Image.NEAREST
    )
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    return buf.getvalue()


def _maps(maps: ReportMaps, face: np.ndarray | None) -> tuple[tuple[ReportMap, ...], str]:
    from gmx.panel import display_maps, map_units, reading, reading_note

    methods = list(maps.methods)
    if not maps.rows or not methods:
        return (), ""
    flat = [maps.grid[r][m] for r in range(len(maps.rows)) for m in methods]
    values, scales = display_maps(flat, maps.scale_mode, maps.sign_mode)
    bar_w, bar_h = COLOUR_BAR_PX
    out = []
    k = 0
    for row in maps.rows:
        for _m in methods:
            amap = flat[k]
            cmap = maps.palette.cmap(amap.signed)
            if face is not None:
                img = overlay(face, values[k], scales[k], cmap=cmap, opacity=maps.opacity)
            else:  # the colour map alone: no pixel of the face
                img = colorize(values[k], scales[k], cmap)
            out.append(
                ReportMap(
                    row_label=row.label,
                    method=amap.method,
                    method_name=amap.display_name,
                    units=map_units(amap.method),
                    signed=amap.signed,
                    png=_tile(img),
                    colour_bar_png=to_png_bytes(colour_bar(cmap, bar_w, bar_h)),
                    legend=legend_text(scales[k], cmap),
                    reading=reading(row, amap.signed, maps.palette),
                )
            )
            k += 1
    return tuple(out), reading_note(maps.palette)


def _regions(maps: ReportMaps, face: AlignedFace, gallery: Gallery) -> tuple[ReportRegions, ...]:
    from gmx.regions import region_masks, region_profile

    methods = list(maps.methods)
    if not maps.rows or not methods:
        return ()
    regions = region_masks(face.landmarks_template)
    out = []
    for row, cells in zip(maps.rows, maps.grid, strict=True):
        syndrome = gallery.syndromes.get(row.match.syndrome_id)
        hpo = tuple(syndrome.hpo) if syndrome is not None else ()
        for m in methods:
            amap = cells[m]
            prof = region_profile(regions, amap.values, hpo, row_label=row.label)
            feats = tuple((f.summary, f.highlighted) for f in prof.features)
            out.append(ReportRegions(row.label, amap.display_name, prof.summary, feats))
    return tuple(out)


def _scorecard(
    maps: ReportMaps | None, gallery: Gallery, card: Scorecard | Literal["auto"] | None
) -> dict[str, Any]:
    """``scorecard`` and ``scorecard_note`` of :class:`CaseReport` for the maps' methods."""
    if maps is None or not maps.rows or not maps.methods:
        return {}
    if card == "auto":
        from gmx.metrics.scorecard import scorecard_for

        card = scorecard_for(gallery.model_fingerprint)
    if card is None:
        return {"scorecard_note": SCORECARD_NONE}
    lines = []
    for method in maps.methods:
        verdict = card.verdicts.get(method)
        name = maps.grid[0][method].display_name
        words = ", ".join(w for w, _ in verdict.words()) if verdict is not None else ""
        lines.append((name, words or "not scored"))
    note = SCORECARD_NOTE.format(n=card.n_images, fp=card.fingerprint[:12])
    return {"scorecard": tuple(lines), "scorecard_note": note}


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}={_text(v)}" for k, v in value.items())
    return str(value)


def build_report(
    diagnosis: Diagnosis,
    ensemble: Ensemble,
    gallery: Gallery,
    *,
    case_id: str,
    top_k: int = DEFAULT_TOP_K,
    choices: FeatureChoices | None = None,
    maps: ReportMaps | None = None,
    include_face: bool = False,
    demo: bool = False,
    calibration: tuple[Calibration | None, str] | None = None,
    gallery_file: str | Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    created: datetime | None = None,
    scorecard: Scorecard | Literal["auto"] | None = "auto",
) -> CaseReport:
    """The case report of one diagnosed photo (in memory; nothing is written).

    Args:
        diagnosis: a diagnosis with a ranking (:attr:`~gmx.pipeline.Diagnosis.ok`).
        ensemble: the models that made it (names and fingerprints go into the provenance).
        gallery: the gallery it was ranked against.
        case_id: the case's id.
        top_k: syndromes and genes listed (and the syndromes whose HPO features are suggested).
        choices: the facial features the user marked present / absent.
        maps: explanation maps to include (their method names, colour bars and legends too).
        include_face: put the aligned face in the report (and draw the maps over it). Off by
            default: the report then holds no pixel of the face.
        demo: the synthetic demo is active: the report carries its notice.
        calibration: ``(calibration or None, words)`` as :func:`report_calibration` returns;
            default: :func:`report_calibration` of ``gallery``.
        gallery_file: the gallery's file, for its recorded metadata SHA-256.
        parameters: further settings to record (e.g. the near-duplicate threshold).
        created: the report's time (default: now, UTC).
        scorecard: the scorecard whose verdicts badge each map's method; ``"auto"`` (default):
            the one made with the gallery's models (:func:`gmx.metrics.scorecard.scorecard_for`);
            ``None``: no verdicts.

    Raises:
        ValueError: a diagnosis without a ranking, a ``top_k`` below 1, or ``maps`` whose rows
            are not of this ranking.
    """
    import gmx

    if diagnosis.ranking is None or diagnosis.face is None:
        raise ValueError(f"no ranking to report: {diagnosis.message}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    ranking = diagnosis.ranking
    choices = choices or FeatureChoices()
    cal, cal_words = calibration if calibration is not None else report_calibration(gallery)
    face = diagnosis.face.image if include_face else None
    report_maps, map_reading = _maps(maps, face) if maps is not None else ((), "")
    params: dict[str, Any] = {
        "top_k": top_k,
        "face": f"{diagnosis.face_index + 1} of {len(diagnosis.alignment.faces)} (largest first)",
        "variants": [v.label for v in ensemble.variants],
        "face_in_report": "yes" if include_face else "no",
    }
    if maps is not None:
        params["maps"] = (
            f"target {maps.target}; methods {', '.join(maps.methods)}; rows {len(maps.rows)}; "
            f"scale {maps.scale_mode}; sign {maps.sign_mode}"
        )
    params.update(parameters or {})
    when = created if created is not None else datetime.now(UTC)
    metadata_sha = None if gallery_file is None else gallery_metadata_sha256(gallery_file)
    provenance = Provenance(
        gmx_version=gmx.__version__,
        models=tuple((m.card.name, m.fingerprint) for m in ensemble.models),
        ensemble_fingerprint=ensemble.fingerprint,
        gallery_name=gallery.name,
        gallery_version=gallery.version,
        gallery_metadata_sha256=metadata_sha,
        calibration=cal_words,
        parameters=tuple((k, _text(v)) for k, v in params.items()),
        photo_sha256=diagnosis.image_sha256,
        created_utc=when.astimezone(UTC).isoformat(timespec="seconds"),
    )
    return CaseReport(
        case_id=case_id,
        demo_notice=DEMO_NOTICE if demo else None,
        face_png=to_png_bytes(face) if face is not None else None,
        matches=_matches(ranking, gallery, top_k, cal),
        genes=_genes(ranking, top_k),
        features=_features(ranking, gallery, top_k, choices),
        n_rejected_features=len(choices.absent),
        maps=report_maps,
        map_reading=map_reading,
        calibration_note=cal_words,
        provenance=provenance,
        regions=_regions(maps, diagnosis.face, gallery) if maps is not None else (),
        region_note=REGION_NOTE.format(top=TOP_REGIONS) if maps is not None and maps.rows else "",
        **_scorecard(maps, gallery, scorecard),
    )
