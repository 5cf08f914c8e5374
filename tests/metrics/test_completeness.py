"""Completeness residual: by hand on a linear model, then IG and DeepLIFT on a tiny iResNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmx.explain import SimilarityTarget
from gmx.metrics.completeness import (
    completeness,
    completeness_residual,
    method_completeness,
)
from tests.explain.helpers import gallery, tiny_iresnet


def test_completeness_residual_by_hand() -> None:
    c = completeness_residual(total=0.3, score=0.9, baseline_score=0.5)  # delta 0.4
    assert (c.delta, c.residual, c.relative) == pytest.approx((0.4, 0.1, 0.25))
    assert np.isnan(completeness_residual(1.0, 0.5, 0.5).relative)


def test_completeness_on_a_linear_model() -> None:
    """f(x) = sum(w * x): (x - x0) * w is exact (residual 0); the gradient alone (w) is not, and
    its residual is |sum(w) - sum(w * (x - x0))|, computed here by hand."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn((1, 3, 4, 4), generator=gen, dtype=torch.float64)
    x = torch.randn((1, 3, 4, 4), generator=gen, dtype=torch.float64)
    x0 = torch.full((1, 3, 1, 1), -1.0, dtype=torch.float64)

    def forward(inp: torch.Tensor) -> torch.Tensor:
        return (inp * w).sum(dim=(1, 2, 3))

    exact = completeness(forward, x, x0, (x - x0) * w)
    assert exact.residual == pytest.approx(0.0, abs=1e-12)
    assert exact.delta == pytest.approx(float((w * (x - x0)).sum()))
    grad = completeness(forward, x, x0, w.sum(1))  # summed over channels: the sum is unchanged
    want = abs(float(w.sum()) - float((w * (x - x0)).sum()))
    assert grad.residual == pytest.approx(want) and grad.relative > 0


def test_integrated_gradients_and_deeplift_nearly_complete(face) -> None:
    model = tiny_iresnet(0)
    target = SimilarityTarget(gallery(64), "g")
    ig = method_completeness(model, face, target, "integrated_gradients", {"steps": 64})
    coarse = method_completeness(model, face, target, "integrated_gradients", {"steps": 2})
    assert abs(ig.delta) > 1e-3 and ig.relative < 0.05, ig
    assert coarse.residual > ig.residual  # more steps, smaller residual
    dl = method_completeness(model, face, target, "deeplift")
    assert dl.delta == pytest.approx(ig.delta)
    assert dl.relative < 1e-4, dl  # the Rescale rule is exact here (measured 3.6e-7)
    with pytest.raises(ValueError, match="completeness"):
        method_completeness(model, face, target, "gradcam")
