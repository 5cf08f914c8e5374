"""The built-in explanation methods (engine implementations), registered by name.

Every method returns raw maps ``(n, T, h, w)``: one per input row of the workspace and target. The
engine averages the rows of one face (SmoothGrad's noisy copies) or keeps them apart (a batch of
faces, for methods registered ``batchable=True``: their row ``i`` depends only on input row ``i``).
The array maths lives in :mod:`gmx.explain.kernels`, parameter coercion in
:mod:`gmx.explain._params`. Input-attribution maps are reduced over colour channels by summing
(signed methods: the sum of a completeness method's map is the score change) or, for Saliency, by the
maximum absolute gradient (Simonyan et al.). Reference adapters over captum / pytorch-grad-cam live in
:mod:`gmx.explain.reference`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from gmx.explain import reference as ref
from gmx.explain._params import batch_size, input_value, int_pair, positive_int
from gmx.explain._trace import Trace, tracing
from gmx.explain.kernels import (
    gradcam_map,
    gradcam_pp_map,
    hirescam_map,
    layercam_map,
    minmax_per_channel,
    sobel_magnitude,
    sum_channels,
    upsample,
)
from gmx.explain.occlusion import occluded_embeddings, window_starts
from gmx.explain.registry import register_method
from gmx.explain.workspace import (
    MAPS_LAYER,
    Workspace,
    gauss_legendre,
    precision_context,
    resolve_precision,
)


def _per_target(ws: Workspace, fn) -> torch.Tensor:
    """``(n, T, h, w)`` from ``fn(t) -> (n, h, w)`` for every target ``t``."""
    return torch.stack([fn(t) for t in range(ws.n_targets)], dim=1)


def _plan_layer(ws: Workspace, p: Mapping[str, Any]) -> None:
    ws.want_layer(p["layer"])


# -- input attribution -------------------------------------------------------------------------


@register_method(
    "occlusion",
    "Occlusion",
    family="input",
    signed=True,
    defaults={
        "window": 10,
        "stride": 5,
        "fill": "black",
        "batch_size": 0,
        "precision": "auto",
        "incremental": True,
    },
    reference=ref.occlusion,
    units=lambda p, hw, device: _occlusion_units(p, hw, device),
    citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
)
def occlusion(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Mean score drop ``f(x) - f(x occluded)`` over the windows covering each pixel."""
    wh, ww = int_pair(p["window"], "window")
    sh, sw = int_pair(p["stride"], "stride")
    fill = input_value(p["fill"], "fill", ws.norm).to(ws.device)[0]
    batch = batch_size(p["batch_size"], "occlusion", ws.device)
    precision = resolve_precision(p["precision"], ws.device)
    x = ws.x[:1].contiguous(memory_format=torch.channels_last)
    H, W = x.shape[-2:]
    windows = [
        (y, min(y + wh, H), xx, min(xx + ww, W))
        for y in window_starts(H, wh, sh)
        for xx in window_starts(W, ww, sw)
    ]
    total = torch.zeros((ws.n_targets, H, W), dtype=torch.float64, device=ws.device)
    count = torch.zeros((H, W), dtype=torch.float64, device=ws.device)
    with torch.inference_mode(), tracing(Trace()), precision_context(ws.device, precision):
        embed = occluded_embeddings(
            ws.backbone, x, windows, fill, incremental=bool(p["incremental"])
        )
        clean = torch.stack([t(embed(-1, 0).float()) for t in ws.targets], dim=1)[0]  # (T,)
        for start in range(0, len(windows), batch):
            stop = min(start + batch, len(windows))
            emb = embed(start, stop).float()
            scores = torch.stack([t(emb) for t in ws.targets], dim=1)  # (b, T)
            drop = (clean[None, :] - scores).double()
            for i, (y0, y1, x0, x1) in enumerate(windows[start:stop]):
                total[:, y0:y1, x0:x1] += drop[i][:, None, None]
                count[y0:y1, x0:x1] += 1
            ws.progress.step()
    return (total / count.clamp_min(1)).float()[None]  # one row: the face


def _occlusion_units(p: Mapping[str, Any], hw: tuple[int, int], device: torch.device) -> int:
    wh, ww = int_pair(p["window"], "window")
    sh, sw = int_pair(p["stride"], "stride")
    n = len(window_starts(hw[0], wh, sh)) * len(window_starts(hw[1], ww, sw))
    return math.ceil(n / batch_size(p["batch_size"], "occlusion", device))


