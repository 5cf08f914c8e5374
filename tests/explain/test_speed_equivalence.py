"""Restructured computations of the explain engine (speed, issue 10) give the maps of the old ones,
bit for bit (tolerance: none, ``torch.equal`` / ``np.array_equal``):

* DeepLIFT's reference pass runs once per model and call, not once per variant;
* DeepLIFT's head integral scores all 64 quadrature nodes of a row-wise target in one call;
* the TTA variants of one model run as one batch in the shared pass (``engine.STACK_ROWS``): not
  bit-equal, because the convolution kernels round differently at another batch size, so within
  :data:`STACK_BOUND` of the largest value of each map (tests below, tiny iResNets; the demo
  model's maps differ by at most 1.2e-6 of their largest value, docs/benchmarks.md).

The PReLU rules' reduced backward is checked against the literal formulas in test_prelu.py."""

from __future__ import annotations

import numpy as np
import torch

from gmx.explain import ContrastTarget, LogitTarget, SimilarityTarget, engine, explain_targets
from gmx.explain import workspace as workspace_module
from gmx.explain.targets import is_rowwise, stacked
from gmx.explain.workspace import path_gradient
from gmx.variants import Variant

from .helpers import gallery, tiny_iresnet

VARIANTS = [Variant(0), Variant(0, flip=True), Variant(0, grey=True), Variant(0, True, True)]
METHODS = ("deeplift", "saliency")


def _run(face) -> tuple[dict, ...]:
    targets = [SimilarityTarget(gallery(64, rows=len(VARIANTS), seed=s)) for s in range(2)]
    return explain_targets(tiny_iresnet(), face, targets, VARIANTS, methods=METHODS)


def test_one_reference_pass_per_model_and_maps_equal_one_per_variant(face, monkeypatch) -> None:
    monkeypatch.setattr(engine, "STACK_ROWS", 1)  # one workspace per variant, as before stacking
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


# -- stacked variants ----------------------------------------------------------------------------

#: Largest difference between a stacked and an unstacked map, relative to the map's largest |value|.
#: Measured on tiny iResNets (two faces x three seeds): at most 6.4e-7 for the input-gradient methods
#: and DeepLIFT, 2.7e-6 for signed Grad-CAM (a channel sum with cancellation: its largest value is
#: small against its terms); the demo model's maps at most 1.2e-6.
STACK_BOUND = 1e-5
#: Grad-CAM++'s weights divide by ``2 g^2 + sum(A) g^3 + 1e-6``, which is ill-conditioned where the
#: gradients are small (a logit of this tiny model): there the rounding moves the map by 1.3e-4 of
#: its largest value.
STACK_BOUNDS = {"gradcam_plusplus": 1e-3}

SHARED_METHODS = (
    "saliency",
    "deconvolution",
    "guided_backprop",
    "deeplift",
    "gradcam",
    "gradcam_signed",
    "hirescam_signed",
    "gradcam_plusplus",
    "layercam",
    "fullgrad",
    "edges",
    "random",
)


def _close(got: np.ndarray, want: np.ndarray, method: str = "") -> None:
    assert got.shape == want.shape
    bound = STACK_BOUNDS.get(method, STACK_BOUND)
    assert np.abs(got - want).max() <= bound * max(np.abs(want).max(), 1e-30), method


def _counted_workspaces(monkeypatch) -> list[int]:
    """Rows of every workspace the engine builds (one shared forward pass each)."""
    rows: list[int] = []
    init = workspace_module.Workspace.__init__

    def counted(self, model, x, *args, **kwargs):
        rows.append(x.shape[0])
        init(self, model, x, *args, **kwargs)

    monkeypatch.setattr(workspace_module.Workspace, "__init__", counted)
    return rows


def _grid(face, **kwargs) -> tuple[dict, ...]:
    classifier = torch.nn.Linear(64, 5)
    torch.nn.init.normal_(classifier.weight, generator=torch.Generator().manual_seed(3))
    sim = [SimilarityTarget(gallery(64, rows=len(VARIANTS), seed=s)) for s in range(2)]
    targets = [*sim, LogitTarget(2), ContrastTarget(sim[0], sim[1])]  # row-wise and not
    return explain_targets(
        tiny_iresnet(), face, targets, VARIANTS, classifiers=[classifier], **kwargs
    )


