"""DeepLIFT's reference pass runs once per model and call, not once per variant (speed, issue 10):
the maps equal those of a reference pass per variant, bit for bit."""

from __future__ import annotations

import torch

from gmx.explain import SimilarityTarget, explain_targets
from gmx.explain import workspace as workspace_module
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
            assert torch.equal(
                torch.from_numpy(got[method].values), torch.from_numpy(want[method].values)
            )
            assert got[method].values.any()
