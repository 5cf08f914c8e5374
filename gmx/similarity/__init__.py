"""Similarity maps of a query and its nearest gallery patients: an exact 7x7 decomposition and more.

Everything after an iResNet's last convolution stage is affine, so the cosine similarity of two faces
splits exactly into one term per 7x7 cell of each face (plus a constant) and into a 49x49 cell-to-cell
correspondence. See ``docs/similarity.md`` for the derivation, the split conventions and the flip
handling.

* Heads: :func:`fold_head` -> :class:`AffineHead` (``(G, D, C)`` per-cell weights + bias).
* Activations: :func:`query_activations` -> :class:`QueryActivations`; :func:`gallery_activations`
  (a gallery-build step), :func:`with_activations` (store them in ``Gallery.extras``),
  :func:`save_activations` / :func:`load_activations` (sidecar ``.npz`` at :func:`sidecar_path`), :class:`ActivationStore`
  (stored maps first, lazy forward passes for the rest).
* Decomposition: :func:`decompose_pairs` -> :class:`PairDecomposition` (maps under :data:`SPLITS`,
  correspondence, constants, per-variant terms).
* Pairs: :class:`PairExplainer` (``explain(face, indices, method=...)`` -> :class:`PairMaps` for
  every method in :data:`PAIR_METHODS`), :func:`nearest_patients`, :func:`cams_by_variant`,
  :func:`cam_from_activations`, :func:`correspondence_map`.
* Placement on the faces (:mod:`gmx.similarity.placement`): :func:`variant_grids`,
  :func:`place_terms` (sum-preserving), :func:`place_values`, :func:`correspondence_at`.
* Privacy-aware pictures of the gallery side (the gallery-picture policy of :mod:`gmx.gallery`,
  re-exported): :func:`gallery_face` -> :class:`GalleryFace`, :func:`composite_face`,
  :func:`template_face`.
"""

from __future__ import annotations

from gmx.gallery import (  # the one gallery-picture policy, re-exported for the pair views
    MIN_COMPOSITE_SUBJECTS,
    GalleryFace,
    composite_face,
    gallery_face,
    template_face,
)
from gmx.similarity.activations import (
    ACTIVATION_PREFIX,
    ActivationStore,
    QueryActivations,
    activation_key,
    gallery_activations,
    load_activations,
    query_activations,
    save_activations,
    sidecar_path,
    with_activations,
)
from gmx.similarity.cam import cam_from_activations, cams_by_variant
from gmx.similarity.decompose import (
    SPLITS,
    PairDecomposition,
    cell_label,
    decompose_pairs,
    mirror_permutation,
)
from gmx.similarity.head import AffineHead, fold_head
from gmx.similarity.pairs import (
    PAIR_METHODS,
    PairExplainer,
    PairMaps,
    correspondence_map,
    nearest_patients,
)
from gmx.similarity.placement import (
    Correspondence,
    correspondence_at,
    place_terms,
    place_values,
    variant_grids,
)

__all__ = [
    "ACTIVATION_PREFIX",
    "MIN_COMPOSITE_SUBJECTS",
    "PAIR_METHODS",
    "SPLITS",
    "ActivationStore",
    "AffineHead",
    "Correspondence",
    "GalleryFace",
    "PairDecomposition",
    "PairExplainer",
    "PairMaps",
    "QueryActivations",
    "activation_key",
    "cam_from_activations",
    "cams_by_variant",
    "cell_label",
    "composite_face",
    "correspondence_at",
    "correspondence_map",
    "decompose_pairs",
    "fold_head",
    "gallery_activations",
    "gallery_face",
    "load_activations",
    "mirror_permutation",
    "nearest_patients",
    "place_terms",
    "place_values",
    "query_activations",
    "save_activations",
    "sidecar_path",
    "template_face",
    "variant_grids",
    "with_activations",
]
