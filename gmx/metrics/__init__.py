"""Scores of attribution maps: faithfulness, localisation, complexity, robustness, sanity.

The foundation of the scorecard (issue 11); see ``docs/metrics.md``.

* Faithfulness: :func:`faithfulness_curves` (deletion/insertion curves of many faces and maps on
  GestaltMatcher's similarity score, batched, with the true syndrome's rank after re-ranking),
  :func:`perturbation_curve` (one curve, any scorer), :class:`PerturbationCurve`.
* Localisation against a mask: :func:`localisation_metrics` (:class:`LocalisationMetrics`:
  relevance mass, relevance rank, pointing game, AUROC).
* Complexity: :func:`sparseness` (Gini), :func:`entropy`.
* Robustness (captum.metrics): :func:`infidelity`, :func:`sensitivity_max` on
  :func:`similarity_forward`.
* Sanity: :func:`mprt` (cascading randomisation, :class:`MPRTResult`), :func:`randomized_stages`.

Pure functions: inputs are never modified; results are frozen dataclasses.
"""

from __future__ import annotations

from gmx.metrics.completeness import Completeness, completeness, method_completeness
from gmx.metrics.complexity import entropy, sparseness
from gmx.metrics.faithfulness import (
    PerturbationCurve,
    faithfulness_curves,
    fill_image,
    perturbation_curve,
)
from gmx.metrics.localisation import LocalisationMetrics, localisation_metrics
from gmx.metrics.robustness import infidelity, sensitivity_max, similarity_forward
from gmx.metrics.sanity import (
    IRESNET_STAGES,
    MPRTResult,
    MPRTStep,
    hog_similarity,
    map_similarities,
    map_similarity,
    mprt,
    randomized_stages,
)

__all__ = [
    "IRESNET_STAGES",
    "Completeness",
    "LocalisationMetrics",
    "MPRTResult",
    "MPRTStep",
    "PerturbationCurve",
    "completeness",
    "entropy",
    "faithfulness_curves",
    "fill_image",
    "hog_similarity",
    "infidelity",
    "localisation_metrics",
    "map_similarities",
    "map_similarity",
    "method_completeness",
    "mprt",
    "perturbation_curve",
    "randomized_stages",
    "sensitivity_max",
    "similarity_forward",
    "sparseness",
]
