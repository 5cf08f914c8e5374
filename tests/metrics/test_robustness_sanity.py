"""captum infidelity on a linear model; MPRT randomisation restores weights; gradient vs edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from gmx.encode import Variant
from gmx.explain import SimilarityTarget, explain, variant_input
from gmx.metrics import (
    IRESNET_STAGES,
    infidelity,
    map_similarity,
    mprt,
    randomized_stages,
    sensitivity_max,
    similarity_forward,
)
from gmx.metrics.sanity import cascading_steps
from tests.explain.helpers import gallery, tiny_iresnet


def _linear(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn((1, 3, 8, 8), generator=gen, dtype=torch.float64)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return (x * w).sum(dim=(1, 2, 3))

    return w, forward


@pytest.mark.parametrize("perturbation", ["gaussian", "patch"])
def test_infidelity_zero_for_exact_gradient_times_input(perturbation) -> None:
    w, f = _linear()
    x = torch.randn((2, 3, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_before = x.clone()
    exact = (w * x).sum(dim=1)  # gradient x input, summed over channels: (2, 8, 8)
    wrong = torch.randn((2, 8, 8), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kw = dict(perturbation=perturbation, n_samples=8, patch=3)
    good = infidelity(f, x, exact, **kw)
    bad = infidelity(f, x, wrong, **kw)
    assert good.shape == (2,)
    assert float(good.abs().max()) < 1e-10
    assert float(bad.min()) > 1e-3
    torch.testing.assert_close(x, x_before)
    # Unnormalised: scale matters, the exact map is still exact.
    assert float(infidelity(f, x, exact, normalize=False, **kw).abs().max()) < 1e-10
    # Seeded: the same value twice.
    torch.testing.assert_close(bad, infidelity(f, x, wrong, **kw))


def test_infidelity_and_sensitivity_on_the_similarity_target(face) -> None:
    model = tiny_iresnet(0)
    target = SimilarityTarget(gallery(64), "g")
    fwd = similarity_forward(model, target)
    x = variant_input(face, Variant(0))
    with torch.no_grad():
        score = fwd(x)
    torch.testing.assert_close(score, target(model(x)))
    maps = explain(
        model, face, target, methods=["integrated_gradients"],
        params={"integrated_gradients": {"steps": 4}},
    )["integrated_gradients"]  # fmt: skip
    val = infidelity(fwd, x, torch.from_numpy(np.array(maps.values))[None], n_samples=4)
    assert val.shape == (1,) and torch.isfinite(val).all()

    def grad_x_input(inp: torch.Tensor) -> torch.Tensor:
        inp = inp.detach().requires_grad_(True)
        fwd(inp).sum().backward()
        return (inp.grad * inp).detach()

    sens = sensitivity_max(grad_x_input, x, n_samples=3)
    assert sens.shape == (1,) and float(sens) > 0
    torch.testing.assert_close(sens, sensitivity_max(grad_x_input, x, n_samples=3))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_randomization_changes_and_restores_bit_exactly() -> None:
    model = tiny_iresnet(0)
    before = _state(model)
    with randomized_stages(model, ["head", "layer4"], seed=3):
        during = _state(model)
        assert not torch.equal(during["fc.weight"], before["fc.weight"])
        assert not torch.equal(during["layer4.0.conv1.weight"], before["layer4.0.conv1.weight"])
        assert torch.equal(during["layer3.0.conv1.weight"], before["layer3.0.conv1.weight"])
    for k, v in _state(model).items():
        assert torch.equal(v, before[k]), k
    # Deterministic per seed.
    with randomized_stages(model, ["head"], seed=3):
        again = _state(model)
    torch.testing.assert_close(again["fc.weight"], during["fc.weight"], rtol=0, atol=0)


def test_randomization_restores_after_an_exception() -> None:
    model = tiny_iresnet(0)
    before = _state(model)
    with (
        pytest.raises(RuntimeError, match="boom"),
        randomized_stages(model, IRESNET_STAGES, seed=1),
    ):
        raise RuntimeError("boom")
    for k, v in _state(model).items():
        assert torch.equal(v, before[k]), k


def test_cascading_steps_and_bad_stage() -> None:
    assert cascading_steps(("head", "layer4"))[-1] == ("head", "layer4")
    assert len(cascading_steps()) == len(IRESNET_STAGES)
    with pytest.raises(ValueError, match="stage"), randomized_stages(tiny_iresnet(0), ["nope"]):
        pass


def test_map_similarity_by_hand() -> None:
    a = np.arange(16, dtype=float).reshape(4, 4)
    rho, ssim = map_similarity(a, 2 * a + 1)  # monotone: identical ranks, identical after rescaling
    assert rho == pytest.approx(1.0) and ssim == pytest.approx(1.0)
    rho, _ = map_similarity(a, -a)
    assert rho == pytest.approx(-1.0)


def test_mprt_gradient_passes_edge_detector_fails(face) -> None:
    model = tiny_iresnet(0)
    target = SimilarityTarget(gallery(64), "g")
    before = _state(model)

    def method(name: str):
        return lambda: np.array(explain(model, face, target, methods=[name])[name].values)

    grey = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def sobel() -> np.ndarray:  # independent of the weights
        return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))

    g = mprt(model, method("saliency"), seed=0)
    assert [s.stages for s in g.steps] == cascading_steps()
    for edges in (sobel, method("edges")):  # gmx's registered edge baseline too
        e = mprt(model, edges, seed=0)
        assert all(
            s.spearman == pytest.approx(1.0) and s.ssim == pytest.approx(1.0) for s in e.steps
        )
    ind = mprt(model, method("saliency"), seed=0, cascading=False)
    assert [s.stages for s in ind.steps] == [(st,) for st in IRESNET_STAGES]
    assert all(s.spearman < 0.99 for s in ind.steps)
    assert all(s.spearman == pytest.approx(1.0) for s in mprt(model, sobel, cascading=False).steps)
    # The gradient map changes at every step (|gradient| keeps some input structure even on a
    # random network, Adebayo et al.'s observation, so its correlation stays above 0).
    assert all(s.spearman < 0.9 and s.ssim < 0.9 for s in g.steps)
    assert g.final_spearman < 0.9
    for k, v in _state(model).items():
        assert torch.equal(v, before[k]), k


def test_hog_similarity_by_hand() -> None:
    from gmx.metrics import hog_similarity, map_similarities

    yy, xx = np.mgrid[:64, :64].astype(float)
    a = xx  # a horizontal ramp: every gradient points along x
    assert hog_similarity(a, 3 * a + 2) == pytest.approx(1.0)  # rescaling does not matter
    assert hog_similarity(a, yy) < 0.0  # the orientation histograms differ: x versus y bins
    assert np.isnan(hog_similarity(a, np.zeros_like(a)))
    s = map_similarities(a, a)
    assert (s.spearman, s.ssim, s.hog) == pytest.approx((1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="same"):
        hog_similarity(a, a[:32])


def _signed_gradient(model, face, target):
    """The signed gradient of the similarity target, summed over channels (a gradient map)."""
    x = variant_input(face, Variant(0)).requires_grad_(True)
    fwd = similarity_forward(model, target, 0)
    (g,) = torch.autograd.grad(fwd(x).sum(), x)
    return g[0].sum(0).detach().numpy()


def test_mprt_independent_ssim_hog_and_edge_baseline(face) -> None:
    """Hand-checked: the edge map fails cascading and independent randomisation (similarity exactly
    1 to the original and to the edge baseline, by every measure); the signed gradient passes
    both (mean Spearman below SANITY_MAX_SPEARMAN)."""
    from gmx.metrics.sanity import SANITY_MAX_SPEARMAN, independent_steps

    model = tiny_iresnet(0)
    target = SimilarityTarget(gallery(64), "g")
    before = _state(model)
    edge_map = np.array(explain(model, face, target, methods=["edges"])["edges"].values)
    for cascading in (True, False):
        e = mprt(model, lambda: edge_map.copy(), cascading=cascading, baseline=edge_map)
        assert not e.passes() and e.mean_spearman == pytest.approx(1.0)
        assert e.original_baseline.hog == pytest.approx(1.0)
        for s in e.steps:
            assert (s.spearman, s.ssim, s.hog) == pytest.approx((1.0, 1.0, 1.0))
            assert (s.baseline.spearman, s.baseline.hog) == pytest.approx((1.0, 1.0))
        g = mprt(
            model, lambda: _signed_gradient(model, face, target), cascading=cascading,
            baseline=edge_map,
        )  # fmt: skip
        assert g.passes() and g.mean_spearman < SANITY_MAX_SPEARMAN, [s.spearman for s in g.steps]
        assert all(s.hog < 0.99 and s.ssim < 0.99 for s in g.steps)
        assert all(s.baseline is not None and np.isfinite(s.baseline.hog) for s in g.steps)
    assert [s.stages for s in g.steps] == independent_steps()
    for k, v in _state(model).items():
        assert torch.equal(v, before[k]), k