@register_method(
    "saliency",
    "Saliency",
    family="input",
    batchable=True,
    signed=False,
    shared=True,
    smoothable=True,
    reference=ref.saliency,
    citation="Simonyan, Vedaldi & Zisserman, Deep Inside Convolutional Networks, ICLR-W 2014",
)
def saliency(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Maximum absolute input gradient over colour channels."""
    return _per_target(ws, lambda t: ws.gradients(t).input.abs().amax(dim=1))


@register_method(
    "deconvolution",
    "Deconvolution",
    family="input",
    batchable=True,
    signed=True,
    shared=True,
    smoothable=True,
    reference=ref.deconvolution,
    citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
)
def deconvolution(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Input 'gradient' with every ReLU passing ``relu(grad_out)`` (PReLU decomposed)."""
    return _per_target(ws, lambda t: sum_channels(ws.rule_gradient("deconv", t)))


@register_method(
    "guided_backprop",
    "Guided Backprop",
    family="input",
    batchable=True,
    signed=True,
    shared=True,
    smoothable=True,
    reference=ref.guided_backprop,
    citation="Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR-W 2015",
)
def guided_backprop(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Input gradient with every ReLU passing only positive gradients of positive inputs."""
    return _per_target(ws, lambda t: sum_channels(ws.rule_gradient("guided", t)))


@register_method(
    "deeplift",
    "DeepLIFT",
    family="input",
    batchable=True,
    signed=True,
    shared=True,
    defaults={"baseline": "black"},
    reference=ref.deeplift,
    citation="Shrikumar, Greenside & Kundaje, Learning Important Features Through Propagating "
    "Activation Differences, ICML 2017",
)
def deeplift(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """DeepLIFT rescale rule; the map sums to ``f(x) - f(baseline)``."""
    value = input_value(p["baseline"], "baseline", ws.norm)
    baseline = value.to(ws.device).expand_as(ws.x[:1])
    key = repr(value.flatten().tolist())
    return _per_target(ws, lambda t: sum_channels(ws.deeplift(baseline, key, t)))


@register_method(
    "integrated_gradients",
    "Integrated Gradients",
    family="input",
    signed=True,
    smoothable=True,
    defaults={"steps": 32, "baseline": "black", "batch_size": 0, "precision": "auto"},
    reference=ref.integrated_gradients,
    units=lambda p, hw, device: _ig_units(p, hw, device),
    citation="Sundararajan, Taly & Yan, Axiomatic Attribution for Deep Networks, ICML 2017",
)
def integrated_gradients(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """``(x - x0) * mean gradient`` on the straight path (Gauss-Legendre, captum's default rule)."""
    steps = positive_int(p["steps"], "steps")
    batch = batch_size(p["batch_size"], "integrated_gradients", ws.device)
    precision = resolve_precision(p["precision"], ws.device)
    x0 = input_value(p["baseline"], "baseline", ws.norm).to(ws.device).expand_as(ws.x[:1])
    alphas, weights = gauss_legendre(steps)
    a_all = torch.as_tensor(alphas, dtype=torch.float32, device=ws.device)
    w_all = torch.as_tensor(weights, dtype=torch.float32, device=ws.device)
    out = []
    for row in ws.x:
        grad_sum = torch.zeros((ws.n_targets, *row.shape), device=ws.device)
        for start in range(0, steps, batch):
            a = a_all[start : start + batch]
            w = w_all[start : start + batch]
            xs = x0 + a[:, None, None, None] * (row[None] - x0)
            xs = xs.contiguous(memory_format=torch.channels_last).requires_grad_(True)
            with torch.enable_grad(), tracing(Trace()), precision_context(ws.device, precision):
                emb = ws.backbone.head(ws.backbone.forward_maps(xs)).float()
                scores = torch.stack([t(emb) for t in ws.targets], dim=1)  # (b, T)
            for t in range(ws.n_targets):
                (g,) = torch.autograd.grad(
                    (scores[:, t] * w).sum(), xs, retain_graph=t < ws.n_targets - 1
                )
                grad_sum[t] += g.float().sum(dim=0)
            ws.progress.step()
        out.append(((row[None] - x0) * grad_sum).sum(dim=1))
    return torch.stack(out)


def _ig_units(p: Mapping[str, Any], hw: tuple[int, int], device: torch.device) -> int:
    rows = max(1, int(p.get("smooth_samples", 0) or 1))
    batch = batch_size(p["batch_size"], "integrated_gradients", device)
    return rows * math.ceil(positive_int(p["steps"], "steps") / batch)


# -- layer attribution (CAM family) -------------------------------------------------------------


def _cam(ws: Workspace, layer: str, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    ws.want_layer(layer)
    return ws.gradients(t).layers[layer]


_LAYER_DOC = "layer: 'maps' (forward_maps output = bn2 after layer4) or a module name"


@register_method(
    "gradcam",
    "Grad-CAM",
    family="layer",
    batchable=True,
    signed=False,
    shared=True,
    defaults={"layer": MAPS_LAYER},
    plan=_plan_layer,
    reference=ref.gradcam,
    citation="Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via Gradient-based "
    "Localization, ICCV 2017",
)
def gradcam(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Grad-CAM with the usual ReLU (positive evidence only)."""
    return _per_target(ws, lambda t: gradcam_map(*_cam(ws, p["layer"], t), relu=True))


@register_method(
    "gradcam_signed",
    "Grad-CAM (signed)",
    family="layer",
    batchable=True,
    signed=True,
    shared=True,
    defaults={"layer": MAPS_LAYER},
    plan=_plan_layer,
    reference=ref.gradcam_signed,
    citation="Selvaraju et al., ICCV 2017; unfiltered map as preferred in the gmx thesis (3.3.1)",
)
def gradcam_signed(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Grad-CAM without the ReLU: negative regions count against the target."""
    return _per_target(ws, lambda t: gradcam_map(*_cam(ws, p["layer"], t), relu=False))


@register_method(
    "hirescam",
    "HiResCAM",
    family="layer",
    batchable=True,
    signed=lambda p: not p["relu"],
    shared=True,
    defaults={"layer": MAPS_LAYER, "relu": True},
    plan=_plan_layer,
    reference=ref.hirescam,
    citation="Draelos & Carin, Use HiResCAM instead of Grad-CAM for faithful explanations of "
    "convolutional neural networks, arXiv:2011.08891",
)
def hirescam(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Element-wise gradient x activation summed over channels (no spatial averaging)."""
    relu = bool(p["relu"])
    return _per_target(ws, lambda t: hirescam_map(*_cam(ws, p["layer"], t), relu=relu))


@register_method(
    "gradcam_plusplus",
    "Grad-CAM++",
    family="layer",
    batchable=True,
    signed=False,
    shared=True,
    defaults={"layer": MAPS_LAYER},
    plan=_plan_layer,
    reference=ref.gradcam_plusplus,
    citation="Chattopadhay et al., Grad-CAM++, WACV 2018",
)
def gradcam_plusplus(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Grad-CAM++ weights (positive gradients, higher-order terms)."""
    return _per_target(ws, lambda t: gradcam_pp_map(*_cam(ws, p["layer"], t)))


@register_method(
    "layercam",
    "LayerCAM",
    family="layer",
    batchable=True,
    signed=False,
    shared=True,
    defaults={"layer": MAPS_LAYER},
    plan=_plan_layer,
    reference=ref.layercam,
    citation="Jiang et al., LayerCAM: Exploring Hierarchical Class Activation Maps for "
    "Localization, IEEE TIP 2021",
)
def layercam(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Positive gradients weight each activation element-wise."""
    return _per_target(ws, lambda t: layercam_map(*_cam(ws, p["layer"], t)))


def _plan_fullgrad(ws: Workspace, p: Mapping[str, Any]) -> None:
    ws.want_bias()


@register_method(
    "fullgrad",
    "FullGrad",
    family="layer",
    batchable=True,
    signed=False,
    shared=True,
    plan=_plan_fullgrad,
    reference=ref.fullgrad,
    citation="Srinivas & Fleuret, Full-Gradient Representation for Neural Network Visualization, "
    "NeurIPS 2019",
)
def fullgrad(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """``psi(|x * grad_x|) + sum over bias layers and channels of psi(|b * grad_b|)``.

    ``psi`` = per-channel min-max rescaling then bilinear upsampling (as pytorch-grad-cam). Since
    upsampling is linear, channels and layers of equal resolution are summed first and upsampled
    once.
    """
    ws.want_bias()
    size = tuple(ws.x.shape[-2:])

    def one(t: int) -> torch.Tensor:
        grads = ws.gradients(t)
        total = minmax_per_channel((ws.x * grads.input).abs()).sum(dim=1)  # (n, H, W)
        by_size: dict[tuple[int, int], torch.Tensor] = {}
        for name, g in grads.biases.items():
            b = ws.model.biases[name].to(g.dtype)[None, :, None, None]
            term = minmax_per_channel((b * g).abs()).sum(dim=1)
            key = tuple(term.shape[-2:])
            by_size[key] = by_size[key] + term if key in by_size else term
        for key in sorted(by_size):
            total = total + upsample(by_size[key], size)
        return total

    return _per_target(ws, one)


# -- sanity baselines ----------------------------------------------------------------------------


@register_method(
    "random",
    "Random (baseline)",
    family="baseline",
    batchable=True,
    signed=False,
    defaults={"seed": 0},
    reference=ref.random_map,
    citation="Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018 (as a reference map)",
)
def random_map(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Uniform noise in ``[0, 1)`` from a seeded generator; ignores model and face."""
    rng = np.random.default_rng(int(p["seed"]))
    noise = rng.random(tuple(ws.x.shape[-2:]), dtype=np.float32)
    return torch.from_numpy(noise).expand(ws.x.shape[0], ws.n_targets, -1, -1).to(ws.device).clone()


@register_method(
    "edges",
    "Edge detector (baseline)",
    family="baseline",
    batchable=True,
    signed=False,
    reference=ref.edges,
    citation="Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018 (edge-detector "
    "comparison)",
)
def edges(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Sobel magnitude of the face's luma: what a map looks like that ignores the model."""
    edges_ = sobel_magnitude(ws.x, ws.colour_order)  # (n, H, W)
    return edges_[:, None].expand(-1, ws.n_targets, -1, -1).clone()


#: Nothing to import: the methods are reached through the registry (:func:`~gmx.explain.get_method`).
__all__: list[str] = []
