"""Attribution maps for GestaltMatcher: what in a face drives its similarity to a syndrome.

One verb: :func:`explain` (or :func:`explain_targets` for the top-k syndromes at once). Methods are
registered by name (:func:`list_methods`, :func:`get_method`, :func:`register_method`); targets say
what to explain (:class:`SimilarityTarget`, :class:`LogitTarget`, :class:`ContrastTarget`). Results are
frozen :class:`AttributionMap` values that keep sign and scale; :mod:`gmx.explain.display` scales them
for the screen. See ``docs/explain.md``.
"""

from __future__ import annotations

from gmx.explain.compare import Agreement, agreement
from gmx.explain.display import (
    DisplayRange,
    display_ranges,
    normalize_for_display,
    normalize_maps,
    robust_limit,
)
from gmx.explain.engine import (
    THESIS_PANEL,
    ExplainModel,
    ExplanationCancelled,
    explain,
    explain_targets,
    face_tensor,
    iter_explain,
    variant_input,
)
from gmx.explain.prelu import DecomposedPReLU, decompose_prelu
from gmx.explain.prepared import clear_cache
from gmx.explain.registry import MethodSpec, get_method, list_methods, register_method
from gmx.explain.result import AttributionMap
from gmx.explain.targets import ContrastTarget, LogitTarget, SimilarityTarget, Target

__all__ = [
    "THESIS_PANEL",
    "Agreement",
    "AttributionMap",
    "ContrastTarget",
    "DecomposedPReLU",
    "DisplayRange",
    "ExplainModel",
    "ExplanationCancelled",
    "LogitTarget",
    "MethodSpec",
    "SimilarityTarget",
    "Target",
    "agreement",
    "clear_cache",
    "decompose_prelu",
    "display_ranges",
    "explain",
    "explain_targets",
    "face_tensor",
    "get_method",
    "iter_explain",
    "list_methods",
    "normalize_for_display",
    "normalize_maps",
    "register_method",
    "robust_limit",
    "variant_input",
]
