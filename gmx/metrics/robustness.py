"""captum.metrics ``infidelity`` and ``sensitivity_max`` on the similarity target.

captum's metrics assume a function of the model input; gmx's target is the cosine similarity of
the face's embedding to a gallery image (:class:`~gmx.explain.SimilarityTarget`), so
:func:`similarity_forward` turns a model, a variant and a target into that function of the
variant's input ``(N, 3, 112, 112)`` tensor (what :func:`gmx.explain.variant_input` makes). The
metrics themselves are captum's; only the perturbations are written here, because gmx's maps are
per pixel while the input has three channels:

* :func:`infidelity` (Yeh et al. 2019): ``E[(sum(a * I) - (f(x) - f(x - I * (x - b))))^2]`` over
  random perturbations ``I`` drawn per *pixel* and shared by the channels, relative to the input
  (captum's "multiplied by inputs" convention, baseline ``b = 0``). So maps of the gradient x input
  family (gradient x input, Integrated Gradients, LRP, occlusion) are scored as they are meant: on
  a linear model gradient x input has infidelity 0. ``"gaussian"``: ``I ~ N(0, sigma^2)``;
  ``"patch"``: ``I`` is 1 on one random square patch (the patch set to the baseline), else 0.
  ``normalize=True`` (default) makes the value invariant to the map's scale (captum's option).
* :func:`sensitivity_max`: the largest relative change ``||e(x + d) - e(x)|| / ||e(x)||`` of the
  explanation under uniform input noise ``|d| <= radius`` (captum's default perturbation).

Lower is better for both. Seeded: the same call gives the same value.

:class:`ForwardMemo` shares forward passes between metric calls that ask for the very same input:
infidelity's perturbations depend only on the face and the seed, not on the map, so every method
of a face asks for the same clean and perturbed passes (the scorecard wraps each face's forward
once and scores every method through it); ROAD runs the same clean batch once per percentile and
method. A hit needs a bit-identical input (same bytes, shape, dtype, device: the same batch
composition), so the shared values are exactly the recomputed ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, Literal

import torch
from captum.metrics import infidelity as _captum_infidelity
from captum.metrics import sensitivity_max as _captum_sensitivity_max
from torch import nn

from gmx.explain.engine import as_explain_model
from gmx.explain.targets import Target

Perturbation = Literal["gaussian", "patch"]
PERTURBATIONS: tuple[Perturbation, ...] = ("gaussian", "patch")
#: Standard deviation of the ``"gaussian"`` perturbation (relative to the input).
INFIDELITY_SIGMA = 0.1
#: Side of the ``"patch"`` perturbation, in input pixels.
PATCH_SIZE = 16
#: Perturbations per input.
DEFAULT_SAMPLES = 16


def similarity_forward(
    model: Any, target: Target, variant_index: int = 0, classifier: nn.Module | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (N, 3, H, W) -> (N,)`` the target's score of one variant's input through ``model``.

    Args:
        model: a backbone, ``GestaltModel``, ``LoadedModel`` or ``ExplainModel``; not modified.
        target: e.g. a :class:`~gmx.explain.SimilarityTarget`; bound to row ``variant_index``.
        variant_index: the target's variant row (its gallery row for a similarity target).
        classifier: for logit targets (default: the model's own).
    """
    pair = as_explain_model(model, classifier)
    fn = target.bind(variant_index, pair.classifier)
    backbone = pair.backbone

    def forward(x: torch.Tensor) -> torch.Tensor:
        return fn(backbone(x))

    return forward


class ForwardMemo:
    """``forward`` memoised by the exact input tensor, for metric calls that repeat passes.

    The key is the input's shape, dtype, device and a BLAKE2b digest of its bytes, so a hit is a
    bit-identical input of the same batch composition and returns (a copy of) the very output the
    first pass gave. Inputs that carry autograd (``requires_grad`` with grad enabled) bypass the
    memo. Keep one memo per scope that repeats passes (one face, one scorecard chunk) and drop it
    after: it never forgets (only outputs and 32-byte digests are kept, not inputs).

    Attributes:
        calls: passes actually run; hits: passes answered from the memo.
    """

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.forward = forward
        self.calls = 0
        self.hits = 0
        self._outputs: dict[tuple[Any, ...], torch.Tensor] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            self.calls += 1
            return self.forward(x)
        data = x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        digest = hashlib.blake2b(data, digest_size=32).digest()
        key = (tuple(x.shape), str(x.dtype), str(x.device), digest)
        got = self._outputs.get(key)
        if got is None:
            self.calls += 1
            got = self._outputs[key] = self.forward(x).detach()
        else:
            self.hits += 1
        return got.clone()


