"""Counting a calibration (no model passes): leave-one-patient-out within a gallery, held-out
labelled images against it, and unaffected faces' nearest-syndrome distances.

See :mod:`gmx.gallery._calibration` for what is counted and what the results say.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gmx.gallery._calibration import (
    HELD_OUT,
    LEAVE_ONE_PATIENT_OUT,
    Calibration,
    _frozen_sorted,
)
from gmx.gallery._model import Gallery
from gmx.gallery._rank import cosine_distances

#: Query images per block of a query x gallery distance matrix (bounds memory).
_BLOCK = 256


def nearest_syndrome_distances(embeddings: np.ndarray, gallery: Gallery) -> np.ndarray:
    """Each face's distance to its nearest gallery image (any syndrome): its top-1 distance.

    Args:
        embeddings: ``(M, V, D)`` embeddings of the faces (the gallery's variants, same order).
        gallery: the gallery.

    Returns:
        ``(M,)`` float64: the ranking's distance (mean over variants) to the nearest image.

    Raises:
        ValueError: shapes that do not fit the gallery, or an empty gallery.
    """
    q = np.asarray(embeddings)
    if q.ndim != 3 or q.shape[1:] != gallery.embeddings.shape[1:]:
        raise ValueError(
            f"embeddings must be (M, {gallery.n_variants}, {gallery.embedding_dim}) like the "
            f"gallery's, got {q.shape}"
        )
    if len(gallery) == 0:
        raise ValueError(f"gallery {gallery.name!r} is empty")
    out = np.empty(q.shape[0])
    for start in range(0, q.shape[0], _BLOCK):
        stop = min(start + _BLOCK, q.shape[0])
        dist = cosine_distances(
            q[start:stop], gallery.embeddings, image_inv_norms=gallery._inv_norms
        )
        out[start:stop] = dist.mean(axis=2).min(axis=1)
    return out


def _own_other(
    gallery: Gallery, queries: np.ndarray, syn: np.ndarray, sub: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: nearest own-syndrome and other-syndrome distance (``inf`` where none), leaving
    out gallery images of the query's own patient. ``syn``/``sub`` are gallery codes (-1 = none)."""
    g_syn = np.asarray(gallery._syndrome_codes)
    g_sub = np.asarray(gallery._subject_codes)
    n = queries.shape[0]
    own = np.full(n, np.inf)
    other = np.full(n, np.inf)
    if not len(gallery):
        return own, other
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        dist = cosine_distances(
            queries[start:stop], gallery.embeddings, image_inv_norms=gallery._inv_norms
        ).mean(axis=2)
        same_syn = syn[start:stop, None] == g_syn[None, :]
        same_sub = sub[start:stop, None] == g_sub[None, :]
        own[start:stop] = np.where(same_syn & ~same_sub, dist, np.inf).min(axis=1)
        other[start:stop] = np.where(~same_syn & ~same_sub, dist, np.inf).min(axis=1)
    return own, other


def _assemble(
    gallery: Gallery,
    own: np.ndarray,
    other: np.ndarray,
    labels: Sequence[str],
    *,
    method: str,
    unaffected: Any,
    provenance: str,
) -> Calibration:
    has_own = np.isfinite(own)
    counted = has_own & np.isfinite(other)
    if not counted.any():
        raise ValueError(
            f"gallery {gallery.name!r}: no query image has both an own-syndrome image of another "
            "patient and an image of another syndrome: nothing to calibrate"
        )
    skipped = sorted({labels[i] for i in np.flatnonzero(~counted)})
    un = None if unaffected is None else _frozen_sorted(unaffected, "unaffected")
    return Calibration(
        gallery_name=gallery.name,
        own_distances=own[counted],
        other_distances=other[counted],
        unaffected_distances=un,
        n_images=int(counted.sum()),
        n_skipped_images=int((~counted).sum()),
        skipped_syndromes=tuple(skipped),
        method=method,
        nearest_distances=np.minimum(own[counted], other[counted]),
        model_fingerprint=gallery.model_fingerprint,
        provenance=provenance,
    )


def calibrate(gallery: Gallery, *, unaffected: Any = None, provenance: str = "") -> Calibration:
    """Leave-one-patient-out own/other-syndrome nearest distances of every gallery image.

    Args:
        gallery: the gallery (its stored embeddings; nothing is modified).
        unaffected: optional 1-d distances of unaffected faces to their nearest syndrome
            (:func:`nearest_syndrome_distances` of their embeddings against this gallery).
        provenance: free text recorded with the calibration (e.g. where the unaffected came from).

    Returns:
        The :class:`Calibration` (``method="leave-one-patient-out"``).

    Raises:
        ValueError: no image has both an own-syndrome (other patient) and an other-syndrome image,
            or ``unaffected`` is not a finite 1-d array.
    """
    syn = np.asarray(gallery._syndrome_codes)
    sub = np.asarray(gallery._subject_codes)
    own, other = _own_other(gallery, gallery.embeddings, syn, sub)
    labels = [im.syndrome_id for im in gallery.images]
    return _assemble(
        gallery,
        own,
        other,
        labels,
        method=LEAVE_ONE_PATIENT_OUT,
        unaffected=unaffected,
        provenance=provenance,
    )


def calibrate_held_out(
    gallery: Gallery,
    embeddings: np.ndarray,
    labels: Sequence[str],
    *,
    subjects: Sequence[str] | None = None,
    unaffected: Any = None,
    provenance: str = "",
) -> Calibration:
    """Own/other-syndrome nearest distances of labelled images that are not in the gallery.

    Args:
        gallery: the gallery (nothing is modified).
        embeddings: ``(M, V, D)`` embeddings of the held-out images (the gallery's variants).
        labels: ``M`` syndrome ids. Images of syndromes the gallery does not hold have no own
            distance and are skipped (counted in :attr:`Calibration.n_skipped_images`).
        subjects: ``M`` patient ids; gallery images of the same patient are left out (as
            :func:`~gmx.gallery.rank`'s ``exclude_subjects``). ``None``: nothing is left out.
        unaffected: optional 1-d distances of unaffected faces to their nearest syndrome.
        provenance: free text recorded with the calibration.

    Returns:
        The :class:`Calibration` (``method="held-out"``).

    Raises:
        ValueError: lengths or shapes that do not fit, nothing countable, or a bad ``unaffected``.
    """
    q = np.asarray(embeddings)
    if q.ndim != 3 or q.shape[1:] != gallery.embeddings.shape[1:]:
        raise ValueError(
            f"embeddings must be (M, {gallery.n_variants}, {gallery.embedding_dim}) like the "
            f"gallery's, got {q.shape}"
        )
    labels = [str(x) for x in labels]
    if len(labels) != q.shape[0] or (subjects is not None and len(subjects) != q.shape[0]):
        raise ValueError(
            f"{q.shape[0]} embeddings need as many labels (got {len(labels)}) and subjects "
            f"(got {None if subjects is None else len(subjects)})"
        )
    syn_code = {s: k for k, s in enumerate(gallery._syndrome_order)}
    sub_code = {s: k for k, s in enumerate(gallery._subject_order)}
    syn = np.array([syn_code.get(lab, -1) for lab in labels], dtype=np.int64)
    if subjects is None:
        sub = np.full(len(labels), -1, dtype=np.int64)
    else:
        sub = np.array([sub_code.get(str(s), -1) for s in subjects], dtype=np.int64)
    own, other = _own_other(gallery, q, syn, sub)
    return _assemble(
        gallery, own, other, labels, method=HELD_OUT, unaffected=unaffected, provenance=provenance
    )


__all__ = ["calibrate", "calibrate_held_out", "nearest_syndrome_distances"]
