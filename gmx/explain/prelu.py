"""PReLU rewritten as ReLUs, so that every backward rule of the explainers applies (the PReLU fix).

captum's :class:`~captum.attr.GuidedBackprop` and :class:`~captum.attr.Deconvolution` override the
backward pass of ``nn.ReLU`` modules only, so on a PReLU network (every iResNet) they silently return
plain gradients; DeepLIFT runs on PReLU without a warning but loses completeness. A PReLU is exactly

    prelu(x) = relu(x) - a * relu(-x)

(``a`` the per-channel slope), and :func:`decompose_prelu` rewrites a *copy* of a model that way with two
separate ``nn.ReLU`` modules per PReLU, which every captum rule understands. Each ReLU must receive an
input tensor used by nothing else: captum hooks a module's *input tensor* and replaces its whole
accumulated gradient, so ``relu(x)`` and ``-x`` sharing ``x`` would let the positive branch's rule
overwrite the negative branch's gradient (then guided backprop, deconvnet and DeepLIFT treat the
PReLU as a plain ReLU, and DeepLIFT loses completeness). ``relu(x.clone())`` avoids that. The user's model is never
touched; outputs are bit-identical (``relu(x) - a*relu(-x)`` rounds exactly like ``a*x``; tested).

Inside the engine (a :class:`~gmx.explain._trace.Trace` is active) the same module runs one fused
``prelu`` kernel whose backward applies the rule the trace asks for, derived from the decomposition:

* ``gradient``: the ordinary derivative of the two ReLUs (0 at ``x == 0``, like ``relu``).
* ``guided`` (Springenberg et al. 2015): each ReLU passes ``relu(grad_in)`` (gradient masked by the
  forward sign, then negative gradients dropped), exactly like captum on the decomposed copy.
* ``deconv`` (Zeiler & Fergus 2014): each ReLU passes ``relu(grad_out)`` (forward sign ignored).
* ``guided_relu`` / ``deconv_relu``: the papers' ReLU rules applied to the PReLU as a whole, its
  negative part passing nothing: ``relu(grad)`` where ``x > 0`` (guided) or everywhere (deconv).
* ``rescale`` (DeepLIFT, Shrikumar et al. 2017): each ReLU passes ``grad_out * Δout / Δin`` against the
  reference pass, falling back to the gradient where ``|Δin| < 1e-10`` (captum's convention).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gmx.explain._trace import Trace, active_trace

#: DeepLIFT's threshold below which an input difference counts as zero (captum's default).
RESCALE_EPS = 1e-10


def _channel_view(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Slope broadcastable against ``x`` (channels on dim 1, like ``nn.PReLU``)."""
    if weight.numel() == 1 or x.dim() < 2:
        return weight.reshape(())
    shape = [1] * x.dim()
    shape[1] = weight.numel()
    return weight.reshape(shape)


@dataclass(frozen=True)
class _RescaleTerms:
    """The parts of the rescale rule that do not depend on the incoming gradient: computed once per
    PReLU and reference pass, reused by every backward pass over the graph (one per target).

    Where ``|x - x0| < eps`` the rule falls back to the gradient: there the quotients below are
    ``0 / 1`` and the masks pick the gradient instead."""

    ref: torch.Tensor  # the reference input they were computed for
    pos_grad: torch.Tensor  # small & x > 0: relu(x) passes the gradient
    neg_grad: torch.Tensor  # small & -x > 0: relu(-x) passes the gradient
    num: torch.Tensor  # relu(x) - relu(x0), 0 where small
    d_in: torch.Tensor  # x - x0, 1 where small
    num_u: torch.Tensor  # relu(-x) - relu(-x0), 0 where small
    d_in_u: torch.Tensor  # -x - (-x0), 1 where small


def _rescale_terms(ctx, x: torch.Tensor, trace: Trace) -> _RescaleTerms:  # type: ignore[no-untyped-def]
    x0 = trace.refs.get(ctx.key)
    if x0 is None:
        raise RuntimeError("rescale rule needs a reference pass before the backward pass")
    terms: _RescaleTerms | None = getattr(ctx, "rescale_terms", None)
    if terms is not None and terms.ref is x0:
        return terms
    d_in = x - x0
    u, u0 = -x, -x0
    small = d_in.abs() < RESCALE_EPS  # the same for the negated branch: |-x + x0|
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    one = torch.ones((), dtype=x.dtype, device=x.device)
    terms = _RescaleTerms(
        ref=x0,
        pos_grad=small & (x > 0),
        neg_grad=small & (u > 0),
        num=torch.where(small, zero, F.relu(x) - F.relu(x0)),
        d_in=torch.where(small, one, d_in),
        num_u=torch.where(small, zero, F.relu(u) - F.relu(u0)),
        d_in_u=torch.where(small, one, u - u0),
    )
    ctx.rescale_terms = terms
    return terms


@dataclass(frozen=True)
class _Masks:
    """The forward-sign terms of every rule: computed on a node's first backward pass and reused by
    the others (one per target and rule), instead of re-deriving ``x > 0`` / ``x < 0`` each time."""

    dtype: torch.dtype  # the gradient dtype ``slope`` is in
    pos: torch.Tensor  # x > 0
    slope: torch.Tensor  # the PReLU's derivative: 1 where x > 0, a where x < 0, 0 where x == 0