def test_stacked_variants_run_one_pass_and_match_one_pass_per_variant(face, monkeypatch) -> None:
    rows = _counted_workspaces(monkeypatch)
    params = {"saliency": {"smooth_samples": 3, "smooth_sigma": 0.1}}
    stacked_maps = _grid(face, methods=SHARED_METHODS, params=params)
    # One workspace per SmoothGrad setting for all four variants (was one per variant).
    assert sorted(rows) == [len(VARIANTS), 3 * len(VARIANTS)]
    rows.clear()
    monkeypatch.setattr(engine, "STACK_ROWS", 1)
    alone = _grid(face, methods=SHARED_METHODS, params=params)
    assert sorted(rows) == [1] * len(VARIANTS) + [3] * len(VARIANTS)
    for got, want in zip(stacked_maps, alone, strict=True):
        for method in SHARED_METHODS:
            assert got[method].values.any() or not got[method].signed  # ReLU'd CAMs may be empty
            _close(got[method].values, want[method].values, method)
            _close(got[method].raw, want[method].raw, method)


def test_stacked_variants_keep_deeplift_complete(face) -> None:
    """The summation-to-delta of DeepLIFT holds with the shared reference tiled over the variants."""
    (got, *_) = _grid(face, methods=("deeplift",))
    (want, *_) = _grid(face, methods=("deeplift",), backend="reference")
    assert np.isclose(got["deeplift"].values.sum(), want["deeplift"].values.sum(), rtol=1e-3)


def test_stack_groups_keep_models_apart_and_respect_the_row_limit() -> None:
    variants = [
        Variant(0),
        Variant(1),
        Variant(0, flip=True),
        Variant(1, flip=True),
        Variant(0, grey=True),
    ]
    assert engine.stack_groups(variants, rows=1, limit=16) == [(0, 2, 4), (1, 3)]
    assert engine.stack_groups(variants, rows=4, limit=8) == [(0, 2), (4,), (1, 3)]
    assert engine.stack_groups(variants, rows=32, limit=16) == [(0,), (2,), (4,), (1,), (3,)]


def test_ensemble_and_batch_stacking_match_unstacked(face, monkeypatch) -> None:
    from gmx.explain import RowTarget, explain_batch

    models = [tiny_iresnet(0), tiny_iresnet(1)]
    variants = [Variant(0), Variant(1), Variant(0, flip=True), Variant(1, grey=True)]
    faces = np.stack([face, face[:, ::-1], np.roll(face, 7, axis=0)])
    refs = np.random.default_rng(0).standard_normal((3, len(variants), 64)).astype(np.float32)
    methods = ("saliency", "guided_backprop", "deeplift", "gradcam_signed")

    def run():
        one = explain_targets(models, face, [SimilarityTarget(refs[0])], variants, methods=methods)[
            0
        ]
        many = explain_batch(models, faces, RowTarget(refs), variants, methods=methods)
        return one, many

    rows = _counted_workspaces(monkeypatch)
    one, many = run()
    assert rows == [2, 2, 6, 6]  # per model: the face's two variants, the batch's 2 x 3 rows
    rows.clear()
    monkeypatch.setattr(engine, "STACK_ROWS", 1)
    one_alone, many_alone = run()
    assert rows == [1] * 4 + [3] * 4
    for method in methods:
        _close(one[method].values, one_alone[method].values, method)
        _close(many[method], many_alone[method], method)


def test_stacked_target_scores_each_block_with_its_own_function() -> None:
    gen = torch.Generator().manual_seed(0)
    fns = [SimilarityTarget(gallery(64, seed=s)).bind(0) for s in range(3)]
    rows = 2
    emb = torch.randn(3 * rows, 64, generator=gen)
    target = stacked(fns, rows)
    want = torch.cat([fn(emb[g * rows : (g + 1) * rows]) for g, fn in enumerate(fns)])
    assert torch.equal(target(emb), want)
    assert is_rowwise(target)
    # Row-wise: several stacks at once (DeepLIFT's quadrature nodes), node-major.
    nodes = torch.randn(5, 3 * rows, 64, generator=gen)
    assert torch.equal(
        target(nodes.reshape(-1, 64)).reshape(5, -1), torch.stack([target(n) for n in nodes])
    )
    start, end = torch.randn(3 * rows, 64, generator=gen), torch.randn(3 * rows, 64, generator=gen)
    per_block = torch.cat(
        [
            path_gradient(fn, start[g * rows : (g + 1) * rows], end[g * rows : (g + 1) * rows])
            for g, fn in enumerate(fns)
        ]
    )
    assert torch.equal(path_gradient(target, start, end), per_block)
    assert stacked(fns[:1], rows) is fns[0]
    assert not is_rowwise(stacked([fns[0], LogitTarget(0).bind(0, torch.nn.Linear(64, 2))], rows))
