"""Reference implementations: thin adapters over captum and pytorch-grad-cam (the "naive" way).

Each adapter makes one library call per target and input row, on the private *reference copy* of the
model (PReLU rewritten with ``nn.ReLU`` modules, see :mod:`gmx.explain.prelu`), while the engine holds
that copy's lock. They define what the engine's batched implementations must reproduce (tests and
``benchmarks/explain.py`` compare them) and are available to users as ``backend="reference"``.

pytorch-grad-cam returns maps min-max scaled to ``[0, 1]`` at input size, so their absolute scale is
not comparable with the engine's; comparisons use Pearson correlation and top-pixel overlap.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gmx.encode.model import IRESNET_NORM
from gmx.explain._params import input_value, int_pair
from gmx.explain.prelu import DecomposedPReLU
from gmx.explain.prepared import ReferenceModel, effective_bias
from gmx.explain.targets import TargetFn
from gmx.explain.workspace import MAPS_LAYER


@dataclass(frozen=True)
class ReferenceContext:
    """What a reference adapter gets: the reference copy, input rows and bound targets.

    Attributes:
        model: the reference copy; its lock is held by the caller.
        x: ``(n, 3, H, W)`` float32 rows on the model's device.
        targets: bound target functions (bound to the reference copy's classifier).
        colour_order: channel order of ``x`` (``"RGB"`` or ``"BGR"``).
        norm: the model's input normalisation ``(mean, std)``.
    """

    model: ReferenceModel
    x: torch.Tensor
    targets: Sequence[TargetFn]
    colour_order: str = "RGB"
    norm: tuple[Sequence[float], Sequence[float]] = IRESNET_NORM


class _Embed(nn.Module):
    """``x -> embedding`` with an identity module at the ``forward_maps`` output (a CAM layer)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.maps_tap = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.head(self.maps_tap(self.backbone.forward_maps(x)))


class _Score(nn.Module):
    """``x -> (N,)`` score of one bound target."""

    def __init__(self, backbone: nn.Module, target: TargetFn) -> None:
        super().__init__()
        self.embed = _Embed(backbone)
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.target(self.embed(x))


class _Linearised(nn.Module):
    """``x -> embedding . m`` (per-row multipliers ``m``, repeated over captum's stacked rows)."""

    def __init__(self, backbone: nn.Module, mult: torch.Tensor) -> None:
        super().__init__()
        self.embed = _Embed(backbone)
        self.register_buffer("mult", mult)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed(x)
        reps = e.shape[0] // self.mult.shape[0]
        return (e * self.mult.repeat(reps, 1)).sum(dim=1)


def _layer(module: nn.Module, name: str) -> nn.Module:
    embed = module.embed if isinstance(module, _Score) else module
    if name == MAPS_LAYER:
        return embed.maps_tap
    try:
        return embed.backbone.get_submodule(name)
    except AttributeError:
        raise ValueError(f"unknown layer {name!r}") from None


@contextmanager
def _quiet() -> Iterator[None]:
    # captum warns on every call that it sets hooks; that is expected here.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\..*")
        warnings.filterwarnings("ignore", message=r".*[Hh]ook.*")
        yield


def _clear_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = None


def _per_target_row(
    ctx: ReferenceContext, fn: Callable[[TargetFn, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Stack ``mean over rows of fn(target, row)`` for every target -> ``(T, h, w)``."""
    out = []
    try:
        for target in ctx.targets:
            maps = [fn(target, ctx.x[i : i + 1]) for i in range(ctx.x.shape[0])]
            out.append(torch.stack([m.detach().float() for m in maps]).mean(0))
    finally:
        _clear_grads(ctx.model.backbone)
    return torch.stack(out)


def _constant(ctx: ReferenceContext, v: Any, like: torch.Tensor) -> torch.Tensor:
    """A fill/baseline image like ``like``, from a name or a number (see ``input_value``)."""
    return input_value(v, "baseline", ctx.norm).to(like.device).expand_as(like).contiguous()


# -- captum ---------------------------------------------------------------------------------------


def occlusion(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """captum ``Occlusion`` (one window per forward pass), channel mean."""
    from captum.attr import Occlusion

    if p["rerank"]:
        raise ValueError("re-ranked occlusion couples the variants; captum has no equivalent")
    wh, ww = int_pair(p["window"], "window")
    sh, sw = int_pair(p["stride"], "stride")

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        with _quiet():
            attr = Occlusion(_Score(ctx.model.backbone, target)).attribute(
                row,
                sliding_window_shapes=(3, wh, ww),
                strides=(3, sh, sw),
                baselines=_constant(ctx, p["fill"], row),
                perturbations_per_eval=1,
            )
        return attr[0].mean(0)

    with torch.no_grad():
        return _per_target_row(ctx, one)


def saliency(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """captum ``Saliency(abs=True)``, maximum over channels."""
    from captum.attr import Saliency

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        with _quiet():
            return Saliency(_Score(ctx.model.backbone, target)).attribute(row, abs=True)[0].amax(0)

    return _per_target_row(ctx, one)


class _PReLUAsReLU(nn.Module):
    """A PReLU whose gradient flows only through its ReLU part (forward unchanged, bit for bit).

    ``relu(x) + detach(prelu(x) - relu(x))``: captum's ReLU rules then treat the PReLU as the ReLU
    the papers define, its negative part passing nothing (``prelu="as_relu"``).
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype)
        return self.relu(x.clone()) + (F.prelu(x, w) - F.relu(x)).detach()


def _rule_backbone(ctx: ReferenceContext, p: Mapping[str, Any]) -> nn.Module:
    """The reference copy, or for ``prelu="as_relu"`` a copy with every PReLU as :class:`_PReLUAsReLU`."""
    if p["prelu"] == "decomposed":
        return ctx.model.backbone
    if p["prelu"] != "as_relu":
        raise ValueError(f"prelu must be 'decomposed' or 'as_relu', got {p['prelu']!r}")
    clone = copy.deepcopy(ctx.model.backbone)
    for module in list(clone.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, DecomposedPReLU):
                setattr(module, name, _PReLUAsReLU(child.weight))
    return clone


def deconvolution(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """captum ``Deconvolution`` on the PReLU-decomposed copy (or PReLU-as-ReLU copy), channel sum."""
    from captum.attr import Deconvolution

    backbone = _rule_backbone(ctx, p)

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        with _quiet():
            return Deconvolution(_Score(backbone, target)).attribute(row)[0].sum(0)

    return _per_target_row(ctx, one)


def guided_backprop(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """captum ``GuidedBackprop`` on the PReLU-decomposed copy (or PReLU-as-ReLU copy), channel sum."""
    from captum.attr import GuidedBackprop

    backbone = _rule_backbone(ctx, p)

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        with _quiet():
            return GuidedBackprop(_Score(backbone, target)).attribute(row)[0].sum(0)

    return _per_target_row(ctx, one)


def deeplift(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """captum ``DeepLift`` on the decomposed copy with the target head linearised.

    The head multipliers (the target's gradient averaged along the embedding path, see
    :func:`gmx.explain.workspace.path_gradient`) make captum's linear target equal the engine's
    definition; with a linear target (a logit) they are just the classifier row.
    """
    from captum.attr import DeepLift

    from gmx.explain.workspace import path_gradient

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        x0 = _constant(ctx, p["baseline"], row)
        embed = _Embed(ctx.model.backbone)
        with torch.no_grad():
            e, e0 = embed(row), embed(x0)
        mult = path_gradient(target, e0, e)
        with _quiet():
            attr = DeepLift(_Linearised(ctx.model.backbone, mult)).attribute(row, baselines=x0)
        return attr[0].sum(0)

    return _per_target_row(ctx, one)


def integrated_gradients(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """captum ``IntegratedGradients`` (Gauss-Legendre, all steps in one batch), channel sum."""
    from captum.attr import IntegratedGradients

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        with _quiet():
            attr = IntegratedGradients(_Score(ctx.model.backbone, target)).attribute(
                row,
                baselines=_constant(ctx, p["baseline"], row),
                n_steps=int(p["steps"]),
                method="gausslegendre",
            )
        return attr[0].sum(0)

    return _per_target_row(ctx, one)


def gradcam_signed(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """captum ``LayerGradCam(relu_attributions=False)`` at the layer's resolution."""
    from captum.attr import LayerGradCam

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        model = _Score(ctx.model.backbone, target)
        with _quiet():
            attr = LayerGradCam(model, _layer(model, p["layer"])).attribute(
                row, relu_attributions=False
            )
        return attr[0, 0]

    return _per_target_row(ctx, one)


def hirescam_signed(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """captum ``LayerGradientXActivation`` summed over channels (HiResCAM without ReLU)."""
    from captum.attr import LayerGradientXActivation

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        model = _Score(ctx.model.backbone, target)
        with _quiet():
            attr = LayerGradientXActivation(model, _layer(model, p["layer"])).attribute(row)
        return attr[0].sum(0)

    return _per_target_row(ctx, one)


# -- pytorch-grad-cam ----------------------------------------------------------------------------


def _grad_cam(cls_name: str, ctx: ReferenceContext, layer: str | None) -> torch.Tensor:
    import pytorch_grad_cam

    cls = getattr(pytorch_grad_cam, cls_name)

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        model = _Embed(ctx.model.backbone)
        layers = [] if layer is None else [_layer(model, layer)]
        cam = cls(model=model, target_layers=layers)
        try:
            out = cam(input_tensor=row, targets=[lambda e: target(e[None])[0]])
        finally:
            # Not ``with cam``: BaseCAM.__exit__ swallows IndexError.
            cam.activations_and_grads.release()
        return torch.from_numpy(np.asarray(out[0], dtype=np.float32))

    return _per_target_row(ctx, one)


def gradcam(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """pytorch-grad-cam ``GradCAM`` (ReLU, min-max scaled, 112x112)."""
    return _grad_cam("GradCAM", ctx, p["layer"])


def hirescam(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """pytorch-grad-cam ``HiResCAM``; without ReLU, captum ``LayerGradientXActivation``."""
    if not p["relu"]:
        return hirescam_signed(ctx, p)
    return _grad_cam("HiResCAM", ctx, p["layer"])


def gradcam_plusplus(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """pytorch-grad-cam ``GradCAMPlusPlus``."""
    return _grad_cam("GradCAMPlusPlus", ctx, p["layer"])


def layercam(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """pytorch-grad-cam ``LayerCAM``."""
    return _grad_cam("LayerCAM", ctx, p["layer"])


def fullgrad(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """``rescale="channel"``: pytorch-grad-cam ``FullGrad`` (all bias layers). ``"layer"``: the
    definition with the authors' per-layer rescaling, written out naively (one gradient call per
    target and row, every layer upsampled on its own; no library implements it)."""
    if p["rescale"] == "channel":
        return _grad_cam("FullGrad", ctx, None)
    if p["rescale"] != "layer":
        raise ValueError(f"rescale must be 'layer' or 'channel', got {p['rescale']!r}")
    backbone = ctx.model.backbone
    layers = [(m, b) for m in backbone.modules() if (b := effective_bias(m)) is not None]

    def one(target: TargetFn, row: torch.Tensor) -> torch.Tensor:
        outputs: dict[int, torch.Tensor] = {}

        def keep(i: int):
            return lambda _m, _i, out: outputs.__setitem__(i, out)

        handles = [m.register_forward_hook(keep(i)) for i, (m, _) in enumerate(layers)]
        try:
            x = row.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                score = target(_Embed(backbone)(x)).sum()
            used = sorted(outputs)
            grads = torch.autograd.grad(score, [x, *(outputs[i] for i in used)], allow_unused=True)
        finally:
            for h in handles:
                h.remove()
        size = tuple(row.shape[-2:])
        total = _minmax_layer((x * grads[0]).abs()).sum(1)[0]
        for i, g in zip(used, grads[1:], strict=True):
            b = layers[i][1]
            if g is None:
                continue
            term = _minmax_layer((b[None, :, None, None] * g).abs()).sum(1, keepdim=True)
            total = total + F.interpolate(term, size=size, mode="bilinear")[0, 0]
        return total.detach()

    return _per_target_row(ctx, one)


def _minmax_layer(v: torch.Tensor) -> torch.Tensor:
    flat = v.flatten(1)
    v = v - flat.min(dim=1).values[:, None, None, None]
    return v / (1e-6 + v.flatten(1).max(dim=1).values[:, None, None, None])


# -- baselines -------------------------------------------------------------------------------------


def random_map(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """NumPy's seeded generator (the definition itself; no library involved)."""
    rng = np.random.default_rng(int(p["seed"]))
    noise = torch.from_numpy(rng.random(tuple(ctx.x.shape[-2:]), dtype=np.float32))
    return noise[None].expand(len(ctx.targets), -1, -1).clone()


def edges(ctx: ReferenceContext, p: Mapping[str, Any]) -> torch.Tensor:
    """OpenCV ``Sobel`` (ksize 3, reflect-101 borders) magnitude of the BT.601 luma."""
    import cv2

    maps = []
    weights = (0.299, 0.587, 0.114) if ctx.colour_order != "BGR" else (0.114, 0.587, 0.299)
    for row in ctx.x.detach().cpu().numpy():
        y = (weights[0] * row[0] + weights[1] * row[1] + weights[2] * row[2]).astype(np.float32)
        gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
        maps.append(np.sqrt(gx**2 + gy**2))
    mean = torch.from_numpy(np.mean(maps, axis=0))
    return mean[None].expand(len(ctx.targets), -1, -1).clone()


__all__ = [
    "ReferenceContext",
    "deconvolution",
    "deeplift",
    "edges",
    "fullgrad",
    "gradcam",
    "gradcam_plusplus",
    "gradcam_signed",
    "guided_backprop",
    "hirescam",
    "hirescam_signed",
    "integrated_gradients",
    "layercam",
    "occlusion",
    "random_map",
    "saliency",
]
