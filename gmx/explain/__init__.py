"""Attribution maps for GestaltMatcher: what in a face drives its similarity to a syndrome.

One verb: :func:`explain` (or :func:`explain_targets` for the top-k syndromes at once, and
:func:`explain_batch` for many faces through the same kernel). Methods are registered by name
(:func:`list_methods`, :func:`get_method`, :func:`register_method`); the built-ins in
:mod:`gmx.explain.methods` register when this package is imported. Targets say what to explain
(:class:`SimilarityTarget`, :class:`LogitTarget`, :class:`ContrastTarget`, :class:`RowTarget`). Results are
frozen :class:`AttributionMap` values that keep sign and scale; :mod:`gmx.explain.display` scales them
for the screen. See ``docs/explain.md``.
"""

from __future__ import annotations

from gmx.explain._params import input_value
from gmx.explain.compare import ReferenceAgreement, agreement, pearson
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
    batch_faces,
    explain,
    explain_batch,
    explain_targets,
    iter_explain,
    variant_input,
)
from gmx.explain.prelu import DecomposedPReLU, decompose_prelu
from gmx.explain.prepared import clear_cache
from gmx.explain.registry import MethodSpec, get_method, list_methods, register_method
from gmx.explain.result import AttributionMap
from gmx.explain.targets import ContrastTarget, LogitTarget, RowTarget, SimilarityTarget, Target

# The built-in methods register themselves on import (timm-style); nothing else imports them.
from gmx.explain import methods as _builtin_methods  # noqa: F401  # isort: skip

__all__ = [
    "THESIS_PANEL",
    "AttributionMap",
    "ContrastTarget",
    "DecomposedPReLU",
    "DisplayRange",
    "ExplainModel",
    "ExplanationCancelled",
    "LogitTarget",
    "MethodSpec",
    "ReferenceAgreement",
    "RowTarget",
    "SimilarityTarget",
    "Target",
    "agreement",
    "batch_faces",
    "clear_cache",
    "decompose_prelu",
    "display_ranges",
    "explain",
    "explain_batch",
    "explain_targets",
    "get_method",
    "input_value",
    "iter_explain",
    "list_methods",
    "normalize_for_display",
    "normalize_maps",
    "pearson",
    "register_method",
    "robust_limit",
    "variant_input",
]
