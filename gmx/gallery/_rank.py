"""Ranking a query against a gallery, exactly as GestaltMatcher-Arc does.

Definition (GestaltMatcher-Arc ``evaluate_ensemble.py`` / service ``lib/evaluation.py``):

1. For each model/TTA variant ``v``: cosine distance ``1 - cos(query[v], gallery[n, v])`` to every
   gallery image ``n`` (scikit-learn's ``pairwise_distances(..., 'cosine')``, clipped to ``[0, 2]``;
   a zero vector has cosine similarity 0 to everything).
2. Average the V distances per gallery image. Embeddings are never averaged.
3. Sort the gallery images by mean distance. A syndrome's distance is that of its nearest image (its
   first occurrence in the sorted list); genes and patients (subjects) are ranked the same way.
4. Optionally (service v1.1.2) drop gallery images whose mean distance is ``<= min_distance``
   (near-duplicates of the query) before step 3, and report ``gestalt_score = 1.3 - distance``.

Ties: upstream sorts with ``np.argsort``'s default (introsort, not stable), so the order of exactly
tied images is unspecified there; gmx sorts stably, so ties keep gallery order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gmx.constants import GESTALT_SCORE_OFFSET
from gmx.gallery._model import Gallery
from gmx.variants import Variant

if TYPE_CHECKING:
    from gmx.gallery._calibration import Calibration


@dataclass(frozen=True)
class SyndromeMatch:
    """One ranked syndrome.

    Attributes:
        rank: 1-based position.
        syndrome_id: the syndrome.
        name: its display name.
        omim: its OMIM number (digits) or ``None``.
        distance: mean cosine distance of its nearest gallery image.
        gestalt_score: ``1.3 - distance`` (GestaltMatcher service v1.1.2).
        image_id: that nearest image.
        subject_id: the patient of that image.
        image_index: the image's position in the gallery.
    """

    rank: int
    syndrome_id: str
    name: str
    omim: str | None
    distance: float
    gestalt_score: float
    image_id: str
    subject_id: str
    image_index: int


@dataclass(frozen=True)
class GeneMatch:
    """One ranked gene: reached through its nearest image's syndrome.

    Attributes:
        rank: 1-based position.
        gene: gene symbol.
        syndrome_id: the syndrome through which the gene was reached first.
        distance: mean cosine distance of the nearest image whose syndrome lists the gene.
        gestalt_score: ``1.3 - distance``.
        image_id: that image.
        subject_id: its patient.
        image_index: its position in the gallery.
    """

    rank: int
    gene: str
    syndrome_id: str
    distance: float
    gestalt_score: float
    image_id: str
    subject_id: str
    image_index: int


@dataclass(frozen=True)
class PatientMatch:
    """One ranked gallery patient (subject): represented by their nearest photo.

    Attributes:
        rank: 1-based position.
        subject_id: the patient.
        syndrome_id: the patient's syndrome (of the nearest photo).
        syndrome_name: its display name.
        distance: mean cosine distance of the patient's nearest photo.
        gestalt_score: ``1.3 - distance``.
        image_id: that photo.
        image_index: its position in the gallery.
    """

    rank: int
    subject_id: str
    syndrome_id: str
    syndrome_name: str
    distance: float
    gestalt_score: float
    image_id: str
    image_index: int


@dataclass(frozen=True, eq=False)
class Ranking:
    """The answer for one query.

    Attributes:
        syndromes: ranked syndromes (nearest first), at most ``top_k``.
        genes: ranked genes, at most ``top_k``.
        patients: ranked gallery patients, at most ``top_k``.
        image_distances: ``(N,)`` float64 read-only mean cosine distance to every gallery image
            (over the variants in ``variant_mask``), including images dropped by ``min_distance``.
        per_variant_distances: ``(V, N)`` float64 read-only cosine distance per variant (all variants,
            whatever ``variant_mask`` says), for the per-model/TTA breakdown.
        image_order: ``(K,)`` int64 read-only positions of the kept images, nearest first (stable).
        kept: ``(N,)`` bool read-only, ``False`` for images dropped by ``min_distance`` or ``exclude``.
        variants: the gallery's variants (rows of ``per_variant_distances``).
        variant_mask: ``(V,)`` bool read-only, the variants averaged into ``image_distances``.
        min_distance: the near-duplicate threshold used, or ``None``.
        gallery_name: name of the gallery ranked against.
    """

    syndromes: tuple[SyndromeMatch, ...]
    genes: tuple[GeneMatch, ...]
    patients: tuple[PatientMatch, ...]
    image_distances: np.ndarray
    per_variant_distances: np.ndarray
    image_order: np.ndarray
    kept: np.ndarray
    variants: tuple[Variant, ...]
    variant_mask: np.ndarray
    min_distance: float | None
    gallery_name: str = ""

    def syndrome(self, syndrome_id: str) -> SyndromeMatch | None:
        """The match of one syndrome, or ``None`` if it is not ranked (absent, dropped or past top_k)."""
        for m in self.syndromes:
            if m.syndrome_id == syndrome_id:
                return m
        return None


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _variant_mask(variant_mask: Any, n_variants: int) -> np.ndarray:
    if variant_mask is None:
        return np.ones(n_variants, dtype=bool)
    arr = np.asarray(variant_mask)
    if arr.dtype == bool:
        if arr.shape != (n_variants,):
            raise ValueError(f"variant_mask must have shape ({n_variants},), got {arr.shape}")
        mask = arr.copy()
    else:
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"variant_mask must be a ({n_variants},) bool mask or variant indices, got {variant_mask!r}"
            )
        if arr.size and (arr.min() < -n_variants or arr.max() >= n_variants):
            raise ValueError(
                f"variant indices out of range for {n_variants} variants: {arr.tolist()}"
            )
        mask = np.zeros(n_variants, dtype=bool)
        mask[arr] = True
    if not mask.any():
        raise ValueError("variant_mask selects no variant")
    return mask


def _check_query(query: Any, gallery: Gallery, *, batched: bool) -> np.ndarray:
    q = np.asarray(query)
    want = (
        ("M", gallery.n_variants, gallery.embedding_dim)
        if batched
        else (gallery.n_variants, gallery.embedding_dim)
    )
    if q.ndim != len(want) or q.shape[-2:] != want[-2:]:
        raise ValueError(
            f"query embeddings must have shape {want} to match gallery {gallery.name!r}, got {q.shape}"
        )
    if not (np.issubdtype(q.dtype, np.floating) or np.issubdtype(q.dtype, np.integer)):
        raise ValueError(f"query embeddings must be real numbers, got dtype {q.dtype}")
    if not np.isfinite(q).all():
        raise ValueError("query embeddings contain NaN or inf")
    return q


def cosine_distances(
    queries: np.ndarray, images: np.ndarray, *, image_inv_norms: np.ndarray | None = None
) -> np.ndarray:
    """Cosine distances ``1 - cos`` per variant: GestaltMatcher-Arc's distance, written once.

    Args:
        queries: ``(n, V, D)`` embeddings.
        images: ``(m, V, D)`` embeddings (variants in the same order).
        image_inv_norms: ``(m, V)`` cached ``1 / |images|`` (0 for zero vectors), e.g. a
            gallery's; computed when ``None``.

    Returns:
        ``(n, m, V)`` float64 distances clipped to ``[0, 2]``; a zero vector has similarity 0
        (distance 1). The dot products run in the images' precision (float32 for galleries, one
        BLAS call per variant), norms and the rest in float64. Average over the variants for the
        ranking distance.
    """
    q = np.asarray(queries)
    g = np.asarray(images)
    if q.ndim != 3 or g.ndim != 3 or q.shape[1:] != g.shape[1:]:
        raise ValueError(f"need (n, V, D) and (m, V, D) embeddings, got {q.shape} and {g.shape}")
    dtype = g.dtype if g.dtype in (np.float32, np.float64) else np.float64
    q_inv = _inv_norms(q)
    g_inv = _inv_norms(g) if image_inv_norms is None else np.asarray(image_inv_norms)
    qc = q.astype(dtype, copy=False)
    dist = np.empty((q.shape[0], g.shape[0], q.shape[1]), dtype=np.float64)
    for v in range(q.shape[1]):
        dots = (g[:, v, :] @ qc[:, v, :].T).astype(np.float64)  # (m, n)
        sim = dots * g_inv[:, v, None] * q_inv[None, :, v]
        dist[:, :, v] = 1.0 - sim.T
    np.clip(dist, 0.0, 2.0, out=dist)
    return dist


def _inv_norms(emb: np.ndarray) -> np.ndarray:
    """``1 / |emb|`` over the last axis in float64, 0 for zero vectors."""
    norms = np.sqrt(np.einsum("...d,...d->...", emb, emb, dtype=np.float64))
    inv = np.zeros_like(norms)
    np.divide(1.0, norms, out=inv, where=norms > 0)
    return inv


def _first_occurrence(codes_in_order: np.ndarray) -> np.ndarray:
    """Positions (in the sorted list) of the first occurrence of each distinct code, ascending."""
    if codes_in_order.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, first = np.unique(codes_in_order, return_index=True)
    return np.sort(first)


def syndrome_ranks(
    queries: np.ndarray, gallery: Gallery, syndrome_ids: Sequence[str]
) -> np.ndarray:
    """The rank of one syndrome per query, for many queries at once.

    Row ``i`` is ``rank(queries[i], gallery).syndrome(syndrome_ids[i]).rank`` (all variants, no
    ``min_distance``, nobody excluded): syndromes are ordered by their nearest image's mean
    distance, ties by that image's gallery position (the stable sort of :func:`rank`). One
    distance matrix for every query instead of a :class:`Ranking` each (what the faithfulness
    curves re-rank thousands of perturbed faces with).

    Args:
        queries: ``(n, V, D)`` embeddings; syndrome_ids: ``n`` syndrome ids.

    Returns:
        ``(n,)`` float64 ranks (1 = first), NaN for a syndrome without gallery images.
    """
    q = np.asarray(queries)
    if q.ndim != 3 or len(syndrome_ids) != q.shape[0]:
        raise ValueError(f"need (n, V, D) queries and n syndrome ids, got {q.shape}")
    for row in q:
        _check_query(row, gallery, batched=False)
    n = q.shape[0]
    out = np.full(n, np.nan)
    if n == 0 or len(gallery) == 0:
        return out
    mean = cosine_distances(q, gallery.embeddings, image_inv_norms=gallery._inv_norms).mean(axis=2)
    codes = np.asarray(gallery._syndrome_codes)
    k_of = {s: k for k, s in enumerate(gallery._syndrome_order)}
    best = np.empty((n, len(k_of)))
    first = np.empty((n, len(k_of)), np.int64)
    rows = np.arange(n)
    for k in range(len(k_of)):
        cols = np.flatnonzero(codes == k)
        j = mean[:, cols].argmin(axis=1)  # the first of equal minima, as the stable sort
        best[:, k] = mean[rows, cols[j]]
        first[:, k] = cols[j]
    for i, s in enumerate(syndrome_ids):
        k = k_of.get(s)
        if k is None:
            continue
        ahead = (best[i] < best[i, k]) | ((best[i] == best[i, k]) & (first[i] < first[i, k]))
        out[i] = 1 + int(ahead.sum())
    return out


def rank(
    query: np.ndarray,
    gallery: Gallery,
    *,
    min_distance: float | None = None,
    variant_mask: Sequence[bool] | Sequence[int] | np.ndarray | None = None,
    exclude_subjects: Sequence[str] = (),
    top_k: int | None = None,
) -> Ranking:
    """Rank the gallery's syndromes, genes and patients for one query face.

    Args:
        query: ``(V, D)`` float embeddings of the query, variants in ``gallery.variants`` order.
        gallery: the gallery (embedded with the same models as the query).
        min_distance: drop gallery images whose mean distance is ``<= min_distance`` (service v1.1.2
            uses :data:`gmx.constants.NEAR_DUPLICATE_DISTANCE` = 0.3). ``None`` keeps all.
        variant_mask: which variants to average, a ``(V,)`` bool mask or variant indices; ``None`` means
            all (the upstream definition). Other masks answer "what would model 0 alone say?".
        exclude_subjects: subjects whose images are dropped (e.g. the query's own patient when the
            query is a gallery photo).
        top_k: keep at most this many entries in each match list (``None``: all). The distance arrays
            always cover every image.

    Returns:
        The :class:`Ranking`; nothing of the inputs is modified.

    Raises:
        ValueError: the query's shape does not match the gallery, it is not finite, or a bad mask.
    """
    q = _check_query(query, gallery, batched=False)
    mask = _variant_mask(variant_mask, gallery.n_variants)
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None, got {top_k}")
    if min_distance is not None and not np.isfinite(min_distance):
        raise ValueError(f"min_distance must be finite or None, got {min_distance}")

    per_variant = cosine_distances(q[None], gallery.embeddings, image_inv_norms=gallery._inv_norms)[
        0
    ].T
    mean = per_variant.mean(axis=0) if mask.all() else per_variant[mask].mean(axis=0)

    kept = np.ones(len(gallery), dtype=bool)
    if min_distance is not None:
        kept &= mean > min_distance
    if isinstance(exclude_subjects, str):
        raise ValueError(
            f"exclude_subjects must be a sequence of subject ids, not the string {exclude_subjects!r}"
        )
    if exclude_subjects:
        drop = set(exclude_subjects)
        kept &= np.array([im.subject_id not in drop for im in gallery.images], dtype=bool)
    kept_idx = np.flatnonzero(kept)
    order = kept_idx[np.argsort(mean[kept_idx], kind="stable")]

    limit = None if top_k is None else int(top_k)
    images = gallery.images
    syndromes = gallery.syndromes

    # Syndromes: first occurrence of each label in the sorted image list.
    syn_pos = _first_occurrence(gallery._syndrome_codes[order])
    syn_matches: list[SyndromeMatch] = []
    for r, p in enumerate(syn_pos[:limit], start=1):
        i = int(order[p])
        im = images[i]
        s = syndromes[im.syndrome_id]
        d = float(mean[i])
        syn_matches.append(
            SyndromeMatch(
                r,
                s.syndrome_id,
                s.name,
                s.omim,
                d,
                GESTALT_SCORE_OFFSET - d,
                im.image_id,
                im.subject_id,
                i,
            )
        )

    # Genes: the first image whose syndrome lists the gene. Walking the syndromes in rank order is
    # the same as walking images (an image contributes its syndrome's genes in listed order).
    gene_matches: list[GeneMatch] = []
    seen: set[str] = set()
    for p in syn_pos:
        if limit is not None and len(gene_matches) >= limit:
            break
        i = int(order[p])
        im = images[i]
        d = float(mean[i])
        for g in syndromes[im.syndrome_id].genes:
            if g in seen:
                continue
            seen.add(g)
            gene_matches.append(
                GeneMatch(
                    len(gene_matches) + 1,
                    g,
                    im.syndrome_id,
                    d,
                    GESTALT_SCORE_OFFSET - d,
                    im.image_id,
                    im.subject_id,
                    i,
                )
            )
            if limit is not None and len(gene_matches) >= limit:
                break

    # Patients: first occurrence of each subject.
    sub_pos = _first_occurrence(gallery._subject_codes[order])
    patient_matches: list[PatientMatch] = []
    for r, p in enumerate(sub_pos[:limit], start=1):
        i = int(order[p])
        im = images[i]
        d = float(mean[i])
        patient_matches.append(
            PatientMatch(
                r,
                im.subject_id,
                im.syndrome_id,
                syndromes[im.syndrome_id].name,
                d,
                GESTALT_SCORE_OFFSET - d,
                im.image_id,
                i,
            )
        )

    return Ranking(
        syndromes=tuple(syn_matches),
        genes=tuple(gene_matches),
        patients=tuple(patient_matches),
        image_distances=_frozen(mean),
        per_variant_distances=_frozen(per_variant),
        image_order=_frozen(order.astype(np.int64, copy=False)),
        kept=_frozen(kept),
        variants=gallery.variants,
        variant_mask=_frozen(mask),
        min_distance=None if min_distance is None else float(min_distance),
        gallery_name=gallery.name,
    )


def _omim_json(omim: str | None) -> int | str:
    """The service writes OMIM numbers as integers and a missing one as ``""``."""
    if omim is None:
        return ""
    return int(omim) if omim.isdigit() else omim


def _r3(x: float) -> float:
    return round(float(x), 3)


#: What every export of the synthetic demo says about itself.
DEMO_NOTICE = (
    "Synthetic demo, not for clinical use: the model and gallery are trained on synthetic "
    "phenotypes; this answer says nothing about a real patient."
)


def to_service_json(
    ranking: Ranking,
    *,
    case_id: str,
    model_version: str,
    gallery_version: str,
    top_k: int | None = None,
    demo: bool = False,
    confirmed_hpo: Sequence[str] = (),
    rejected_hpo: Sequence[str] = (),
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """The GestaltMatcher service's JSON answer for a ranking, plus a ``gmx`` key with extras.

    Shape (service README; v1.1.2 scores)::

        {"case_id", "model_version", "gallery_version",
         "suggested_syndromes_list": [{syndrome_name, omim_id, distance, gestalt_score, image_id, subject_id}],
         "suggested_genes_list": [{gene_name, gene_entrez_id, distance, gestalt_score, image_id, subject_id}],
         "suggested_patients_list": [{subject_id, image_id, syndrome_name, omim_id, distance, gestalt_score}],
         "gmx": {...}}

    Distances and scores are rounded to 3 decimals as the service does; ``omim_id`` is an integer or
    ``""``; ``gene_entrez_id`` is ``null`` (gmx galleries hold gene symbols only). The ``gmx`` key holds
    unrounded values, syndrome ids, image indices, the per-variant distances of each listed image,
    the variants and the ranking options.

    Args:
        ranking: from :func:`rank`.
        case_id: the query's id (the service uses the file name without extension).
        model_version: reported model version.
        gallery_version: reported gallery version.
        top_k: list at most this many entries per list (``None``: as many as the ranking holds).
        demo: the ranking comes from the synthetic demo: ``gmx.demo`` is ``true`` and
            ``gmx.demo_notice`` says that the answer is not about a real patient. Always present, so
            that a reader never has to guess.
        confirmed_hpo: HPO term ids the user confirmed present on this face (``gmx.confirmed_hpo``,
            always present, possibly empty).
        rejected_hpo: HPO term ids the user confirmed absent (``gmx.rejected_hpo``, likewise).
        calibration: the gallery's :class:`~gmx.gallery.Calibration` (same gallery name), e.g.
            :attr:`Gallery.calibration`: adds ``gmx.calibration`` (method, counts, skipped
            syndromes, the null and its median ``typical_distance``; ``not_closer_than_typical``
            and ``message`` for the face: its top-1 distance against that median, see
            :meth:`~gmx.gallery.Calibration.not_closer_message`) and a ``calibration`` statement
            to each entry of ``gmx.syndromes`` (:meth:`~gmx.gallery.Calibration.statement` at its
            distance). The service fields are unchanged.
    """
    if calibration is not None and calibration.gallery_name != ranking.gallery_name:
        raise ValueError(
            f"calibration of gallery {calibration.gallery_name!r} does not belong to the ranking's "
            f"gallery {ranking.gallery_name!r}"
        )
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None, got {top_k}")
    face_message = (
        calibration.not_closer_message(ranking.syndromes[0].distance)
        if calibration is not None and ranking.syndromes
        else None
    )
    syn = ranking.syndromes[:top_k]
    genes = ranking.genes[:top_k]
    patients = ranking.patients[:top_k]
    omim_of = {m.syndrome_id: m.omim for m in ranking.syndromes}
    pv = ranking.per_variant_distances

    def per_variant(i: int) -> list[float]:
        return [float(x) for x in pv[:, i]]

    return {
        "case_id": case_id,
        "model_version": model_version,
        "gallery_version": gallery_version,
        "suggested_syndromes_list": [
            {
                "syndrome_name": m.name,
                "omim_id": _omim_json(m.omim),
                "distance": _r3(m.distance),
                "gestalt_score": _r3(m.gestalt_score),
                "image_id": m.image_id,
                "subject_id": m.subject_id,
            }
            for m in syn
        ],
        "suggested_genes_list": [
            {
                "gene_name": m.gene,
                "gene_entrez_id": None,
                "distance": _r3(m.distance),
                "gestalt_score": _r3(m.gestalt_score),
                "image_id": m.image_id,
                "subject_id": m.subject_id,
            }
            for m in genes
        ],
        "suggested_patients_list": [
            {
                "subject_id": m.subject_id,
                "image_id": m.image_id,
                "syndrome_name": m.syndrome_name,
                "omim_id": _omim_json(omim_of.get(m.syndrome_id)),
                "distance": _r3(m.distance),
                "gestalt_score": _r3(m.gestalt_score),
            }
            for m in patients
        ],
        "gmx": {
            "demo": bool(demo),
            **({"demo_notice": DEMO_NOTICE} if demo else {}),
            "confirmed_hpo": list(dict.fromkeys(confirmed_hpo)),
            "rejected_hpo": list(dict.fromkeys(rejected_hpo)),
            "gallery_name": ranking.gallery_name,
            "variants": [v.label for v in ranking.variants],
            "variant_mask": [bool(x) for x in ranking.variant_mask],
            "min_distance": ranking.min_distance,
            "n_images_ranked": int(ranking.image_order.size),
            "n_images_dropped": int((~ranking.kept).sum()),
            "gestalt_score": f"{GESTALT_SCORE_OFFSET} - distance",
            **(
                {
                    "calibration": {
                        "method": calibration.method,
                        "n_images": calibration.n_images,
                        "n_skipped_images": calibration.n_skipped_images,
                        "skipped_syndromes": list(calibration.skipped_syndromes),
                        "n_unaffected": calibration.n_unaffected,
                        "null": calibration.null,
                        "typical_distance": calibration.typical_distance,
                        "not_closer_than_typical": (
                            None if not ranking.syndromes else face_message is not None
                        ),
                        "message": face_message,
                    }
                }
                if calibration is not None
                else {}
            ),
            "syndromes": [
                {
                    "rank": m.rank,
                    "syndrome_id": m.syndrome_id,
                    "distance": m.distance,
                    "image_index": m.image_index,
                    "per_variant_distance": per_variant(m.image_index),
                    **(
                        {"calibration": calibration.statement(m.distance).to_dict()}
                        if calibration is not None
                        else {}
                    ),
                }
                for m in syn
            ],
            "genes": [
                {
                    "rank": m.rank,
                    "gene": m.gene,
                    "syndrome_id": m.syndrome_id,
                    "distance": m.distance,
                    "image_index": m.image_index,
                }
                for m in genes
            ],
            "patients": [
                {
                    "rank": m.rank,
                    "syndrome_id": m.syndrome_id,
                    "distance": m.distance,
                    "image_index": m.image_index,
                    "per_variant_distance": per_variant(m.image_index),
                }
                for m in patients
            ],
        },
    }


__all__ = [
    "GeneMatch",
    "PatientMatch",
    "Ranking",
    "SyndromeMatch",
    "cosine_distances",
    "rank",
    "syndrome_ranks",
    "to_service_json",
]