def _pixel_perturb(kind: Perturbation, sigma: float, patch: int, seed: int):
    if kind not in PERTURBATIONS:
        raise ValueError(f"perturbation must be one of {PERTURBATIONS}, got {kind!r}")
    gen = torch.Generator().manual_seed(seed)

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = inputs.shape
        if kind == "gaussian":
            rel = torch.randn((n, 1, h, w), generator=gen, dtype=torch.float64) * sigma
        else:
            side = min(patch, h, w)
            rel = torch.zeros((n, 1, h, w), dtype=torch.float64)
            ys = torch.randint(0, h - side + 1, (n,), generator=gen)
            xs = torch.randint(0, w - side + 1, (n,), generator=gen)
            for i in range(n):
                rel[i, :, ys[i] : ys[i] + side, xs[i] : xs[i] + side] = 1.0
        rel = rel.to(device=inputs.device, dtype=inputs.dtype).expand(n, c, h, w)
        # captum's "multiplied by inputs" convention: the perturbation it pairs with the
        # attribution is I; the input moves by I * (x - 0).
        return rel, inputs - rel * inputs

    return perturb


def infidelity(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    attribution: torch.Tensor,
    *,
    perturbation: Perturbation = "gaussian",
    n_samples: int = DEFAULT_SAMPLES,
    sigma: float = INFIDELITY_SIGMA,
    patch: int = PATCH_SIZE,
    normalize: bool = True,
    seed: int = 0,
    batch: int | None = None,
) -> torch.Tensor:
    """captum's infidelity ``(N,)`` of per-pixel maps ``(N, H, W)`` of ``inputs (N, C, H, W)``.

    The map is spread evenly over the channels (``a / C`` each), so with perturbations shared by the
    channels ``sum(a_c * I)`` is the map's own ``sum(a * I)``. Inputs are not modified.
    """
    x = inputs.detach()
    a = torch.as_tensor(attribution, dtype=x.dtype, device=x.device)
    if x.ndim != 4 or a.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(
            f"attribution {tuple(a.shape)} must be (N, H, W) of inputs {tuple(x.shape)}"
        )
    spread = (a[:, None] / x.shape[1]).expand_as(x)
    with torch.no_grad():
        return _captum_infidelity(
            forward,
            _pixel_perturb(perturbation, sigma, patch, seed),
            x,
            spread,
            n_perturb_samples=n_samples,
            max_examples_per_batch=batch,
            normalize=normalize,
        )


def sensitivity_max(
    explanation: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    *,
    radius: float = 0.02,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    batch: int | None = None,
) -> torch.Tensor:
    """captum's ``sensitivity_max`` ``(N,)`` of ``explanation(x) -> maps`` at ``inputs``.

    ``radius`` is in the units of ``inputs`` (model input in ``[-1, 1]``: 0.02 is about 2.5 grey
    levels). captum draws the noise from torch's global generator, so it is forked and seeded here.
    """

    def run(inp: Any) -> Any:
        # captum hands the inputs over as a one-tuple and wants a tuple back; gradient methods
        # need autograd on.
        x = inp[0] if isinstance(inp, tuple) else inp
        with torch.enable_grad():
            out = explanation(x).detach()
        return (out,) if isinstance(inp, tuple) else out

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _captum_sensitivity_max(
            run,
            inputs.detach(),
            perturb_radius=radius,
            n_perturb_samples=n_samples,
            max_examples_per_batch=batch,
        )


__all__ = [
    "DEFAULT_SAMPLES",
    "INFIDELITY_SIGMA",
    "PATCH_SIZE",
    "PERTURBATIONS",
    "ForwardMemo",
    "infidelity",
    "sensitivity_max",
    "similarity_forward",
]
