"""Restructured computations of the explain engine (speed, issue 10) give the maps of the old ones,
bit for bit (tolerance: none, ``torch.equal`` / ``np.array_equal``):

* DeepLIFT's reference pass runs once per model and call, not once per variant;
* DeepLIFT's head integral scores all 64 quadrature nodes of a row-wise target in one call.

The PReLU rules' reduced backward is checked against the literal formulas in test_prelu.py."""

from __future__ import annotations

import numpy as np
import torch

from gmx.explain import SimilarityTarget, explain_targets
from gmx.explain import workspace as workspace_module
from gmx.explain.targets import is_rowwise
from gmx.explain.workspace import path_gradient
from gmx.variants import Variant

from .helpers import gallery, tiny_iresnet

VARIANTS = [Variant(0), Variant(0, flip=True), Variant(0, grey=True), Variant(0, True, True)]
METHODS = ("deeplift", "saliency")


def _run(face) -> tuple[dict, ...]:
    targets = [SimilarityTarget(gallery(64, rows=len(VARIANTS), seed=s)) for s in range(2)]
    return explain_targets(tiny_iresnet(), face, targets, VARIANTS, methods=METHODS)


def test_one_reference_pass_per_model_and_maps_equal_one_per_variant(face, monkeypatch) -> None:
    passes: list[workspace_module.ReferencePass] = []
    real = workspace_module.ReferencePass

    def counted(*args, **kwargs):
        passes.append(real(*args, **kwargs))
        return passes[-1]

    monkeypatch.setattr(workspace_module, "ReferencePass", counted)
    shared = _run(face)
    assert len(passes) == 1  # four variants of one model: one reference pass

    # The old behaviour: every workspace runs its own reference pass.
    init = workspace_module.Workspace.__init__

    def private(self, *args, **kwargs):
        kwargs["reference_store"] = None
        init(self, *args, **kwargs)

    monkeypatch.setattr(workspace_module.Workspace, "__init__", private)
    passes.clear()
    alone = _run(face)
    assert len(passes) == len(VARIANTS)
    for got, want in zip(shared, alone, strict=True):
        for method in METHODS:
            # Bit-equal: the shared pass is the same computation on the same input and model.
            assert np.array_equal(got[method].values, want[method].values)
            assert got[method].values.any()


def test_similarity_targets_are_rowwise() -> None:
    assert is_rowwise(SimilarityTarget(gallery(64)).bind(0))


def test_head_integral_in_one_call_equals_one_call_per_node() -> None:
    gen = torch.Generator().manual_seed(0)
    for n in (1, 3):
        target = SimilarityTarget(gallery(64, seed=n)).bind(0)
        start, end = torch.randn(n, 64, generator=gen), torch.randn(n, 64, generator=gen)
        calls: list[int] = []

        def per_node(z: torch.Tensor, target=target, calls=calls) -> torch.Tensor:
            calls.append(z.shape[0])
            return target(z)  # not marked row-wise: called once per node

        want = path_gradient(per_node, start, end)
        assert calls == [n] * 64
        assert torch.equal(path_gradient(target, start, end), want)


def test_deeplift_maps_equal_with_the_per_node_head_integral(face, monkeypatch) -> None:
    fast = _run(face)
    monkeypatch.setattr(workspace_module, "is_rowwise", lambda fn: False)
    slow = _run(face)
    for got, want in zip(fast, slow, strict=True):
        assert np.array_equal(got["deeplift"].values, want["deeplift"].values)
