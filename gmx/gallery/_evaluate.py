"""Top-k accuracy of a query set against a gallery, as GestaltMatcher-Arc reports it.

Upstream (``evaluate_ensemble.py``, function ``eval``): each test image ranks the gallery exactly like
:func:`gmx.gallery.rank` (mean of per-variant cosine distances, syndromes by first occurrence); a test
image is a top-k hit when its true syndrome is among the first k distinct syndromes. The reported
figure is the **macro** accuracy: per syndrome present in the test set, the fraction of its test images
that are hits, averaged over those syndromes with equal weight. gmx also reports the micro accuracy
(hits / test images), which upstream computes but does not print.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from gmx.gallery._model import Gallery
from gmx.gallery._rank import _check_query, _variant_mask, cosine_distances

logger = logging.getLogger(__name__)

DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 30)


@dataclass(frozen=True)
class SyndromeAccuracy:
    """Top-k hits of one syndrome's test images.

    Attributes:
        syndrome_id: the syndrome.
        n_queries: how many test images carry it.
        hits: per k (same order as :attr:`Evaluation.ks`), how many of them were top-k hits.
    """

    syndrome_id: str
    n_queries: int
    hits: tuple[int, ...]

    def accuracy(self, k_index: int) -> float:
        """Fraction of hits for ``ks[k_index]``."""
        return self.hits[k_index] / self.n_queries


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Top-k accuracies of a query set.

    Attributes:
        ks: the k values, ascending.
        macro: k -> mean over test syndromes of the per-syndrome top-k accuracy (upstream's figure).
        micro: k -> fraction of all test images that were top-k hits.
        per_syndrome: one entry per syndrome present among the queries, in first-appearance order.
        ranks: ``(M,)`` int64 read-only 1-based rank of each query's true syndrome, 0 when it was not
            ranked at all (absent from the gallery, or all its images excluded).
        n_queries: M.
    """

    ks: tuple[int, ...]
    macro: Mapping[int, float]
    micro: Mapping[int, float]
    per_syndrome: tuple[SyndromeAccuracy, ...]
    ranks: np.ndarray
    n_queries: int


def _chunk_distances(queries: np.ndarray, gallery: Gallery, mask: np.ndarray) -> np.ndarray:
    """``(m, N)`` float64 mean cosine distance over the masked variants for a chunk of queries."""
    if mask.all():
        emb, inv, q = gallery.embeddings, gallery._inv_norms, queries
    else:  # a copy of the masked variants
        v = np.flatnonzero(mask)
        emb, inv, q = gallery.embeddings[:, v], gallery._inv_norms[:, v], queries[:, v]
    return cosine_distances(q, emb, image_inv_norms=inv).mean(axis=-1)