def _masks(ctx, x: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype) -> _Masks:  # type: ignore[no-untyped-def]
    masks: _Masks | None = getattr(ctx, "masks", None)
    if masks is not None and masks.dtype == dtype:
        return masks
    a = _channel_view(weight, x).to(dtype)
    one = torch.ones((), dtype=dtype, device=x.device)
    zero = torch.zeros((), dtype=dtype, device=x.device)
    pos = x > 0
    masks = _Masks(dtype, pos, torch.where(pos, one, torch.where(x < 0, a, zero)))
    ctx.masks = masks
    return masks


class _ModalPReLU(torch.autograd.Function):
    """Fused PReLU whose backward rule is read from the trace at backward time.

    The rules below are the decomposition's (module docstring) in fewer tensor operations, equal
    value for value to the literal two-ReLU formulas (``tests/explain/test_prelu.py`` keeps those as
    the reference; the only possible difference is the sign of a zero): with ``t = grad * slope``
    (``grad`` where ``x > 0``, ``a * grad`` where ``x < 0``, 0 at ``x == 0``), the negative branch
    ``-relu(-(a * grad))`` is ``min(a * grad, 0)``.
    """

    @staticmethod
    def forward(ctx, x, weight, trace, key):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.trace = trace
        ctx.key = key
        return F.prelu(x, weight.to(x.dtype))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        trace: Trace = ctx.trace
        rule = trace.rule
        if rule == "gradient":
            gx = grad * _masks(ctx, x, weight, grad.dtype).slope
        elif rule == "guided":
            masks = _masks(ctx, x, weight, grad.dtype)
            t = grad * masks.slope
            gx = torch.where(masks.pos, t.clamp_min(0), t.clamp_max(0))
        elif rule == "deconv":
            a = _channel_view(weight, x).to(grad.dtype)
            gx = F.relu(grad) + (grad * a).clamp_max(0)
        elif rule == "guided_relu":
            # The PReLU as the papers' ReLU: positive gradients of positively activated units only.
            masks = _masks(ctx, x, weight, grad.dtype)
            gx = torch.where(
                masks.pos, F.relu(grad), torch.zeros((), dtype=grad.dtype, device=grad.device)
            )
        elif rule == "deconv_relu":
            gx = F.relu(grad)
        elif rule == "rescale":
            # relu(x) passes grad * Δout / Δin, relu(-x) receives -(a * grad) and passes it times its
            # own ratio, subtracted: "- (-(a g)) * r" is written "+ (a g) * r" (negation is exact).
            terms = _rescale_terms(ctx, x, trace)
            a = _channel_view(weight, x).to(grad.dtype)
            ag = grad * a
            pos = torch.where(terms.pos_grad, grad, grad * terms.num / terms.d_in)
            gx = pos + torch.where(terms.neg_grad, ag, ag * terms.num_u / terms.d_in_u)
        else:
            raise ValueError(f"unknown backward rule {rule!r}")
        return gx.to(x.dtype), None, None, None


class DecomposedPReLU(nn.Module):
    """``relu(x) - a * relu(-x)`` with two separate ``nn.ReLU`` modules (equal to ``nn.PReLU``).

    Args:
        weight: the PReLU slopes ``(C,)`` or ``(1,)``; copied.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone(), requires_grad=weight.requires_grad)
        self.relu_pos = nn.ReLU()
        self.relu_neg = nn.ReLU()

    @classmethod
    def from_module(cls, module: nn.Module) -> DecomposedPReLU:
        """Build from an ``nn.PReLU`` (its slopes) or an ``nn.ReLU`` (slope 0)."""
        if isinstance(module, nn.PReLU):
            return cls(module.weight)
        if isinstance(module, nn.ReLU):
            return cls(torch.zeros(1))
        raise ValueError(f"expected nn.PReLU or nn.ReLU, got {type(module).__name__}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trace = active_trace()
        if trace is None:
            # captum / pytorch-grad-cam path: the ReLU modules are visible to their hooks. Each ReLU
            # gets an input tensor of its own (captum hooks the *input tensor*, whose gradient would
            # otherwise include the other branch's and be overwritten as a whole).
            return self.relu_pos(x.clone()) - _channel_view(self.weight, x) * self.relu_neg(-x)
        key = trace.next_call()
        if trace.record_refs:
            trace.refs[key] = x.detach()
        if not (torch.is_grad_enabled() and x.requires_grad):
            return F.prelu(x, self.weight.to(x.dtype))
        return _ModalPReLU.apply(x, self.weight.detach(), trace, key)


def decompose_prelu(model: nn.Module, *, include_relu: bool = False) -> nn.Module:
    """Deep copy of ``model`` with every ``nn.PReLU`` replaced by :class:`DecomposedPReLU`.

    Args:
        model: any module; never modified.
        include_relu: also replace ``nn.ReLU`` modules (slope 0), so the engine's backward rules
            reach them too. captum understands plain ``nn.ReLU`` already, so the default is False.

    Returns:
        The rewritten copy, in the same train/eval mode and on the same device as ``model``.
    """
    clone = copy.deepcopy(model)
    targets: tuple[type[nn.Module], ...] = (nn.PReLU, nn.ReLU) if include_relu else (nn.PReLU,)
    for name, module in list(clone.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, targets) and not isinstance(child, DecomposedPReLU):
                replacement = DecomposedPReLU.from_module(child)
                param = next(child.parameters(), None)
                if param is not None:
                    replacement = replacement.to(param.device)
                else:
                    device = next(clone.parameters(), torch.empty(0)).device
                    replacement = replacement.to(device)
                replacement.train(child.training)
                setattr(module, child_name, replacement)
        del name
    return clone


__all__ = ["RESCALE_EPS", "DecomposedPReLU", "decompose_prelu"]
