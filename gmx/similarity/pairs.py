"""Paired maps of a query and its nearest gallery patients, by several methods with one target.

The target of every method is the pair's similarity, GestaltMatcher-Arc's score: the mean over
model/TTA variants of ``cos(e_q, e_p)``. Each method gives two maps: on the query face (which of its
regions make it similar to gallery image P) and on P (which of P's regions make P similar to the query).

* ``exact``: the exact cell decomposition (:mod:`gmx.similarity.decompose`); no extra forward pass of
  the gallery image (its maps come from an :class:`~gmx.similarity.ActivationStore`).
* ``hirescam`` / ``gradcam``: signed HiResCAM / Grad-CAM of the similarity at the last feature map,
  computed by :func:`gmx.explain.explain` with a :class:`~gmx.explain.SimilarityTarget` on each face;
  for a gallery whose photos are not stored, the gallery side uses the equivalent closed form on its
  stored maps (:func:`~gmx.similarity.cam.cams_by_variant`).
* ``occlusion``: occlude the query and watch its similarity to P, and the other way round
  (:func:`gmx.explain.explain`'s ``occlusion``; needs both faces' pixels).

Signed values everywhere: positive supports the similarity, negative opposes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gmx.constants import GESTALT_SCORE_OFFSET
from gmx.encode import Ensemble
from gmx.encode.geometry import CellGrid, cell_grid
from gmx.errors import GalleryError
from gmx.gallery import Gallery, PatientMatch, Ranking, cosine_distances
from gmx.similarity.activations import ActivationStore, QueryActivations, query_activations
from gmx.similarity.cam import cams_by_variant
from gmx.similarity.decompose import PairDecomposition, Split, decompose_pairs
from gmx.similarity.head import AffineHead, fold_head
from gmx.similarity.placement import (
    Correspondence,
    correspondence_at,
    place_terms,
    place_values,
    variant_grids,
)
from gmx.variants import Variant

#: Pair methods, registry name -> display name (exact decomposition first: the default).
PAIR_METHODS: Mapping[str, str] = {
    "exact": "Exact decomposition",
    "hirescam": "HiResCAM (signed)",
    "gradcam": "Grad-CAM (signed)",
    "occlusion": "Pair occlusion",
}

#: The gmx.explain method and parameters behind each gradient/perturbation pair method.
_EXPLAIN_METHOD: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "hirescam": ("hirescam", {"relu": False}),
    "gradcam": ("gradcam_signed", {}),
    "occlusion": ("occlusion", {"window": 16, "stride": 16}),
}


@dataclass(frozen=True, eq=False)
class PairMaps:
    """The two maps of one query/gallery-image pair by one method.

    Attributes:
        method: key of :data:`PAIR_METHODS`.
        display_name: its display name.
        image_index: the gallery image.
        score: the similarity explained, mean over variants of the cosine (``1 - distance``).
        query: ``(112, 112)`` float32 read-only map on the query face (template frame). Cell maps
            are placed per variant with :attr:`variant_grids` (:mod:`gmx.similarity.placement`):
            ``exact`` sum-preserving (similarity per pixel; ``query.sum() + query_constant ==
            score`` in the ``complete`` split), CAMs interpolated; values keep the units of
            ``score``.
        gallery: ``(112, 112)`` float32 read-only map on the gallery face.
        query_raw: the query map at the method's native resolution (``(7, 7)`` cells for ``exact``
            and the CAMs, ``(112, 112)`` for occlusion), read-only.
        gallery_raw: the gallery map at native resolution, read-only.
        query_constant: for ``exact``, what the query cells leave of ``score``
            (``query_raw.sum() + query_constant == score``, split ``complete``); else ``None``.
        gallery_constant: the same for the gallery side.
        decomposition: the full exact decomposition (``exact`` only), with the cell-to-cell
            correspondence.
        split: the split convention of the exact maps (``complete``: each side's cells plus its
            constant make ``score``; ``shared``: both sides' cells plus one constant ``β`` do), or
            ``None`` for the other methods.
        backend: ``"exact"``, ``"explain"`` (gmx.explain on pixels) or ``"activations"`` (closed form
            on stored maps for the gallery side).
        elapsed_s: wall time of the call that made this pair, divided by the pairs made together.
        grid: where the cells of the ``(h, w)`` raw maps of the plain first-model variant sit on
            the faces (the grid drawn for picking cells); ``None`` for pixel maps.
        variant_grids: one grid per averaged variant (mirrored for flipped ones), ``()`` for
            pixel maps; :func:`correspondence_map` places with them.
    """

    method: str
    display_name: str
    image_index: int
    score: float
    query: np.ndarray
    gallery: np.ndarray
    query_raw: np.ndarray
    gallery_raw: np.ndarray
    query_constant: float | None = None
    gallery_constant: float | None = None
    decomposition: PairDecomposition | None = None
    split: str | None = None
    backend: str = "exact"
    elapsed_s: float = 0.0
    grid: CellGrid | None = None
    variant_grids: tuple[CellGrid, ...] = ()

    def __post_init__(self) -> None:
        for name in ("query", "gallery", "query_raw", "gallery_raw"):
            arr = np.array(getattr(self, name), dtype=np.float32, copy=True)
            if arr.ndim != 2:
                raise ValueError(f"{name} must be 2-D, got {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def signed(self) -> bool:
        """Always ``True``: positive supports the similarity, negative opposes it."""
        return True

    def strongest_query_cell(self) -> int | None:
        """The query cell that supports the similarity most (row-major index into the raw query
        map, the cells of :attr:`grid`), ``None`` for pixel maps."""
        if self.grid is None or self.query_raw.shape != self.grid.shape:
            return None
        return int(np.argmax(self.query_raw))


def correspondence_map(pair: PairMaps, query_cell: int) -> Correspondence:
    """Where on the gallery face the query cell ``query_cell`` (of :attr:`PairMaps.grid`) matches.

    Each variant contributes the ``K`` row of its cell nearest to that cell's centre on the query
    face, placed on the gallery face with its own grid (see :func:`correspondence_at`).

    Raises:
        ValueError: for a pair without a decomposition (only ``exact`` has one) or a bad cell.
    """
    if pair.decomposition is None or pair.grid is None:
        raise ValueError(f"{pair.method} maps have no cell correspondence")
    return correspondence_at(pair.decomposition, pair.grid.centre(query_cell), pair.variant_grids)


def nearest_patients(
    ranking: Ranking, gallery: Gallery, syndrome_id: str, k: int = 3
) -> tuple[PatientMatch, ...]:
    """The ``k`` nearest gallery patients of one syndrome, each by their nearest photo.

    Args:
        ranking: the query's ranking against ``gallery``.
        gallery: the gallery ranked.
        syndrome_id: the syndrome.
        k: most patients.

    Returns:
        Patients nearest first, ``rank`` counted within the syndrome (1-based), only images the
        ranking kept.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if syndrome_id not in gallery.syndromes:
        raise ValueError(f"syndrome {syndrome_id!r} is not in gallery {gallery.name!r}")
    if ranking.image_distances.shape != (len(gallery),):
        raise ValueError(
            f"ranking covers {ranking.image_distances.shape[0]} images, gallery has {len(gallery)}"
        )
    name = gallery.syndromes[syndrome_id].name
    seen: set[str] = set()
    out: list[PatientMatch] = []
    for i in ranking.image_order:
        im = gallery.images[int(i)]
        if im.syndrome_id != syndrome_id or im.subject_id in seen:
            continue
        seen.add(im.subject_id)
        d = float(ranking.image_distances[int(i)])
        out.append(
            PatientMatch(
                len(out) + 1,
                im.subject_id,
                syndrome_id,
                name,
                d,
                GESTALT_SCORE_OFFSET - d,
                im.image_id,
                int(i),
            )
        )
        if len(out) == k:
            break
    return tuple(out)


class PairExplainer:
    """Paired maps between a query and gallery images of one gallery, by any pair method.

    Bundles the folded heads of the ensemble's models (computed once), the gallery and its
    :class:`ActivationStore`. Read-only after construction and safe to share between threads (the
    gradient methods run on :mod:`gmx.explain`'s private model copies).

    Args:
        ensemble: the models and TTA variants that embedded ``gallery``.
        gallery: the gallery.
        store: where gallery feature maps come from (default: ``ActivationStore(ensemble, gallery)``,
            using maps stored in the gallery's extras and computing others lazily).

    Raises:
        ValueError: if a model's head is not affine (then no exact decomposition exists).
        GalleryError: if the gallery was embedded by other models.
    """

    def __init__(
        self, ensemble: Ensemble, gallery: Gallery, *, store: ActivationStore | None = None
    ) -> None:
        self.ensemble = ensemble
        self.gallery = gallery
        self.store = store if store is not None else ActivationStore(ensemble, gallery)
        if self.store.gallery is not gallery or self.store.ensemble is not ensemble:
            raise ValueError("the activation store belongs to another gallery or ensemble")
        self.heads: tuple[AffineHead, ...] = tuple(fold_head(m.model) for m in ensemble.models)
        self.variant_heads: tuple[AffineHead, ...] = tuple(
            self.heads[v.model] for v in ensemble.variants
        )

    @property
    def grid(self) -> CellGrid:
        """Where the cells of the first model's feature maps sit on the face (measured once).

        Cell maps averaged over variants are placed with it; see ``docs/similarity.md`` for what
        that means for flipped variants and mixed-depth ensembles.
        """
        return cell_grid(self.ensemble.models[0].model.backbone)

    def variant_grids(self, variants: Sequence[Variant] | None = None) -> tuple[CellGrid, ...]:
        """One grid per variant (default: the ensemble's), mirrored for flipped variants."""
        grids = [cell_grid(m.model.backbone) for m in self.ensemble.models]
        return variant_grids(grids, self.ensemble.variants if variants is None else variants)

    @property
    def variants(self) -> tuple[Variant, ...]:
        """The ensemble's variants."""
        return self.ensemble.variants

    def query(self, face: Any) -> QueryActivations:
        """The query's forward pass (maps and embeddings of every variant); see
        :func:`~gmx.similarity.query_activations`."""
        return query_activations(self.ensemble, face)

    def unavailable(self, method: str) -> str | None:
        """Why ``method`` cannot run with these models and this gallery, or ``None`` if it can."""
        if method not in PAIR_METHODS:
            raise ValueError(f"unknown pair method {method!r}; known: {list(PAIR_METHODS)}")
        if method == "exact":
            return None
        cards = [m.card for m in self.ensemble.models]
        if any(c.channels != 3 or c.input_size != 112 for c in cards):
            return f"{PAIR_METHODS[method]} runs gmx.explain, which needs 112x112 RGB iResNets"
        if method == "occlusion" and self.gallery.photos is None:
            return "pair occlusion needs the gallery photos, which this gallery does not store"
        return None

    def decompose(
        self,
        query: QueryActivations,
        indices: Sequence[int],
        *,
        variants: Sequence[int] | None = None,
    ) -> tuple[PairDecomposition, ...]:
        """Exact decompositions of the query's similarity to gallery images ``indices``."""
        self._check_query(query)
        gallery_maps = self.store.maps(indices)
        return decompose_pairs(
            query,
            gallery_maps,
            self.variant_heads,
            image_indices=list(indices),
            variants=variants,
        )

    def explain(
        self,
        face: Any,
        indices: Sequence[int],
        *,
        method: str = "exact",
        query: QueryActivations | None = None,
        split: Split = "complete",
        params: Mapping[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[PairMaps, ...]:
        """Paired maps of the query face with each of the gallery images ``indices``.

        Args:
            face: the query's aligned face (``AlignedFace`` or ``(112, 112, 3)`` uint8 RGB). Not
                modified.
            indices: gallery image positions.
            method: a key of :data:`PAIR_METHODS`.
            query: the query's activations if already computed (saves the forward pass).
            split: the exact decomposition's split convention for the two maps.
            params: parameter overrides of the gmx.explain method (e.g. occlusion
                ``{"window": 8, "stride": 4}``); not for ``exact``.
            progress: ``progress(done, total)`` over the pairs (gradient/occlusion methods).

        Returns:
            One :class:`PairMaps` per index, in order.

        Raises:
            ValueError: for an unknown method or parameters.
            GalleryError: if the method needs gallery pixels or maps the gallery lacks.
        """
        reason = self.unavailable(method)
        if reason is not None:
            raise GalleryError(reason)
        idx = [int(i) for i in indices]
        if not idx:
            return ()
        start = time.perf_counter()
        if query is None:
            query = self.query(face)
        if method == "exact":
            if params:
                raise ValueError(f"the exact decomposition takes no params, got {dict(params)}")
            pairs = self.decompose(query, idx)
            grid = self.grid
            grids = self.variant_grids(pairs[0].variants) if pairs else ()
            each = (time.perf_counter() - start) / len(idx)
            return tuple(
                PairMaps(
                    method="exact",
                    display_name=PAIR_METHODS["exact"],
                    image_index=d.image_index,
                    score=d.cosine,
                    query=place_terms(d.variant_query_maps(split), grids),
                    gallery=place_terms(d.variant_gallery_maps(split), grids),
                    query_raw=d.query_map(split),
                    gallery_raw=d.gallery_map(split),
                    query_constant=d.query_constant(split),
                    gallery_constant=d.gallery_constant(split),
                    decomposition=d,
                    split=split,
                    backend="exact",
                    elapsed_s=each,
                    grid=grid,
                    variant_grids=grids,
                )
                for d in pairs
            )
        return self._explain_pairs(face, query, idx, method, params, progress, start)

    def _check_query(self, query: QueryActivations) -> None:
        if tuple(query.variants) != tuple(self.ensemble.variants):
            raise ValueError(
                f"query variants {[v.label for v in query.variants]} differ from the ensemble's"
            )

    def _explain_pairs(
        self,
        face: Any,
        query: QueryActivations,
        idx: list[int],
        method: str,
        params: Mapping[str, Any] | None,
        progress: Callable[[int, int], None] | None,
        start: float,
    ) -> tuple[PairMaps, ...]:
        from gmx.explain import SimilarityTarget, explain, explain_targets

        self._check_query(query)
        name, base = _EXPLAIN_METHOD[method]
        merged = {**base, **(params or {})}
        models = [m.model for m in self.ensemble.models]
        variants = list(self.ensemble.variants)
        image = np.asarray(getattr(face, "image", face))
        total = len(idx) + 1
        # Query side: one shared forward pass, one target per gallery image.
        targets = [
            SimilarityTarget(self.gallery.embeddings[i], label=self.gallery.images[i].image_id)
            for i in idx
        ]
        q_maps = explain_targets(
            models, image, targets, variants, methods=(name,), params={name: merged}
        )
        if progress is not None:
            progress(1, total)
        gallery_side: list[tuple[np.ndarray, np.ndarray, str]] = []
        if self.gallery.photos is not None:
            q_target = SimilarityTarget(query.embeddings, label="query")
            for j, i in enumerate(idx):
                amap = explain(
                    models,
                    np.asarray(self.gallery.photos[i]),
                    q_target,
                    variants,
                    methods=(name,),
                    params={name: merged},
                )[name]
                gallery_side.append((amap.values, amap.raw, "explain"))
                if progress is not None:
                    progress(j + 2, total)
        else:  # CAMs only (occlusion was refused above): closed form on the stored maps
            g_maps = self.store.maps(idx)
            others = np.broadcast_to(query.embeddings, (len(idx), *query.embeddings.shape))
            by_var = cams_by_variant(g_maps, others, self.variant_heads, variants, kind=method)
            grids = self.variant_grids(variants)
            placed = place_values(by_var, grids)
            # raw stays a cell map only where one grid holds every variant (as gmx.explain's raw)
            raws = by_var.mean(axis=0) if len(set(grids)) == 1 else placed
            gallery_side = [(p, r, "activations") for p, r in zip(placed, raws, strict=True)]
            if progress is not None:
                progress(total, total)
        # Similarity averaged over variants: 1 - GestaltMatcher-Arc's distance.
        sims = 1.0 - cosine_distances(query.embeddings[None], self.gallery.embeddings[idx])[0]
        each = (time.perf_counter() - start) / len(idx)
        out = []
        for j, i in enumerate(idx):
            qa = q_maps[j][name]
            g_values, g_raw, backend = gallery_side[j]
            out.append(
                PairMaps(
                    method=method,
                    display_name=PAIR_METHODS[method],
                    image_index=i,
                    score=float(sims[j].mean()),
                    query=qa.values,
                    gallery=g_values,
                    query_raw=qa.raw,
                    gallery_raw=g_raw,
                    backend=backend if backend == "activations" else "explain",
                    elapsed_s=each,
                    grid=self.grid if qa.raw.shape == self.grid.shape else None,
                    variant_grids=self.variant_grids(variants)
                    if qa.raw.shape == self.grid.shape
                    else (),
                )
            )
        return tuple(out)


__all__ = ["PAIR_METHODS", "PairExplainer", "PairMaps", "correspondence_map", "nearest_patients"]