def evaluate(
    query_embeddings: np.ndarray,
    query_labels: Sequence[str],
    gallery: Gallery,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    exclude_same_subject: bool = True,
    query_subjects: Sequence[str] | None = None,
    min_distance: float | None = None,
    variant_mask: Sequence[bool] | Sequence[int] | np.ndarray | None = None,
    chunk_size: int = 256,
) -> Evaluation:
    """Macro and micro top-k accuracy of labelled queries against a gallery.

    Args:
        query_embeddings: ``(M, V, D)`` float embeddings of the test images, variants in gallery order.
        query_labels: M true syndrome ids.
        gallery: the gallery to rank against.
        ks: the k values (upstream: 1, 5, 10, 30).
        exclude_same_subject: drop, per query, the gallery images of the query's own patient. Needs
            ``query_subjects``; without them nothing is dropped (GMDB's splits are subject-disjoint,
            and upstream drops nothing).
        query_subjects: M subject ids of the queries.
        min_distance: also drop gallery images with mean distance ``<= min_distance`` (as :func:`rank`).
        variant_mask: variants to average, as in :func:`rank`.
        chunk_size: queries per block of the ``(block, N)`` distance matrix (memory vs speed).

    Returns:
        The :class:`Evaluation`. Queries whose syndrome is absent from the gallery count as misses
        (as upstream) and are logged.

    Raises:
        ValueError: shapes/lengths disagree, ks not positive, or M == 0.
    """
    q = _check_query(query_embeddings, gallery, batched=True)
    m = q.shape[0]
    if m == 0:
        raise ValueError("evaluate needs at least one query")
    labels = [str(x) for x in query_labels]
    if len(labels) != m:
        raise ValueError(f"{m} query embeddings but {len(labels)} labels")
    subjects = None
    if query_subjects is not None:
        subjects = [str(x) for x in query_subjects]
        if len(subjects) != m:
            raise ValueError(f"{m} query embeddings but {len(subjects)} subjects")
    ks_t = tuple(sorted({int(k) for k in ks}))
    if not ks_t or ks_t[0] < 1:
        raise ValueError(f"ks must be positive integers, got {list(ks)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    mask = _variant_mask(variant_mask, gallery.n_variants)

    n = len(gallery)
    # Group gallery columns by syndrome once: first position of syndrome s in a query's stable order
    # = min over its images of the image's position, a reduceat over syndrome-sorted columns.
    codes = gallery._syndrome_codes
    n_syn = len(gallery._syndrome_order)
    by_syn = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[by_syn], np.arange(n_syn))
    code_of = {s: k for k, s in enumerate(gallery._syndrome_order)}
    true_codes = np.array([code_of.get(lbl, -1) for lbl in labels], dtype=np.int64)
    missing = sorted({lbl for lbl, c in zip(labels, true_codes, strict=True) if c < 0})
    if missing:
        logger.warning(
            "%d query syndromes have no gallery image (counted as misses): %s",
            len(missing),
            missing[:10],
        )

    subject_code = {s: k for k, s in enumerate(gallery._subject_order)}
    query_subject_codes = (
        None
        if subjects is None
        else np.array([subject_code.get(s, -1) for s in subjects], dtype=np.int64)
    )
    ranks = np.zeros(m, dtype=np.int64)
    sentinel = n + 1
    for start in range(0, m, chunk_size):
        stop = min(m, start + chunk_size)
        dist = _chunk_distances(q[start:stop], gallery, mask)
        excluded = np.zeros(dist.shape, dtype=bool)
        if min_distance is not None:
            excluded |= dist <= min_distance
        if exclude_same_subject and query_subject_codes is not None:
            excluded |= gallery._subject_codes[None, :] == query_subject_codes[start:stop, None]
        order = np.argsort(dist, axis=1, kind="stable")
        pos = np.empty_like(order)
        rows = np.arange(stop - start)[:, None]
        pos[rows, order] = np.arange(n)[None, :]
        # Excluded images get positions past the end; they are not "ranked" at all.
        pos[excluded] = sentinel
        # Re-number kept positions is unnecessary: only the relative order of first positions matters.
        if n_syn:
            first = np.minimum.reduceat(pos[:, by_syn], starts, axis=1)
        else:
            first = np.zeros((stop - start, 0), dtype=pos.dtype)
        tc = true_codes[start:stop]
        for r in range(stop - start):
            c = tc[r]
            if c < 0 or first[r, c] >= sentinel:
                continue
            ranks[start + r] = int((first[r] < first[r, c]).sum()) + 1

    hits = {k: (ranks >= 1) & (ranks <= k) for k in ks_t}
    present = list(dict.fromkeys(labels))
    label_arr = np.array(labels, dtype=object)
    per_syn: list[SyndromeAccuracy] = []
    for s in present:
        sel = label_arr == s
        per_syn.append(
            SyndromeAccuracy(s, int(sel.sum()), tuple(int(hits[k][sel].sum()) for k in ks_t))
        )
    macro = {
        k: float(np.mean([a.hits[i] / a.n_queries for a in per_syn])) for i, k in enumerate(ks_t)
    }
    micro = {k: float(hits[k].mean()) for k in ks_t}
    ranks.setflags(write=False)
    return Evaluation(
        ks=ks_t,
        macro=MappingProxyType(macro),
        micro=MappingProxyType(micro),
        per_syndrome=tuple(per_syn),
        ranks=ranks,
        n_queries=m,
    )


__all__ = ["DEFAULT_KS", "Evaluation", "SyndromeAccuracy", "evaluate"]
