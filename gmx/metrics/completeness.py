"""Completeness residual: does a map add up to the score change it claims to explain?

Integrated Gradients and DeepLIFT (Sundararajan et al. 2017, "completeness"; Shrikumar et al.
2017, "summation-to-delta") promise that the attributions sum to ``f(x) - f(x0)``, the target's
score on the face minus its score on the baseline ``x0``. The residual
``|sum(a) - (f(x) - f(x0))| / |f(x) - f(x0)|`` says how far a map breaks that promise (0 = exact;
Integrated Gradients' residual shrinks with more steps, DeepLIFT's Rescale rule is exact on
piecewise-linear networks only). For maps that make no such claim (Grad-CAM, saliency) the number
is meaningless, so :data:`COMPLETENESS_METHODS` lists which registered methods are scored.

Written by hand: captum's ``convergence_delta`` needs captum's own attribution objects; gmx's
maps come from its engine (summed over channels, placed on the template; both keep the sum).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gmx.encode import Variant
from gmx.encode.model import input_norm
from gmx.explain import Target, explain, input_value, variant_input
from gmx.explain.engine import as_explain_model
from gmx.metrics.robustness import similarity_forward

#: Registered methods that claim completeness, and the parameter that holds their baseline.
COMPLETENESS_METHODS: Mapping[str, str] = {
    "integrated_gradients": "baseline",
    "deeplift": "baseline",
}
#: Their default baseline (the registry's default for both).
DEFAULT_BASELINE = "black"


@dataclass(frozen=True)
class Completeness:
    """``total``: the map's sum; ``delta``: ``f(x) - f(x0)``; ``residual``: ``|total - delta|``;
    ``relative``: ``residual / |delta|`` (NaN when ``delta`` is 0)."""

    total: float
    delta: float
    residual: float
    relative: float


def completeness_residual(total: float, score: float, baseline_score: float) -> Completeness:
    """The residual of a map summing to ``total`` for a score of ``score`` (input) and
    ``baseline_score`` (baseline)."""
    delta = float(score) - float(baseline_score)
    residual = abs(float(total) - delta)
    return Completeness(
        float(total), delta, residual, residual / abs(delta) if delta != 0 else float("nan")
    )


def completeness(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    baseline: torch.Tensor,
    attributions: torch.Tensor | np.ndarray,
) -> Completeness:
    """The residual of ``attributions`` (any shape; summed) for ``forward`` (``(1, ...) -> (1,)``)
    at input ``x`` against ``baseline`` (broadcastable to ``x``)."""
    with torch.no_grad():
        fx = float(forward(x).reshape(-1)[0])
        f0 = float(forward(baseline.expand_as(x)).reshape(-1)[0])
    a = attributions.detach().cpu().numpy() if torch.is_tensor(attributions) else attributions
    total = float(np.asarray(a, np.float64).sum())
    return completeness_residual(total, fx, f0)


def method_completeness(
    model: Any,
    face: np.ndarray,
    target: Target,
    method: str,
    params: Mapping[str, Any] | None = None,
) -> Completeness:
    """The completeness residual of ``method``'s map of one face (variant 0, not flipped: the
    template pixels are the input pixels) for ``target`` on ``model``.

    Raises:
        ValueError: for a method that does not claim completeness.
    """
    if method not in COMPLETENESS_METHODS:
        raise ValueError(
            f"{method!r} does not claim completeness; scored: {sorted(COMPLETENESS_METHODS)}"
        )
    p = dict(params or {})
    got = explain(model, face, target, methods=[method], variants=[Variant(0)],
                  params={method: p})[method]  # fmt: skip
    pair = as_explain_model(model)
    x = variant_input(face, Variant(0), pair.card)
    value = p.get(COMPLETENESS_METHODS[method], DEFAULT_BASELINE)
    x0 = input_value(value, "baseline", input_norm(pair.card))
    return completeness(similarity_forward(model, target, 0), x, x0, np.asarray(got.values))


__all__ = [
    "COMPLETENESS_METHODS",
    "Completeness",
    "completeness",
    "completeness_residual",
    "method_completeness",
]
