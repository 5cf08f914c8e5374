"""The PReLU fix: exact decomposition, and every backward rule applied (hand-computed cases)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import Deconvolution, DeepLift, GuidedBackprop, Saliency
from torch import nn

from gmx.explain import SimilarityTarget, decompose_prelu, explain
from gmx.explain._trace import Trace, active_trace, tracing
from gmx.explain.prelu import RESCALE_EPS, DecomposedPReLU

from .helpers import face_input, gallery, tiny_iresnet

# Hand case: y = w2 . prelu(h), h = x (identity layer), slopes a = 0.25.
X = [1.0, -2.0, 3.0, -4.0]
X0 = [-1.0, 1.0, 1.0, -1.0]
W2 = [2.0, -3.0, -1.0, 5.0]
EXPECTED = {
    # d/dx: w2 where x > 0, a * w2 where x < 0.
    "gradient": [2.0, -0.75, -1.0, 1.25],
    # Each ReLU of relu(x) - a relu(-x) passes relu(masked grad): positive grads of active units only.
    "guided": [2.0, -0.75, 0.0, 0.0],
    # Each ReLU passes relu(grad_out), ignoring the forward sign.
    "deconv": [2.0, -0.75, -0.25, 5.0],
    # prelu="as_relu": the papers' rule on the whole unit. Guided: positive gradients of positively
    # activated units only (x > 0 and g > 0); x = -2 with g = -3 passes nothing (not -0.75).
    "guided_relu": [2.0, 0.0, 0.0, 0.0],
    # Deconvnet: relu(g) whatever the forward sign, no slope.
    "deconv_relu": [2.0, 0.0, 0.0, 5.0],
}
# DeepLIFT rescale against X0: (x - x0) * w2 * (y(x) - y(x0)) / (x - x0), sums to f(x) - f(x0) = 1.25.
EXPECTED_DEEPLIFT = [2.5, 4.5, -2.0, -3.75]


class Hand(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4, bias=False)
        self.act = nn.PReLU(4)
        self.out = nn.Linear(4, 1, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.eye(4))
            self.act.weight.fill_(0.25)
            self.out.weight.copy_(torch.tensor([W2]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.lin(x)))[:, 0]


def _engine_rule(model: nn.Module, rule: str) -> list[float]:
    clone = decompose_prelu(model, include_relu=True)
    trace = Trace()
    x = torch.tensor([X], requires_grad=True)
    with torch.enable_grad(), tracing(trace):
        trace.new_pass()
        out = clone(x)
    if rule == "rescale":
        with torch.no_grad(), tracing(trace):
            trace.new_pass(record_refs=True)
            clone(torch.tensor([X0]))
            trace.record_refs = False
    trace.rule = rule
    (grad,) = torch.autograd.grad(out.sum(), x)
    if rule == "rescale":
        return ((x - torch.tensor([X0])) * grad)[0].tolist()
    return grad[0].tolist()


@pytest.mark.parametrize("rule", ["gradient", "guided", "deconv", "guided_relu", "deconv_relu"])
def test_engine_rules_match_hand_computed_values(rule: str) -> None:
    assert _engine_rule(Hand(), rule) == pytest.approx(EXPECTED[rule], abs=1e-6)


def test_engine_deeplift_matches_hand_computed_values_and_completeness() -> None:
    model = Hand()
    attr = _engine_rule(model, "rescale")
    assert attr == pytest.approx(EXPECTED_DEEPLIFT, abs=1e-6)
    delta = model(torch.tensor([X])) - model(torch.tensor([X0]))
    assert sum(attr) == pytest.approx(float(delta.detach()), abs=1e-6)


def test_captum_on_decomposed_copy_applies_each_rule() -> None:
    model = Hand()
    clone = decompose_prelu(model)
    x = torch.tensor([X])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert GuidedBackprop(clone).attribute(x)[0].tolist() == pytest.approx(EXPECTED["guided"])
        assert Deconvolution(clone).attribute(x)[0].tolist() == pytest.approx(EXPECTED["deconv"])
        dl = DeepLift(clone).attribute(x, baselines=torch.tensor([X0]))[0].tolist()
    assert dl == pytest.approx(EXPECTED_DEEPLIFT, abs=1e-6)


def test_captum_on_the_as_relu_copy_applies_the_papers_rules() -> None:
    from gmx.explain.reference import _PReLUAsReLU

    model = decompose_prelu(Hand())
    model.act = _PReLUAsReLU(model.act.weight)
    x = torch.tensor([X])
    with torch.no_grad():
        assert torch.equal(model(x), Hand()(x))  # forward unchanged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gbp = GuidedBackprop(model).attribute(x)[0].tolist()
        deconv = Deconvolution(model).attribute(x)[0].tolist()
    assert gbp == pytest.approx(EXPECTED["guided_relu"])
    assert deconv == pytest.approx(EXPECTED["deconv_relu"])


def test_captum_on_raw_prelu_silently_returns_plain_gradients() -> None:
    # The bug the decomposition fixes: captum only overrides nn.ReLU.
    x = torch.tensor([X])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gbp = GuidedBackprop(Hand()).attribute(x)[0].tolist()
        deconv = Deconvolution(Hand()).attribute(x)[0].tolist()
    assert gbp == pytest.approx(EXPECTED["gradient"])
    assert deconv == pytest.approx(EXPECTED["gradient"])


def test_decomposition_is_bit_exact_and_leaves_the_model_alone() -> None:
    model = tiny_iresnet(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    clone = decompose_prelu(model)
    assert not any(isinstance(m, DecomposedPReLU) for m in model.modules())
    n_prelu = sum(isinstance(m, nn.PReLU) for m in model.modules())
    assert sum(isinstance(m, DecomposedPReLU) for m in clone.modules()) == n_prelu > 0
    assert not any(isinstance(m, nn.PReLU) for m in clone.modules())
    x = torch.randn(4, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
        assert torch.equal(model.forward_maps(x), clone.forward_maps(x))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


@pytest.mark.parametrize("channels", [1, 5])
def test_decomposed_module_equals_prelu_elementwise(channels: int) -> None:
    prelu = nn.PReLU(channels)
    with torch.no_grad():
        prelu.weight.uniform_(-0.5, 0.7)
    dec = DecomposedPReLU.from_module(prelu)
    x = torch.randn(3, 5, 4, 4) * 10
    x[0, 0, 0, :2] = 0.0
    assert torch.equal(prelu(x), dec(x))
    with tracing(Trace()):
        assert torch.equal(prelu(x), dec(x))


def test_guided_backprop_and_deconvolution_differ_from_saliency_on_iresnet(face) -> None:
    model = tiny_iresnet(0)
    target = SimilarityTarget(gallery(64))
    methods = ["saliency", "guided_backprop", "deconvolution"]
    for backend in ("engine", "reference"):
        maps = explain(model, face, target, methods=methods, backend=backend)
        sal = maps["saliency"].values
        for name in ("guided_backprop", "deconvolution"):
            other = maps[name].values
            # Not |gradient| up to scale: compare with both the signed and absolute maps.
            assert abs(np.corrcoef(np.abs(other).ravel(), sal.ravel())[0, 1]) < 0.99
    # The signed gradient, for the same comparison.
    x = torch.from_numpy(face).permute(2, 0, 1)[None].float() / 127.5 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grad = Saliency(_score(model, target)).attribute(x, abs=False)[0].sum(0).numpy()
    engine = explain(model, face, target, methods=["guided_backprop", "deconvolution"])
    for amap in engine.values():
        assert not np.allclose(amap.values, grad, atol=1e-6)
    assert active_trace() is None


def _score(model: nn.Module, target: SimilarityTarget) -> nn.Module:
    fn = target.bind(0)

    class Score(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return fn(self.model(x))

    return Score()


@pytest.mark.parametrize("rule", ["guided", "deconv", "gradient"])
def test_rule_applied_at_every_prelu_of_iresnet(face, rule: str) -> None:
    # At every PReLU of a real iResNet, capture the gradient arriving at its output (g) and the one
    # leaving towards its input (gx) under each rule, and check the rule's defining relation.
    model = tiny_iresnet(0)
    clone = decompose_prelu(model, include_relu=True)
    captured: list[tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]] = []
    for module in clone.modules():
        if isinstance(module, DecomposedPReLU):

            def fwd(x, _m=module, _f=DecomposedPReLU.forward):
                gin: list[torch.Tensor] = []
                gout: list[torch.Tensor] = []
                x = x.view_as(x)
                x.register_hook(lambda g: gin.append(g.detach()))
                y = _f(_m, x)
                y.register_hook(lambda g: gout.append(g.detach()))
                slope = _m.weight.detach().reshape(1, -1, 1, 1)
                captured.append((x.detach(), slope, gin, gout))
                return y

            module.forward = fwd  # type: ignore[method-assign]
    trace = Trace()
    x = face_input(face).requires_grad_()
    with torch.enable_grad(), tracing(trace):
        trace.new_pass()
        score = SimilarityTarget(gallery(64)).bind(0)(clone(x))
    trace.rule = rule
    torch.autograd.grad(score.sum(), x)
    assert len(captured) == sum(isinstance(m, DecomposedPReLU) for m in clone.modules()) > 0
    relu = torch.relu
    guided_violations = 0
    for inp, a, (gx,), (g,) in captured:
        assert (a > 0).all()
        if rule == "guided":
            expected = torch.where(inp > 0, relu(g), 0) - torch.where(inp < 0, relu(-a * g), 0)
        elif rule == "deconv":
            # relu(g) - relu(-a g): the forward sign is ignored, negative gradients scaled by a.
            expected = torch.where(g > 0, g, a * g)
        else:
            expected = torch.where(inp > 0, g, 0) + torch.where(inp < 0, a * g, 0)
        torch.testing.assert_close(gx, expected, rtol=1e-6, atol=1e-12)
        # Guided: active units pass only non-negative gradient, negative parts only non-positive.
        guided_violations += int((gx[inp > 0] < 0).sum()) + int((gx[inp < 0] > 0).sum())
    if rule == "guided":
        assert guided_violations == 0
    elif rule == "gradient":
        assert guided_violations > 0  # the control: plain gradients break the guided pattern


def test_deeplift_of_each_target_is_bit_equal_alone_or_after_others(face) -> None:
    """The rescale rule's gradient-free terms are computed once per PReLU and reused by the next
    targets' backward passes (and recomputed for a new baseline): every map equals, bit for bit,
    the map of that target explained alone, with either baseline."""
    from gmx.explain import explain_targets

    model = tiny_iresnet(0)
    targets = [SimilarityTarget(gallery(64, seed=s)) for s in range(3)]
    for baseline in ("black", "grey"):
        params = {"deeplift": {"baseline": baseline}}
        together = explain_targets(model, face, targets, methods=["deeplift"], params=params)
        for target, maps in zip(targets, together, strict=True):
            alone = explain(model, face, target, methods=["deeplift"], params=params)
            np.testing.assert_array_equal(maps["deeplift"].values, alone["deeplift"].values)
            np.testing.assert_array_equal(maps["deeplift"].raw, alone["deeplift"].raw)


def test_the_fast_panel_does_not_import_sympy() -> None:
    """torch imports sympy (1-2 s) on the process's first ``autograd.grad`` with explicit
    ``grad_outputs``; DeepLIFT's backward used one, so the app's first Explain view paid it."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, ROOT)
        from helpers import gallery, synthetic_face, tiny_iresnet
        from gmx.explain import SimilarityTarget, THESIS_PANEL, explain
        explain(tiny_iresnet(0), synthetic_face(), SimilarityTarget(gallery(64)),
                methods=[m for m in THESIS_PANEL if m not in ("occlusion", "integrated_gradients")])
        assert "sympy" not in sys.modules, "sympy was imported"
        """
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code.replace("ROOT", repr(str(Path(__file__).parent)))],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _literal_rule(
    rule: str, x: torch.Tensor, a: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor
) -> torch.Tensor:
    """The backward rules written as the two ReLUs of ``relu(x) - a relu(-x)`` (the module
    docstring's definitions, and the engine's code before it was reduced to fewer operations)."""
    neg_grad = -(grad * a)
    zero = torch.zeros(())
    if rule == "gradient":
        return torch.where(x > 0, grad, zero) - torch.where(x < 0, neg_grad, zero)
    if rule == "guided":
        pos = F.relu(torch.where(x > 0, grad, zero))
        return pos - F.relu(torch.where(x < 0, neg_grad, zero))
    if rule == "deconv":
        return F.relu(grad) - F.relu(neg_grad)
    if rule == "guided_relu":
        return F.relu(torch.where(x > 0, grad, zero))
    if rule == "rescale":
        small = (x - x0).abs() < RESCALE_EPS
        pos = torch.where(
            small, torch.where(x > 0, grad, zero), grad * (F.relu(x) - F.relu(x0)) / (x - x0)
        )
        neg = torch.where(
            small,
            torch.where(-x > 0, neg_grad, zero),
            neg_grad * (F.relu(-x) - F.relu(-x0)) / (-x - (-x0)),
        )
        return pos - neg
    assert rule == "deconv_relu"
    return F.relu(grad)


@pytest.mark.parametrize("rule", [*EXPECTED, "rescale"])
def test_engine_rules_equal_the_literal_two_relu_formulas(rule: str) -> None:
    # Random inputs with exact zeros in x and grad and slopes of both signs: the engine's reduced
    # backward equals the literal formula value for value (torch.equal; only a zero's sign may differ).
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 5, generator=gen)
    x[x.abs() < 0.2] = 0.0
    grad = torch.randn(2, 6, 5, 5, generator=gen)
    grad[grad.abs() < 0.2] = 0.0
    x0 = torch.where(
        torch.rand(x.shape, generator=gen) < 0.2, x, torch.randn(x.shape, generator=gen)
    )
    weight = torch.tensor([0.25, -0.5, 0.0, 1.0, 3.0, -2.0])
    module = DecomposedPReLU(weight)
    trace = Trace()
    xr = x.clone().requires_grad_(True)
    with tracing(trace):
        trace.new_pass(record_refs=True)  # DeepLIFT's reference pass (x0 equals x in 20 % places)
        with torch.no_grad():
            module(x0)
        trace.new_pass()
        y = module(xr)
    for first in ("gradient", rule):  # the second pass reuses the masks cached by the first
        trace.rule = first
        (got,) = torch.autograd.grad(y, xr, grad_outputs=grad, retain_graph=True)
    want = _literal_rule(rule, x, weight.reshape(1, -1, 1, 1), grad, x0)
    assert torch.equal(got, want)
    assert (got != 0).any()
