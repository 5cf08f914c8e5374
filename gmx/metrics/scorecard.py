"""The scorecard: every registered method scored on held-out faces, with CIs and a verdict.

:func:`run_scorecard` explains held-out faces (never in the gallery, never trained on) against their
own syndrome and scores every method's maps, row by row, into a resumable, shardable run folder
(the same :class:`~gmx.aggregate.store.BatchStore` as ``gmx batch``: atomic chunks with checksums, a
manifest that pins the settings). :func:`summarize_scorecard` turns the rows into a
:class:`Scorecard`: per method and metric the mean over images with a seeded percentile bootstrap
95 % interval (images resampled), mean curves, and a plain-language :class:`Verdict` per method
(:func:`verdict` holds the rules; ``docs/metrics.md`` explains them).

Per face and method (``ROW_METRICS``):

* faithfulness: deletion and insertion AUC (most relevant first, :attr:`ScorecardSettings.fill`) on
  the re-ranked syndrome score over every gallery variant, and the true syndrome's rank AUC
  (:func:`gmx.metrics.faithfulness_curves`); ROAD (pytorch-grad-cam's
  ``ROADMostRelevantFirstAverage``, noisy linear imputation; mean score change when the most
  relevant pixels are imputed, variant 0) and captum's infidelity (Gaussian, variant 0);
* sanity: Spearman and SSIM of the map after cascading randomisation of every iResNet stage against
  the original (:func:`gmx.metrics.mprt`'s steps; on the first ``mprt_images`` faces only);
* localisation against the face's own causal mask and, as the null, the median over the other
  syndromes' regions (relevance mass, relevance rank, pointing game, AUROC);
* complexity (Gini sparseness, entropy) and agreement with occlusion (Spearman, top-10 % IoU).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmx.aggregate.localisation import explain_against, template_maps
from gmx.aggregate.run import BatchRun
from gmx.aggregate.store import BatchStore, Shard, read_manifest
from gmx.explain import SimilarityTarget, list_methods
from gmx.explain.compare import (
    MethodAgreement,
    SplitAgreement,
    agreement_matrix,
    map_agreement,
    mean_agreement,
)
from gmx.explain.engine import as_explain_model, variant_rows
from gmx.gallery import Gallery
from gmx.metrics.backends import Backend, run_shards
from gmx.metrics.completeness import COMPLETENESS_METHODS, method_completeness
from gmx.metrics.complexity import entropy, sparseness
from gmx.metrics.faithfulness import Fill, faithfulness_curves
from gmx.metrics.localisation import localisation_metrics
from gmx.metrics.robustness import (
    ForwardMemo,
    infidelity,
    sensitivity_max,
    similarity_forward,
)
from gmx.metrics.sanity import (
    IRESNET_STAGES,
    SANITY_MAX_SPEARMAN,
    cascading_steps,
    independent_steps,
    map_similarities,
    map_similarity,
    randomized_stages,
)

logger = logging.getLogger(__name__)

#: Format version of the scorecard JSON.
SCORECARD_VERSION = 1
#: The null map of the faithfulness verdict (a registered method).
NULL_METHOD = "random"
#: The reference map of the agreement metrics.
REFERENCE_METHOD = "occlusion"
#: Localisation scores (own mask and the other-regions null).
LOCALISATION_SCORES: tuple[str, ...] = (
    "relevance_mass",
    "relevance_rank",
    "pointing_game",
    "auroc",
)

#: Optional extras of a scorecard (:attr:`ScorecardSettings.extras`), each with the per-row
#: columns it adds (scalars; the ``*_curve`` ones are ``(n, stages)``):
#: ``mprt_hog``: HOG similarity after the full cascade, and the randomised map's similarity to the
#: face's edge map (Spearman, HOG); ``mprt_independent``: independent randomisation of each stage
#: alone (Spearman per stage, their mean, and the mean HOG); ``completeness``: the completeness
#: residual of the methods that claim completeness (:mod:`gmx.metrics.completeness`; variant 0,
#: default parameters; NaN for the others); ``agreement``: per face, each method's Spearman and
#: top-10 % IoU with every method of the run (``(n, k)``, run order), averaged over the faces in
#: the summary's ``extra["agreement"]`` (:class:`gmx.explain.compare.SplitAgreement`).
#: ``sensitivity``: captum's ``sensitivity_max`` of the map (first ``sensitivity_images`` faces);
#: ``data_randomisation``: Spearman and SSIM to the map of the shuffled-label control model
#: (:class:`DataControl`; Adebayo et al.'s data randomisation test).
EXTRAS: Mapping[str, tuple[str, ...]] = {
    "mprt_hog": ("mprt_hog", "mprt_edge_spearman", "mprt_edge_hog"),
    "mprt_independent": (
        "mprt_independent_spearman",
        "mprt_independent_hog",
        "mprt_independent_curve",
    ),
    "completeness": ("completeness_residual",),
    "agreement": ("agreement_spearman", "agreement_iou10"),
    "sensitivity": ("sensitivity_max",),
    "data_randomisation": ("data_spearman", "data_ssim"),
}
#: Settings that only matter with one extra: left out of the settings JSON (and so of the
#: fingerprint) while that extra is off, so scorecards made before them keep their fingerprints.
EXTRA_SETTINGS: Mapping[str, tuple[str, ...]] = {
    "sensitivity": ("sensitivity_samples", "sensitivity_radius", "sensitivity_images"),
}
#: ``sensitivity_max``'s noise, in grey levels of the uint8 face (uniform in ``[-r, r]``, then
#: rounded: the maps are explained from real 8-bit faces). 2.55 grey levels = 0.02 in the model's
#: ``[-1, 1]`` input, captum's default radius.
SENSITIVITY_RADIUS = 2.55
#: The committed shuffled-label control of the demo model (``python -m gmx.demo train
#: --shuffle-labels 0``; :data:`gmx.demo.SHUFFLED_MODEL_NAME`).
DEMO_SHUFFLED_MODEL_NAME = "gmx-demo-iresnet-shuffled.pt"
#: What the extras' summary metrics mean (as :data:`METRIC_INFO`).
EXTRA_METRIC_INFO: Mapping[str, tuple[str, str]] = {
    "mprt_hog": ("-", "HOG similarity to the original map after randomising every stage"),
    "mprt_edge_spearman": (
        "",
        "Spearman of the fully randomised map with the face's edge map (near 1: only edges left)",
    ),
    "mprt_edge_hog": ("", "HOG similarity of the fully randomised map with the face's edge map"),
    "mprt_independent_spearman": (
        "-",
        "Spearman to the original map, averaged over randomising each stage alone",
    ),
    "mprt_independent_hog": (
        "-",
        "HOG similarity to the original map, averaged over randomising each stage alone",
    ),
    "completeness_residual": (
        "-",
        "|sum of the map - (f(x) - f(baseline))| / |f(x) - f(baseline)| (IG, DeepLIFT only)",
    ),
    "sensitivity_max": (
        "-",
        "captum sensitivity_max: largest relative change of the map under small input noise",
    ),
    "data_spearman": (
        "-",
        "Spearman with the map of the same recipe trained on shuffled labels (high: data-blind)",
    ),
    "data_ssim": ("-", "SSIM with the map of the shuffled-label model"),
}

#: The per-row scalars of :func:`forward_metrics` (the metrics that need forward passes).
FORWARD_METRICS: tuple[str, ...] = (
    "deletion_auc",
    "insertion_auc",
    "deletion_rank_auc",
    "insertion_rank_auc",
    "road_morf",
    "infidelity",
)

#: Per-row scalar metrics stored for every method.
ROW_METRICS: tuple[str, ...] = (
    *FORWARD_METRICS,
    "mprt_spearman",
    "mprt_ssim",
    *(f"{s}{suffix}" for s in LOCALISATION_SCORES for suffix in ("", "_null")),
    "sparseness",
    "entropy",
    "occlusion_spearman",
    "occlusion_iou10",
)

#: What each summary metric means, its better direction ("+" higher, "-" lower, "" neither).
METRIC_INFO: Mapping[str, tuple[str, str]] = {
    "deletion_auc": ("-", "deletion AUC, most relevant first (score falls fast = low)"),
    "insertion_auc": ("+", "insertion AUC, most relevant first (score rises fast = high)"),
    "deletion_vs_random": ("+", "random map's deletion AUC minus this map's (paired)"),
    "insertion_vs_random": ("+", "this map's insertion AUC minus the random map's (paired)"),
    "deletion_rank_auc": (
        "+",
        "mean rank of the true syndrome during deletion (pushed down = high)",
    ),
    "insertion_rank_auc": (
        "-",
        "mean rank of the true syndrome during insertion (back to 1 = low)",
    ),
    "road_morf": ("-", "ROAD: score change with the most relevant pixels imputed (mean)"),
    "infidelity": ("-", "captum infidelity, Gaussian perturbation (normalised)"),
    "mprt_cascade_spearman": (
        "-",
        "Spearman to the original map, averaged over the cascading randomisation steps",
    ),
    "mprt_spearman": ("-", "Spearman to the original map after randomising every stage"),
    "mprt_ssim": ("-", "SSIM to the original map after randomising every stage"),
    "auroc": ("+", "AUROC of the map for the causal region (0.5 = chance)"),
    "auroc_vs_null": ("+", "AUROC minus the median over other syndromes' regions"),
    "relevance_mass": ("+", "share of positive relevance inside the causal region"),
    "relevance_mass_vs_null": ("+", "relevance mass minus the other-regions null"),
    "relevance_rank_vs_null": ("+", "relevance rank minus the other-regions null"),
    "pointing_game_vs_null": ("+", "pointing game minus the other-regions null"),
    "sparseness": ("", "Gini index of |map| (0 uniform, 1 one pixel)"),
    "entropy": ("", "entropy of |map| in nats (9.44 = uniform)"),
    "occlusion_spearman": ("+", "Spearman with the occlusion map"),
    "occlusion_iou10": ("+", "IoU of the top-10 % pixels with the occlusion map's"),
}
#: Summary metrics in table order.
SUMMARY_METRICS: tuple[str, ...] = tuple(METRIC_INFO)
#: The leaderboard's columns: one per question (faithful, sane, localises, agrees, simple).
LEADERBOARD_METRICS: tuple[str, ...] = (
    "deletion_vs_random",
    "insertion_vs_random",
    "road_morf",
    "mprt_cascade_spearman",
    "auroc_vs_null",
    "occlusion_spearman",
    "sparseness",
)
#: The manifest's face source when the faces are the gallery's own photos (leave-one-patient-out).
FACES_GALLERY = "gallery, leave-one-patient-out"
#: The committed demo scorecard (``gmx scorecard`` on the demo; see docs/metrics.md).
DEMO_SCORECARD_NAME = "scorecard.json"


@dataclass(frozen=True)
class ScorecardSettings:
    """What a scorecard computes (pinned in the run folder's manifest and the fingerprint).

    Attributes:
        methods: registry names (default: every registered method).
        steps: steps of the deletion/insertion curves.
        fill: their fill (``"blur"`` or ``"mean"``).
        road_percentiles: pytorch-grad-cam ROAD percentiles (pixels above it are imputed).
        infidelity_samples: captum infidelity perturbations per face.
        mprt_images: the first this-many faces (selection order) get the randomisation test.
        variants: gallery variants the maps are explained on (and averaged).
        n_boot, seed: bootstrap replicates and seed (selection, bootstrap, ROAD noise).
        extras: optional extra scores (keys of :data:`EXTRAS`); none by default, and then the
            settings (and the fingerprint) are exactly those of scorecards made before extras.
        sensitivity_samples, sensitivity_radius, sensitivity_images: the ``sensitivity`` extra:
            captum ``sensitivity_max`` perturbations per face, their radius in grey levels
            (:data:`SENSITIVITY_RADIUS`), and on the first this-many faces only (it re-explains
            every face ``samples + 1`` times per method).
    """

    methods: tuple[str, ...] = ()
    steps: int = 10
    fill: Fill = "blur"
    road_percentiles: tuple[int, ...] = (20, 50, 80)
    infidelity_samples: int = 8
    mprt_images: int = 10
    variants: tuple[int, ...] = (0,)
    n_boot: int = 1000
    seed: int = 0
    extras: tuple[str, ...] = ()
    sensitivity_samples: int = 4
    sensitivity_radius: float = SENSITIVITY_RADIUS
    sensitivity_images: int = 10

    def resolved(self) -> ScorecardSettings:
        """These settings with ``methods`` filled in (every registered method) and checked."""
        methods = tuple(self.methods) or tuple(list_methods())
        known = set(list_methods())
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {sorted(known)}")
        if self.steps < 1 or self.n_boot < 1 or self.mprt_images < 0:
            raise ValueError("steps and n_boot must be >= 1, mprt_images >= 0")
        if self.sensitivity_samples < 1 or self.sensitivity_images < 0:
            raise ValueError("sensitivity_samples must be >= 1, sensitivity_images >= 0")
        if not self.sensitivity_radius > 0:
            raise ValueError(f"sensitivity_radius must be > 0, got {self.sensitivity_radius}")
        bad = [e for e in self.extras if e not in EXTRAS]
        if bad:
            raise ValueError(f"unknown extras {bad}; known: {sorted(EXTRAS)}")
        extras = tuple(e for e in EXTRAS if e in self.extras)  # canonical order
        return ScorecardSettings(**{**asdict(self), "methods": methods, "extras": extras})

    def to_json(self) -> dict[str, Any]:
        data = json.loads(json.dumps(asdict(self)))
        if not data["extras"]:  # keeps the manifests and fingerprints of earlier scorecards
            del data["extras"]
        for extra, names in EXTRA_SETTINGS.items():
            if extra not in self.extras:
                for name in names:
                    del data[name]
        return data

    def extra_columns(self) -> tuple[str, ...]:
        """The per-row columns the extras add."""
        return tuple(c for e in self.extras for c in EXTRAS[e])


def fingerprint(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a JSON-able configuration (sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def column(method: str, metric: str) -> str:
    """Stored array name of one method's per-row metric or curve."""
    return f"{method}:{metric}"


# ------------------------------------------------------------------------------------ selection
def held_out_rows(
    labels: np.ndarray,
    splits: np.ndarray,
    image_ids: np.ndarray,
    gallery: Gallery,
    *,
    split: str = "test",
    n_images: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Rows of ``split`` whose syndrome is in the gallery and whose image is not, stratified.

    Syndromes take turns (each one's rows in a seeded random order), so any prefix covers the
    syndromes as evenly as it can. ``n_images = 0``: all of them.

    Raises:
        ValueError: if nothing is selected.
    """
    in_gallery = {im.image_id for im in gallery.images}
    ok = (
        (np.asarray(splits) == split)
        & np.isin(labels, sorted(gallery.syndromes))
        & ~np.isin(image_ids, sorted(in_gallery))
    )
    order = _stratified(np.asarray(labels), ok, seed)
    if not order.size:
        raise ValueError(f"no held-out images of split {split!r} with a syndrome in the gallery")
    return order[: n_images or None]


def _stratified(labels: np.ndarray, ok: np.ndarray, seed: int) -> np.ndarray:
    """Rows where ``ok``, syndromes taking turns (each one's rows in a seeded random order)."""
    rng = np.random.default_rng(seed)
    queues = [
        list(rng.permutation(np.flatnonzero(ok & (labels == s)))) for s in np.unique(labels[ok])
    ]
    order: list[int] = []
    while any(queues):
        for q in queues:
            if q:
                order.append(int(q.pop(0)))
    return np.asarray(order, np.int64)


def gallery_rows(gallery: Gallery, *, n_images: int = 0, seed: int = 0) -> np.ndarray:
    """Gallery image positions to score with the gallery as the source of faces, stratified as
    :func:`held_out_rows`: images whose syndrome has an image of another patient (so it still has
    a target once the image's own patient is left out, as ``gmx gallery calibrate`` does).

    Raises:
        ValueError: if the gallery has no photos, or no image qualifies.
    """
    if gallery.photos is None:
        raise ValueError(
            f"gallery {gallery.name!r} stores no photos: a scorecard over its images needs them "
            "(build it with photos)"
        )
    syn = np.array([im.syndrome_id for im in gallery.images])
    sub = np.array([im.subject_id for im in gallery.images])
    ok = np.array(
        [np.any((syn == s) & (sub != p)) for s, p in zip(syn, sub, strict=True)], dtype=bool
    )
    order = _stratified(syn, ok, seed)
    if not order.size:
        raise ValueError(
            f"gallery {gallery.name!r}: no syndrome has images of two patients, so no image has a "
            "target once its own patient is left out"
        )
    return order[: n_images or None]


def syndrome_score_targets(
    gallery: Gallery, embeddings: np.ndarray, labels: Sequence[str]
) -> list[SimilarityTarget]:
    """Per face, GestaltMatcher's score of its syndrome: the nearest image of the syndrome (mean
    cosine over the gallery's variants), re-ranked over all of the syndrome's images."""
    out = []
    syn = np.array([im.syndrome_id for im in gallery.images])
    for e, s in zip(np.asarray(embeddings, np.float64), labels, strict=True):
        rows = np.flatnonzero(syn == s)
        g = gallery.embeddings[rows].astype(np.float64)
        cos = np.einsum("gvd,vd->gv", g, e) / (
            np.linalg.norm(g, axis=-1) * np.linalg.norm(e, axis=-1)[None]
        )
        best = rows[int(np.argmax(cos.mean(axis=1)))]
        out.append(
            SimilarityTarget(
                gallery.embeddings[best], str(s), syndrome_embeddings=gallery.embeddings[rows]
            )
        )
    return out


# ------------------------------------------------------------------ data randomisation control
@dataclass(frozen=True)
class DataControl:
    """The data-randomisation control (Adebayo et al. 2018): a model of the same recipe trained
    on shuffled labels, and the gallery's own photos embedded by it (:func:`data_control`), so each
    face is explained against its syndrome's score *in that model's* embedding.

    Attributes:
        model: the shuffled-label model (a ``LoadedModel``).
        gallery: the gallery re-embedded by it (same images, variants and order).
    """

    model: Any
    gallery: Gallery

    def without_subject(self, subject: str) -> DataControl:
        """The control with its gallery's images of one patient left out."""
        keep = np.array([im.subject_id != subject for im in self.gallery.images], dtype=bool)
        return DataControl(self.model, self.gallery.subset(keep))


def data_control(
    model: Any, gallery: Gallery, syndromes: Sequence[str] | None = None
) -> DataControl:
    """``gallery``'s photos embedded by ``model`` (one model, the gallery's TTA variants).

    ``syndromes``: embed only these syndromes' images (a face's target and re-ranking score only
    use its own syndrome's images); default every image.

    Raises:
        ValueError: a gallery without photos, or one made by an ensemble (the control is one model).
    """
    import dataclasses

    from gmx.encode import Ensemble

    if syndromes is not None:
        wanted = set(syndromes)
        gallery = gallery.subset(
            [i for i, im in enumerate(gallery.images) if im.syndrome_id in wanted]
        )
    if gallery.photos is None:
        raise ValueError(
            f"gallery {gallery.name!r} stores no photos: the data-randomisation control embeds them"
        )
    ens = Ensemble(
        [model],
        flip=any(v.flip for v in gallery.variants),
        grey=any(v.grey for v in gallery.variants),
    )
    if tuple(ens.variants) != tuple(gallery.variants):
        raise ValueError(
            "the data-randomisation control is one model; gallery variants "
            f"{[v.label for v in gallery.variants]} need an ensemble"
        )
    return DataControl(
        model,
        dataclasses.replace(
            gallery,
            embeddings=ens.embed(gallery.photos),
            model_fingerprint=ens.fingerprint,
            calibration=None,
        ),
    )


def demo_shuffled_model_path() -> Path:
    """The committed shuffled-label control of the demo model."""
    from gmx.config import DEMO_DIR

    return DEMO_DIR / DEMO_SHUFFLED_MODEL_NAME


# ------------------------------------------------------------------------------ per-row scoring
def _held_out_maps(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    methods: Sequence[str],
    variants: Sequence[int],
) -> dict[str, np.ndarray]:
    """method -> ``(n, 112, 112)`` template maps, each face against its own syndrome (row order)."""
    n = len(faces)
    out = {m: np.full((n, *faces.shape[1:3]), np.nan, np.float32) for m in methods}
    for s in dict.fromkeys(labels.tolist()):
        rows = np.flatnonzero(labels == s)
        got = explain_against(
            models, gallery, faces[rows], embeddings[rows], s, methods=methods, variants=variants
        )
        for m, arr in got.items():
            out[m][rows] = template_maps(arr)
    return out


def scorecard_maps(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    labels: Sequence[str],
    methods: Sequence[str],
    variants: Sequence[int] = (0,),
) -> dict[str, np.ndarray]:
    """The maps a scorecard scores: method -> ``(n, 112, 112)``, each face explained against its
    own syndrome (NaN-free)."""
    from gmx.aggregate.run import gallery_ensemble

    faces = np.ascontiguousarray(faces)
    emb = gallery_ensemble(models, gallery).embed(faces)
    lab = np.asarray(labels).astype(str)
    got = _held_out_maps(models, gallery, faces, emb, lab, methods, variants)
    return {m: np.nan_to_num(a) for m, a in got.items()}


def manifest_config(
    models: Any,
    gallery: Gallery,
    image_ids: Sequence[str],
    settings: ScorecardSettings,
    *,
    control: DataControl | None = None,
    leave_patient_out: bool = False,
) -> dict[str, Any]:
    """The run folder's manifest configuration (what :func:`fingerprint` hashes); the control's
    model fingerprint and the face source are only recorded when used (earlier fingerprints
    stay)."""
    from gmx.aggregate.run import gallery_ensemble

    s = settings.resolved()
    more: dict[str, Any] = {}
    if control is not None and "data_randomisation" in s.extras:
        more["control_model_fingerprint"] = control.gallery.model_fingerprint
    if leave_patient_out:
        more["faces"] = FACES_GALLERY
    return {
        **more,
        "kind": "scorecard",
        "scorecard_version": SCORECARD_VERSION,
        "keys": [str(k) for k in image_ids],
        "methods": list(s.methods),
        "settings": s.to_json(),
        "model_fingerprint": gallery_ensemble(models, gallery).fingerprint,
        "gallery": gallery.name,
        "gallery_version": gallery.version,
    }


def _road(
    backbone: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    maps: np.ndarray,
    targets: Sequence[SimilarityTarget],
    percentiles: Sequence[int],
    seed: int,
) -> np.ndarray:
    """pytorch-grad-cam's ROAD (most relevant first, averaged over ``percentiles``) on the
    similarity target of variant 0: ``(n,)`` mean score change after imputation.

    ``backbone`` is called on the clean batch once per percentile (pytorch-grad-cam's way); a
    :class:`~gmx.metrics.robustness.ForwardMemo` around it makes that one pass per batch."""
    from pytorch_grad_cam.metrics.road import ROADMostRelevantFirstAverage

    bound = [t.bind(0, None) for t in targets]
    # pytorch-grad-cam calls each target on one output row; ours score (N, D) -> (N,).
    callables = [lambda row, f=f: f(row[None])[0] for f in bound]
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        metric = ROADMostRelevantFirstAverage(list(percentiles))
        got = metric(inputs, np.asarray(maps, np.float32), callables, backbone)
    return np.asarray(got, np.float64).reshape(-1)


def forward_metrics(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    maps: Mapping[str, np.ndarray],
    targets: Sequence[SimilarityTarget],
    labels: Sequence[str],
    settings: ScorecardSettings,
    *,
    shared: bool = True,
    lap: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """The per-face metrics that need forward passes, for every method of ``maps``: deletion and
    insertion curves, their AUCs and rank AUCs (re-ranked against ``gallery``), ROAD and captum's
    infidelity (variant 0).

    The metric engine of :func:`score_rows`: every curve of every face and method shares the
    forward passes (:func:`gmx.metrics.faithfulness_curves`); with ``shared`` (default), ROAD's
    clean batch runs once for all methods and percentiles instead of once per method and
    percentile, and each face's infidelity passes (clean and perturbed: they depend on the face and
    the seed only) once for all methods instead of once per method
    (:class:`~gmx.metrics.robustness.ForwardMemo`). ``shared=False`` recomputes them per method;
    the values are the same bit for bit.

    Args:
        models, gallery: as :func:`score_rows`.
        faces: ``(n, 112, 112, 3)`` uint8; maps: method -> ``(n, 112, 112)`` NaN-free maps;
        targets: the faces' own-syndrome targets (:func:`syndrome_score_targets`); labels: their
            syndromes.
        settings: resolved settings (``steps``, ``fill``, ``road_percentiles``,
            ``infidelity_samples``, ``seed``).
        lap: called with the name of each finished stage (timing logs).

    Returns:
        :func:`column` names -> ``(n,)`` ``deletion_auc``, ``insertion_auc``, their ``_rank_auc``,
        ``road_morf``, ``infidelity`` and ``(n, steps + 1)`` ``deletion_curve``,
        ``insertion_curve``.
    """
    s = settings
    n = len(faces)
    lab = [str(x) for x in labels]
    out: dict[str, np.ndarray] = {}
    for m in maps:
        for metric in FORWARD_METRICS:
            out[column(m, metric)] = np.full(n, np.nan)

    # Faithfulness: every curve of every face and method shares the forward passes.
    curves = faithfulness_curves(
        models, faces, maps, targets, list(gallery.variants), modes=("deletion", "insertion"),
        orders=("most",), fills=(s.fill,), steps=s.steps, gallery=gallery, syndromes=lab,
    )  # fmt: skip
    for c in curves:
        key = column(c.method, f"{c.mode}_curve")
        out.setdefault(key, np.full((n, s.steps + 1), np.nan))[c.face] = c.scores
        out[column(c.method, f"{c.mode}_auc")][c.face] = c.auc
        out[column(c.method, f"{c.mode}_rank_auc")][c.face] = c.rank_auc
    if lap is not None:
        lap("deletion/insertion curves")

    # ROAD and infidelity on variant 0 (no flip: template pixels are input pixels).
    first = models[0] if isinstance(models, (list, tuple)) else models
    pair = as_explain_model(first)
    inputs = variant_rows(faces, gallery.variants[0], pair.card)
    road_model = ForwardMemo(pair.backbone) if shared else pair.backbone
    for m in maps:
        out[column(m, "road_morf")] = _road(
            road_model, inputs, maps[m], targets, s.road_percentiles, s.seed
        )
    for i in range(n):
        face_forward = ForwardMemo(similarity_forward(first, targets[i], 0)) if shared else None
        for m in maps:
            fwd = face_forward or similarity_forward(first, targets[i], 0)
            got = infidelity(
                fwd, inputs[i : i + 1], torch.from_numpy(maps[m][i : i + 1]),
                n_samples=s.infidelity_samples, seed=s.seed + i,
            )  # fmt: skip
            out[column(m, "infidelity")][i] = float(got[0])
    if lap is not None:
        lap("ROAD and infidelity")
    return out


def score_rows(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    labels: Sequence[str],
    masks: np.ndarray | None,
    regions: Mapping[str, np.ndarray],
    settings: ScorecardSettings,
    *,
    mprt_rows: np.ndarray | None = None,
    sensitivity_rows: np.ndarray | None = None,
    control: DataControl | None = None,
) -> dict[str, np.ndarray]:
    """Every per-row metric and curve of ``faces`` for every method of ``settings``.

    Args:
        models: the gallery's model (a ``LoadedModel``); never modified (randomisation runs on a
            private deep copy).
        gallery: the gallery (targets, re-ranking).
        faces: ``(n, 112, 112, 3)`` uint8 held-out faces; labels: their syndromes.
        masks: ``(n, 112, 112)`` bool their causal masks; ``None``: not known (e.g. gallery
            photos), and the localisation columns stay NaN.
        regions: syndrome -> ``(112, 112)`` bool region (the other-regions null).
        settings: resolved settings.
        mprt_rows: ``(n,)`` bool rows that get the randomisation test (default none).
        sensitivity_rows: ``(n,)`` bool rows that get ``sensitivity_max`` (the ``sensitivity``
            extra; default none).
        control: the shuffled-label model and its gallery (the ``data_randomisation`` extra).

    Returns:
        :func:`column` names -> ``(n,)`` scalars (NaN where not computed) and ``(n, k)`` curves
        (``deletion_curve``, ``insertion_curve`` of ``steps + 1`` points, ``mprt_curve`` of one
        Spearman per cascading step).
    """
    from gmx.aggregate.run import gallery_ensemble

    s = settings.resolved()
    lab = np.asarray(labels).astype(str)
    n = len(faces)
    clock = [time.perf_counter()]

    def lap(what: str) -> None:
        now = time.perf_counter()
        logger.info("scorecard: %s of %d face(s) in %.1f s", what, n, now - clock[0])
        clock[0] = now

    faces = np.ascontiguousarray(faces)
    emb = gallery_ensemble(models, gallery).embed(faces)
    maps = _held_out_maps(models, gallery, faces, emb, lab, s.methods, s.variants)
    maps = {m: np.nan_to_num(a) for m, a in maps.items()}
    out: dict[str, np.ndarray] = {}
    for m in s.methods:
        for metric in ROW_METRICS:
            out[column(m, metric)] = np.full(n, np.nan)
    targets = syndrome_score_targets(gallery, emb, lab)
    lap("maps")

    out.update(forward_metrics(models, gallery, faces, maps, targets, lab, s, lap=lap))
    first = models[0] if isinstance(models, (list, tuple)) else models

    if "sensitivity" in s.extras:
        for m in s.methods:
            out[column(m, "sensitivity_max")] = np.full(n, np.nan)
        picked = np.zeros(n, bool) if sensitivity_rows is None else np.asarray(sensitivity_rows)
        for i in np.flatnonzero(picked):
            for m in s.methods:
                out[column(m, "sensitivity_max")][i] = _sensitivity(
                    models, gallery, faces[i], emb[i], str(lab[i]), m, s, seed=s.seed + int(i)
                )
        lap("sensitivity_max")

    if "data_randomisation" in s.extras:
        if control is None:
            raise ValueError("the data_randomisation extra needs the shuffled-label control")
        c_emb = gallery_ensemble(control.model, control.gallery).embed(faces)
        ctrl = _held_out_maps(
            control.model, control.gallery, faces, c_emb, lab, s.methods, s.variants
        )
        for m in s.methods:
            out[column(m, "data_spearman")] = np.full(n, np.nan)
            out[column(m, "data_ssim")] = np.full(n, np.nan)
            for i in range(n):
                rho, ssim = map_similarity(maps[m][i], np.nan_to_num(ctrl[m][i]))
                out[column(m, "data_spearman")][i] = rho
                out[column(m, "data_ssim")][i] = ssim
        lap("data randomisation")

    if "completeness" in s.extras:
        for m in s.methods:
            out[column(m, "completeness_residual")] = np.full(n, np.nan)
            if m in COMPLETENESS_METHODS:
                for i in range(n):
                    got = method_completeness(first, faces[i], targets[i], m)
                    out[column(m, "completeness_residual")][i] = got.relative
        lap("completeness")

    # Sanity: cascading (and, as an extra, independent) randomisation on a private copy (the
    # caller's model is never touched).
    chosen = np.flatnonzero(mprt_rows) if mprt_rows is not None else np.zeros(0, np.int64)
    for name in s.extra_columns():
        if name.startswith("mprt_") and not name.endswith("_curve"):
            for m in s.methods:
                out[column(m, name)] = np.full(n, np.nan)
    if chosen.size:
        # The first model (the one variant 0 explains) is randomised, on a private copy.
        private = copy.deepcopy(first)
        backbone = as_explain_model(private).backbone
        swapped = [private, *models[1:]] if isinstance(models, (list, tuple)) else private
        edge = None
        if "mprt_hog" in s.extras:
            edge = maps["edges"] if "edges" in maps else np.nan_to_num(_held_out_maps(
                models, gallery, faces, emb, lab, ["edges"], s.variants)["edges"])  # fmt: skip
        schedules = [("mprt_curve", cascading_steps(IRESNET_STAGES))]
        if "mprt_independent" in s.extras:
            schedules.append(("mprt_independent_curve", independent_steps(IRESNET_STAGES)))
        for curve, steps in schedules:
            hogs = {m: np.full((n, len(steps)), np.nan) for m in s.methods}
            for m in s.methods:
                out[column(m, curve)] = np.full((n, len(steps)), np.nan)
            for k, stages in enumerate(steps):
                with randomized_stages(backbone, stages, seed=s.seed):
                    rand = _held_out_maps(
                        swapped, gallery, faces[chosen], emb[chosen], lab[chosen], s.methods,
                        s.variants,
                    )  # fmt: skip
                for m in s.methods:
                    r = np.nan_to_num(rand[m])
                    for j, i in enumerate(chosen):
                        if curve == "mprt_curve" and edge is None:
                            rho, ssim = map_similarity(maps[m][i], r[j])
                            hog = np.nan
                        else:
                            sim = map_similarities(maps[m][i], r[j])
                            rho, ssim, hog = sim.spearman, sim.ssim, sim.hog
                        out[column(m, curve)][i, k] = rho
                        hogs[m][i, k] = hog
                        if curve == "mprt_curve" and k == len(steps) - 1:
                            out[column(m, "mprt_spearman")][i] = rho
                            out[column(m, "mprt_ssim")][i] = ssim
                            if edge is not None:
                                to_edge = map_similarities(edge[i], r[j])
                                out[column(m, "mprt_hog")][i] = hog
                                out[column(m, "mprt_edge_spearman")][i] = to_edge.spearman
                                out[column(m, "mprt_edge_hog")][i] = to_edge.hog
                    if curve == "mprt_independent_curve" and k == len(steps) - 1:
                        c = out[column(m, curve)][chosen]
                        out[column(m, "mprt_independent_spearman")][chosen] = c.mean(axis=1)
                        out[column(m, "mprt_independent_hog")][chosen] = hogs[m][chosen].mean(
                            axis=1
                        )
        lap("randomisation test")

    # Localisation (own mask; null: median over the other syndromes' regions), complexity,
    # agreement with occlusion.
    for i in range(n):
        others = [r for syn, r in regions.items() if syn != lab[i]]
        for m in s.methods:
            a = maps[m][i]
            if masks is not None:
                own = localisation_metrics(a, np.asarray(masks[i], bool))
                null = [localisation_metrics(a, r) for r in others]
                for name in LOCALISATION_SCORES:
                    out[column(m, name)][i] = getattr(own, name)
                    vals = [getattr(x, name) for x in null]
                    out[column(m, f"{name}_null")][i] = (
                        float(np.nanmedian(vals)) if np.isfinite(vals).any() else np.nan
                    )
            out[column(m, "sparseness")][i] = sparseness(a)
            out[column(m, "entropy")][i] = entropy(a)
            if REFERENCE_METHOD in maps:
                rho, iou = map_agreement(a, maps[REFERENCE_METHOD][i])
                out[column(m, "occlusion_spearman")][i] = rho
                out[column(m, "occlusion_iou10")][i] = iou
    if "agreement" in s.extras:
        for i in range(n):
            a = agreement_matrix({m: maps[m][i] for m in s.methods})
            for k, m in enumerate(s.methods):
                out.setdefault(
                    column(m, "agreement_spearman"), np.full((n, len(s.methods)), np.nan)
                )
                out.setdefault(column(m, "agreement_iou10"), np.full((n, len(s.methods)), np.nan))
                out[column(m, "agreement_spearman")][i] = a.spearman[k]
                out[column(m, "agreement_iou10")][i] = a.iou[k]
    lap("localisation, complexity, agreement")
    return out


def _sensitivity(
    models: Any,
    gallery: Gallery,
    face: np.ndarray,
    embedding: np.ndarray,
    label: str,
    method: str,
    s: ScorecardSettings,
    *,
    seed: int,
) -> float:
    """captum's ``sensitivity_max`` of one method's map of one face (its target fixed: the clean
    face's), the noise added to the face's grey levels and rounded back to 8 bits."""

    def explanation(x: torch.Tensor) -> torch.Tensor:
        u8 = x.round().clamp(0, 255).to(torch.uint8).numpy()
        k = len(u8)
        got = _held_out_maps(
            models, gallery, u8, np.repeat(embedding[None], k, axis=0), np.full(k, label),
            [method], s.variants,
        )[method]  # fmt: skip
        return torch.from_numpy(np.nan_to_num(got)).to(torch.float64)

    x = torch.from_numpy(np.asarray(face, np.float64)[None])
    got = sensitivity_max(
        explanation, x, radius=s.sensitivity_radius, n_samples=s.sensitivity_samples, seed=seed
    )
    return float(got[0])


# ---------------------------------------------------------------------------------- run folder
def scorecard_columns(methods: Sequence[str], extras: Sequence[str] = ()) -> list[str]:
    """Every stored array name of a run over ``methods`` (with the columns of ``extras``)."""
    curves = ("deletion_curve", "insertion_curve", "mprt_curve")
    more = tuple(c for e in EXTRAS if e in extras for c in EXTRAS[e])
    return [column(m, x) for m in methods for x in (*ROW_METRICS, *curves, *more)]


def run_scorecard(
    models: Any,
    gallery: Gallery,
    out_dir: str | Path,
    *,
    faces: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray | None,
    image_ids: Sequence[str],
    regions: Mapping[str, np.ndarray],
    settings: ScorecardSettings,
    chunk: int = 2,
    shard: Shard | None = None,
    progress: Callable[[int, int], None] | None = None,
    control: DataControl | None = None,
    subjects: Sequence[str] | None = None,
) -> BatchRun:
    """Score ``faces`` into run folder ``out_dir`` (resumable; ``shard`` = every n-th chunk).

    The manifest pins the settings, the image ids, the model fingerprint and the gallery, so a
    rerun with other settings raises :class:`~gmx.aggregate.store.BatchStoreError`. Row ``i``
    gets the randomisation test when ``i < settings.mprt_images`` and ``sensitivity_max`` when
    ``i < settings.sensitivity_images`` (with the ``sensitivity`` extra).

    ``masks = None``: no causal masks (no localisation). ``subjects``: the faces are the
    gallery's own photos (:func:`gallery_rows`); each face is scored against the gallery without
    the images of its patient ``subjects[i]`` (leave-one-patient-out), one face at a time.
    ``control``: the shuffled-label control (:func:`data_control`; the ``data_randomisation``
    extra).
    """
    import time

    s = settings.resolved()
    config = manifest_config(
        models, gallery, image_ids, s, control=control, leave_patient_out=subjects is not None
    )
    store = BatchStore(out_dir, config, chunk=chunk)
    shard = shard or Shard()
    start = time.perf_counter()
    mine = [k for k in range(store.n_chunks) if shard.owns(k)]
    todo = store.pending(shard)
    total = sum(len(store.chunk_rows(k)) for k in todo)
    done = 0
    if progress is not None:
        progress(0, total)
    for k in todo:
        rows = np.asarray(store.chunk_rows(k))
        if subjects is None:
            got = score_rows(
                models, gallery, faces[rows], labels[rows], None if masks is None else masks[rows],
                regions, s, mprt_rows=rows < s.mprt_images,
                sensitivity_rows=rows < s.sensitivity_images, control=control,
            )  # fmt: skip
        else:
            got = _leave_patient_out(
                models, gallery, faces, labels, masks, regions, s, rows, subjects, control
            )
        n_steps = len(IRESNET_STAGES)
        for m in s.methods:  # every chunk stores every column (NaN where not computed)
            for curve in ("mprt_curve", *(c for c in s.extra_columns() if c.endswith("_curve"))):
                got.setdefault(column(m, curve), np.full((len(rows), n_steps), np.nan))
        store.write(k, got)
        done += len(rows)
        if progress is not None:
            progress(done, total)
    return BatchRun(
        store.root, store.n_chunks, len(todo), len(mine) - len(todo), done,
        time.perf_counter() - start,
    )  # fmt: skip


def _leave_patient_out(
    models: Any,
    gallery: Gallery,
    faces: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray | None,
    regions: Mapping[str, np.ndarray],
    s: ScorecardSettings,
    rows: np.ndarray,
    subjects: Sequence[str],
    control: DataControl | None,
) -> dict[str, np.ndarray]:
    """:func:`score_rows` of ``rows``, each face against the gallery without its own patient."""
    sub = np.array([im.subject_id for im in gallery.images])
    parts = []
    for r in rows:
        keep = sub != subjects[r]
        one = slice(int(r), int(r) + 1)
        parts.append(
            score_rows(
                models,
                gallery.subset(keep),
                faces[one],
                labels[one],
                None if masks is None else masks[one],
                regions,
                s,
                mprt_rows=np.array([r < s.mprt_images]),
                sensitivity_rows=np.array([r < s.sensitivity_images]),
                control=None if control is None else control.without_subject(subjects[r]),
            )
        )
    # Rows outside the randomisation test lack its curves: NaN rows of the same width.
    shapes = {k: v.shape[1:] for p in parts for k, v in p.items()}
    return {
        k: np.concatenate([p.get(k, np.full((1, *shape), np.nan)) for p in parts])
        for k, shape in shapes.items()
    }


def run_scorecard_sharded(
    models: Any,
    gallery: Gallery,
    out_dir: str | Path,
    *,
    n_shards: int,
    backend: Backend = "local",
    address: str | None = None,
    num_cpus: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **kwargs: Any,
) -> BatchRun:
    """:func:`run_scorecard` as ``n_shards`` shards (:func:`gmx.metrics.backends.run_shards`):
    the same chunks, the same folder, the same result as one local run; ``backend="ray"`` runs
    the shards as Ray tasks (``address``: a cluster; ``None``: a local Ray instance with
    ``num_cpus`` CPUs). ``kwargs``: :func:`run_scorecard`'s (not ``shard``, ``progress``).
    ``progress`` counts finished shards."""
    start = time.perf_counter()

    def task(shard: Shard) -> BatchRun:
        return run_scorecard(models, gallery, out_dir, shard=shard, **kwargs)

    if progress is not None:
        progress(0, n_shards)
    done = [0]

    def on_done(_: int, __: BatchRun) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], n_shards)

    runs = run_shards(task, n_shards, backend, address=address, num_cpus=num_cpus, on_done=on_done)
    return BatchRun(
        Path(out_dir), runs[0].chunks_total, sum(r.chunks_done_now for r in runs),
        sum(r.chunks_skipped for r in runs), sum(r.rows_done_now for r in runs),
        time.perf_counter() - start,
    )  # fmt: skip


def load_rows(out_dir: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray]:
    """A scorecard run folder's manifest, stored arrays (NaN rows unfinished) and finished rows."""
    manifest = read_manifest(out_dir)
    if manifest.get("kind") != "scorecard":
        raise ValueError(f"{out_dir} is not a scorecard run folder")
    config = {k: v for k, v in manifest.items() if k not in ("store_version", "chunk")}
    store = BatchStore(out_dir, config, chunk=manifest["chunk"])
    extras = manifest["settings"].get("extras", ())
    arrays, finished = store.load(scorecard_columns(manifest["methods"], extras))
    return manifest, arrays, finished


# ------------------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class MetricSummary:
    """Mean over images with its bootstrap 95 % interval; ``n`` images with a finite value."""

    mean: float
    ci_low: float
    ci_high: float
    n: int


def bootstrap_mean(values: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> MetricSummary:
    """Mean of the finite ``values`` and its percentile bootstrap 95 % interval (seeded)."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return MetricSummary(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return MetricSummary(float(v.mean()), float(lo), float(hi), int(v.size))


#: Each verdict's wording when it holds and when it does not (badges on Explain, the case report).
BADGE_WORDS: Mapping[str, tuple[str, str]] = {
    "passes sanity": ("passes sanity", "fails sanity"),
    "faithful": ("faithful", "not faithful"),
    "localises": ("localises", "does not localise"),
}


#: What each half of the sanity verdict randomises, in a badge's words.
SANITY_HALVES = {
    "model randomisation": "randomised weights",
    "data randomisation": "shuffled labels",
}


@dataclass(frozen=True)
class Verdict:
    """Plain-language verdict of one method; ``None``: not judged (the method is the null, or the
    metric was not computed)."""

    passes_sanity: bool | None
    faithful: bool | None
    localises: bool | None
    #: The two halves of ``passes_sanity`` where known: the model randomisation (MPRT cascade) and
    #: the data randomisation (shuffled-label control) test; ``None``: not run / not recorded.
    model_sanity: bool | None = None
    data_sanity: bool | None = None

    def sanity_parts(self) -> dict[str, bool | None]:
        return {
            "model randomisation": self.model_sanity,
            "data randomisation": self.data_sanity,
        }

    def badges(self) -> dict[str, bool | None]:
        return {
            "passes sanity": self.passes_sanity,
            "faithful": self.faithful,
            "localises": self.localises,
        }

    def words(self) -> tuple[tuple[str, bool], ...]:
        """The judged verdicts in words, e.g. ``(("passes sanity", True), ("not faithful",
        False))`` (:data:`BADGE_WORDS`); verdicts not judged are left out. A failed sanity verdict
        names its failed half when only one of the two tests failed, e.g. ``"fails sanity
        (shuffled labels)"``."""
        out = []
        for name, value in self.badges().items():
            if value is None:
                continue
            text = BADGE_WORDS[name][0] if value else BADGE_WORDS[name][1]
            if name == "passes sanity" and not value:
                text += self._failed_half()
            out.append((text, value))
        return tuple(out)

    def _failed_half(self) -> str:
        if self.model_sanity is True and self.data_sanity is False:
            return f" ({SANITY_HALVES['data randomisation']})"
        if self.model_sanity is False and self.data_sanity is True:
            return f" ({SANITY_HALVES['model randomisation']})"
        return ""

    def _sanity_sentence(self, say: Callable[[bool | None, str, str, str], str]) -> str:
        model, data = self.model_sanity, self.data_sanity
        if data is None or model is None:  # one test (or an older file): the cascade's words
            return say(
                self.passes_sanity,
                "Changes when the model's weights are randomised (passes the sanity check).",
                "Stays similar when the model's weights are randomised (fails the sanity "
                "check: it shows the image more than the model).",
                "Sanity not tested.",
            )
        if model and data:
            return (
                "Changes when the model's weights are randomised and when the model is trained "
                "on shuffled labels (passes both sanity checks)."
            )
        if model:
            return (
                "Changes when the model's weights are randomised, but stays similar for a model "
                "trained on shuffled labels (fails the data randomisation check: it shows more "
                "of the image than of what the labels taught)."
            )
        if data:
            return (
                "Stays similar when the model's weights are randomised (fails the model "
                "randomisation check: it shows the image more than the model), though it "
                "changes for a model trained on shuffled labels."
            )
        return (
            "Stays similar when the model's weights are randomised and for a model trained on "
            "shuffled labels (fails both sanity checks: it shows the image more than the model)."
        )

    def sentence(self) -> str:
        """One sentence per judgement."""

        def say(value: bool | None, yes: str, no: str, unknown: str) -> str:
            return unknown if value is None else (yes if value else no)

        return " ".join(
            (
                self._sanity_sentence(say),
                say(
                    self.faithful,
                    "Removing its top pixels lowers the score, and adding them back raises it, "
                    "faster than a random map (faithful).",
                    "Not shown to beat a random map at deletion and insertion (not faithful).",
                    "Faithfulness not judged (the random map is the reference).",
                ),
                say(
                    self.localises,
                    "Finds the known causal region better than other syndromes' regions "
                    "(localises).",
                    "Does not find the known causal region better than other syndromes' regions.",
                    "Localisation not judged.",
                ),
            )
        )


def verdict(table: Mapping[str, MetricSummary], *, is_null: bool = False) -> Verdict:
    """The rules (see ``docs/metrics.md``), from one method's summary table.

    * passes sanity: the 95 % CI of ``mprt_cascade_spearman`` (per face, the Spearman to the
      original map averaged over the cascading steps, top stage first) lies below
      :data:`SANITY_MAX_SPEARMAN`: the map must change early in the cascade, not only once the
      stem is random (Guided Backprop's classic failure); and, when the data randomisation test
      was run, so does the CI of ``data_spearman`` (the map of the model trained on shuffled
      labels must differ: a method flagged here shows the face, not what the labels taught);
    * faithful: both paired differences to the random map, ``deletion_vs_random`` and
      ``insertion_vs_random``, have a 95 % CI above 0 (``None`` for the random map itself);
    * localises: the 95 % CI of ``auroc_vs_null`` (own region minus the median over other
      syndromes' regions) lies above 0.
    """

    def known(name: str) -> MetricSummary | None:
        got = table.get(name)
        return got if got is not None and got.n > 0 and np.isfinite(got.mean) else None

    mprt = known("mprt_cascade_spearman")
    model_ok = None if mprt is None else bool(mprt.ci_high < SANITY_MAX_SPEARMAN)
    data = known("data_spearman")
    data_ok = None if data is None else bool(data.ci_high < SANITY_MAX_SPEARMAN)
    sanity = model_ok
    if data_ok is not None:  # the data randomisation test, when computed, must pass too
        sanity = data_ok and model_ok is not False
    d, i = known("deletion_vs_random"), known("insertion_vs_random")
    faithful = None if is_null or d is None or i is None else bool(d.ci_low > 0 and i.ci_low > 0)
    loc = known("auroc_vs_null")
    localises = None if loc is None else bool(loc.ci_low > 0)
    return Verdict(sanity, faithful, localises, model_ok, data_ok)


@dataclass(frozen=True)
class Scorecard:
    """The summary of a scorecard run.

    Attributes:
        methods: registry names, in run order.
        table: method -> summary metric (:data:`SUMMARY_METRICS`) -> :class:`MetricSummary`.
        verdicts: method -> :class:`Verdict`.
        curves: method -> ``"deletion"``/``"insertion"`` (mean score per step) and ``"mprt"``
            (mean Spearman per cascading step) -> list of floats.
        fractions: x axis of the deletion/insertion curves; mprt_stages: x labels of ``"mprt"``.
        n_images, n_mprt_images: faces scored (all, and with the randomisation test).
        settings: the run's settings; fingerprint: SHA-256 of the run's manifest configuration
            (settings, image ids, model fingerprint, gallery); model_fingerprint, gallery.
    """

    methods: tuple[str, ...]
    table: Mapping[str, Mapping[str, MetricSummary]]
    verdicts: Mapping[str, Verdict]
    curves: Mapping[str, Mapping[str, tuple[float, ...]]]
    fractions: tuple[float, ...]
    mprt_stages: tuple[str, ...]
    n_images: int
    n_mprt_images: int
    settings: Mapping[str, Any]
    fingerprint: str
    model_fingerprint: str = ""
    gallery: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """One row per method and metric: method, metric, mean, ci_low, ci_high, n, better."""
        out = []
        for m in self.methods:
            for metric, got in self.table[m].items():
                out.append(
                    {
                        "method": m,
                        "metric": metric,
                        "mean": got.mean,
                        "ci_low": got.ci_low,
                        "ci_high": got.ci_high,
                        "n": got.n,
                        "better": {**METRIC_INFO, **EXTRA_METRIC_INFO}.get(metric, ("", ""))[0],
                    }
                )
        return out

    def to_csv(self) -> str:
        buf = io.StringIO()
        fields = ["method", "metric", "mean", "ci_low", "ci_high", "n", "better"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )
        return buf.getvalue()

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), 6)

        return {
            "scorecard_version": SCORECARD_VERSION,
            "fingerprint": self.fingerprint,
            "model_fingerprint": self.model_fingerprint,
            "gallery": self.gallery,
            "settings": dict(self.settings),
            "n_images": self.n_images,
            "n_mprt_images": self.n_mprt_images,
            "methods": list(self.methods),
            "metrics": {
                k: {"better": v[0], "meaning": v[1]}
                for k, v in {**METRIC_INFO, **EXTRA_METRIC_INFO}.items()
                if k in METRIC_INFO or any(k in self.table[m] for m in self.methods)
            },
            "table": {
                m: {
                    k: {"mean": num(v.mean), "ci": [num(v.ci_low), num(v.ci_high)], "n": v.n}
                    for k, v in self.table[m].items()
                }
                for m in self.methods
            },
            "verdicts": {
                m: {
                    **self.verdicts[m].badges(),
                    "sanity": self.verdicts[m].sanity_parts(),
                    "sentence": self.verdicts[m].sentence(),
                }
                for m in self.methods
            },
            "curves": {
                m: {k: [num(x) for x in v] for k, v in c.items()} for m, c in self.curves.items()
            },
            "fractions": list(self.fractions),
            "mprt_stages": list(self.mprt_stages),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def scorecard_from_json(data: Mapping[str, Any]) -> Scorecard:
    """Inverse of :meth:`Scorecard.to_json`.

    Raises:
        ValueError: for another format version or a malformed file.
    """
    if data.get("scorecard_version") != SCORECARD_VERSION:
        raise ValueError(
            f"scorecard format {data.get('scorecard_version')!r}, expected {SCORECARD_VERSION}"
        )
    try:
        methods = tuple(data["methods"])
        table = {
            m: {
                k: MetricSummary(_nan(v["mean"]), _nan(v["ci"][0]), _nan(v["ci"][1]), int(v["n"]))
                for k, v in data["table"][m].items()
            }
            for m in methods
        }
        verdicts = {
            m: Verdict(
                data["verdicts"][m]["passes sanity"],
                data["verdicts"][m]["faithful"],
                data["verdicts"][m]["localises"],
                data["verdicts"][m].get("sanity", {}).get("model randomisation"),
                data["verdicts"][m].get("sanity", {}).get("data randomisation"),
            )
            for m in methods
        }
        curves = {
            m: {k: tuple(_nan(x) for x in v) for k, v in c.items()}
            for m, c in data.get("curves", {}).items()
        }
        return Scorecard(
            methods, table, verdicts, curves, tuple(data["fractions"]),
            tuple(data["mprt_stages"]), int(data["n_images"]), int(data["n_mprt_images"]),
            dict(data["settings"]), str(data["fingerprint"]),
            str(data.get("model_fingerprint", "")), str(data.get("gallery", "")),
            dict(data.get("extra", {})),
        )  # fmt: skip
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"malformed scorecard ({type(exc).__name__}: {exc})") from exc


def load_scorecard(path: str | Path) -> Scorecard:
    """Read a scorecard JSON file (:meth:`Scorecard.to_json`)."""
    return scorecard_from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def find_scorecard(model_fingerprint: str, candidates: Sequence[str | Path]) -> Path | None:
    """The first existing scorecard file among ``candidates`` made with these model weights."""
    from gmx._io import first_json_for_model

    return first_json_for_model(model_fingerprint, candidates)


def scorecard_paths() -> list[Path]:
    """Scorecard files gmx looks at, in order: the committed demo one, then ``scorecards/*.json``
    in gmx's cache folder (write ``gmx scorecard ... --json`` there for your own models)."""
    from gmx._io import NO_CACHE_ENV, user_cache_dir
    from gmx.config import DEMO_DIR

    out = [DEMO_DIR / DEMO_SCORECARD_NAME]
    base = user_cache_dir({**os.environ, NO_CACHE_ENV: ""})
    if base is not None and (base / "scorecards").is_dir():
        out.extend(sorted((base / "scorecards").glob("*.json")))
    return out


def scorecard_for(model_fingerprint: str) -> Scorecard | None:
    """The scorecard made with these model weights among :func:`scorecard_paths`; ``None``: none."""
    path = find_scorecard(model_fingerprint, scorecard_paths())
    return None if path is None else load_scorecard(path)


def format_summary(got: MetricSummary, digits: int = 3) -> str:
    """``"0.123 [0.100, 0.150]"`` (``"n/a"`` without a finite mean)."""
    if got.n == 0 or not np.isfinite(got.mean):
        return "n/a"
    return f"{got.mean:.{digits}f} [{got.ci_low:.{digits}f}, {got.ci_high:.{digits}f}]"


def verdict_word(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    """A verdict as a word (``"-"`` when not judged)."""
    return "-" if value is None else (yes if value else no)


def leaderboard(
    card: Scorecard,
    metrics: Sequence[str] = LEADERBOARD_METRICS,
    *,
    names: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """One row per method: its (display) name, the three verdicts and ``metrics`` as
    ``"mean [95 % CI]"`` text, methods that pass more verdicts first (then by name order)."""

    def passed(m: str) -> int:
        return sum(bool(v) for v in card.verdicts[m].badges().values())

    names = names or {}
    out = []
    for m in sorted(card.methods, key=lambda m: -passed(m)):
        v = card.verdicts[m]
        row = {
            "method": names.get(m, m),
            "passes sanity": verdict_word(v.passes_sanity),
            "faithful": verdict_word(v.faithful),
            "localises": verdict_word(v.localises),
        }
        for metric in metrics:
            got = card.table[m].get(metric)
            row[metric] = "n/a" if got is None else format_summary(got)
        out.append(row)
    return out


def leaderboard_markdown(
    card: Scorecard, metrics: Sequence[str] = LEADERBOARD_METRICS, digits: int = 3
) -> str:
    """The leaderboard as a markdown table (what docs/metrics.md shows for the demo)."""
    rows = leaderboard(card, metrics)
    head = ["method", "passes sanity", "faithful", "localises", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in rows:
        cells = [row[k] for k in head[:4]]
        for metric in metrics:
            got = card.table[row["method"]].get(metric)
            cells.append("n/a" if got is None else format_summary(got, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summarize_scorecard(out_dir: str | Path) -> Scorecard:
    """The :class:`Scorecard` of a run folder's finished rows.

    Raises:
        ValueError: if no row is finished.
    """
    manifest, arrays, finished = load_rows(out_dir)
    settings = ScorecardSettings(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["settings"].items()}
    )
    if not finished.any():
        raise ValueError(f"{out_dir} has no finished rows yet")
    methods = tuple(manifest["methods"])
    rows = np.flatnonzero(finished)

    def col(m: str, x: str) -> np.ndarray:
        return np.asarray(arrays[column(m, x)], np.float64)[rows]

    derived: dict[str, Callable[[str], np.ndarray]] = {
        "mprt_cascade_spearman": lambda m: col(m, "mprt_curve").mean(axis=1),
        "deletion_vs_random": lambda m: col(NULL_METHOD, "deletion_auc") - col(m, "deletion_auc"),
        "insertion_vs_random": lambda m: (
            col(m, "insertion_auc") - col(NULL_METHOD, "insertion_auc")
        ),
        "auroc_vs_null": lambda m: col(m, "auroc") - col(m, "auroc_null"),
        "relevance_mass_vs_null": lambda m: (
            col(m, "relevance_mass") - col(m, "relevance_mass_null")
        ),
        "relevance_rank_vs_null": lambda m: (
            col(m, "relevance_rank") - col(m, "relevance_rank_null")
        ),
        "pointing_game_vs_null": lambda m: col(m, "pointing_game") - col(m, "pointing_game_null"),
    }
    table: dict[str, dict[str, MetricSummary]] = {}
    verdicts: dict[str, Verdict] = {}
    curves: dict[str, dict[str, tuple[float, ...]]] = {}
    for m in methods:
        table[m] = {}
        for metric in SUMMARY_METRICS:
            if metric in derived:
                if metric.endswith("vs_random") and NULL_METHOD not in methods:
                    continue
                values = derived[metric](m)
            else:
                values = col(m, metric)
            table[m][metric] = bootstrap_mean(values, n_boot=settings.n_boot, seed=settings.seed)
        for metric in EXTRA_METRIC_INFO:
            if column(m, metric) in arrays:
                table[m][metric] = bootstrap_mean(
                    col(m, metric), n_boot=settings.n_boot, seed=settings.seed
                )
        verdicts[m] = verdict(table[m], is_null=m == NULL_METHOD)
        curves[m] = {}
        for name in ("deletion", "insertion", "mprt", "mprt_independent"):
            if column(m, f"{name}_curve") not in arrays:
                continue
            c = col(m, f"{name}_curve")
            ok = np.isfinite(c).all(axis=1)
            if ok.any():
                curves[m][name] = tuple(float(x) for x in c[ok].mean(axis=0))
    extra: dict[str, Any] = {}
    if column(methods[0], "agreement_spearman") in arrays:
        per_face = [
            MethodAgreement(
                methods,
                np.stack([col(m, "agreement_spearman")[j] for m in methods]),
                np.stack([col(m, "agreement_iou10")[j] for m in methods]),
            )
            for j in range(len(rows))
        ]
        extra["agreement"] = mean_agreement(per_face).to_json()
    n_mprt = int(np.isfinite(col(methods[0], "mprt_spearman")).sum())
    config = {k: v for k, v in manifest.items() if k not in ("store_version", "chunk")}
    return Scorecard(
        methods, table, verdicts, curves,
        tuple(float(x) for x in np.arange(settings.steps + 1) / settings.steps),
        tuple(st[-1] if len(st) == 1 else f"+{st[-1]}" for st in cascading_steps(IRESNET_STAGES)),
        len(rows), n_mprt, manifest["settings"], fingerprint(config),
        str(manifest.get("model_fingerprint", "")), str(manifest.get("gallery", "")), extra,
    )  # fmt: skip


def scorecard_agreement(card: Scorecard) -> SplitAgreement | None:
    """The split-averaged method agreement a scorecard carries (``None``: not computed)."""
    got = card.extra.get("agreement")
    return None if got is None else SplitAgreement.from_json(got)


__all__ = [
    "BADGE_WORDS",
    "DEMO_SCORECARD_NAME",
    "DEMO_SHUFFLED_MODEL_NAME",
    "EXTRAS",
    "EXTRA_METRIC_INFO",
    "EXTRA_SETTINGS",
    "FACES_GALLERY",
    "FORWARD_METRICS",
    "LEADERBOARD_METRICS",
    "LOCALISATION_SCORES",
    "METRIC_INFO",
    "NULL_METHOD",
    "ROW_METRICS",
    "SANITY_MAX_SPEARMAN",
    "SCORECARD_VERSION",
    "SENSITIVITY_RADIUS",
    "SUMMARY_METRICS",
    "DataControl",
    "MetricSummary",
    "Scorecard",
    "ScorecardSettings",
    "Verdict",
    "bootstrap_mean",
    "column",
    "data_control",
    "demo_shuffled_model_path",
    "find_scorecard",
    "fingerprint",
    "format_summary",
    "forward_metrics",
    "gallery_rows",
    "held_out_rows",
    "leaderboard",
    "leaderboard_markdown",
    "load_rows",
    "load_scorecard",
    "manifest_config",
    "run_scorecard",
    "run_scorecard_sharded",
    "score_rows",
    "scorecard_agreement",
    "scorecard_columns",
    "scorecard_for",
    "scorecard_from_json",
    "scorecard_maps",
    "scorecard_paths",
    "summarize_scorecard",
    "syndrome_score_targets",
    "verdict",
    "verdict_word",
]
