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
from collections.abc import Callable, Mapping, Sequence
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
    minmax_per_layer,
    sobel_magnitude,
    sum_channels,
    upsample,
)
from gmx.explain.occlusion import (
    mirror_boxes,
    occluded_embeddings,
    occlusion_map,
    window_boxes,
    window_starts,
)
from gmx.explain.registry import JointFn, register_method
from gmx.explain.targets import Target
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


def _occlusion_joint(p: Mapping[str, Any]) -> JointFn | None:
    return occlusion_reranked if p["rerank"] else None


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
        "rerank": False,
    },
    reference=ref.occlusion,
    units=lambda p, hw, device: _occlusion_units(p, hw, device),
    joint=_occlusion_joint,
    citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
)
def occlusion(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Mean score drop ``f(x) - f(x occluded)`` over the windows covering each pixel.

    The target is the per-variant score (the nearest gallery image fixed); ``rerank=True`` explains
    the re-ranked score instead (:func:`occlusion_reranked`, all variants at once).
    """
    x = ws.x[:1].contiguous(memory_format=torch.channels_last)
    boxes = window_boxes(
        tuple(x.shape[-2:]), int_pair(p["window"], "window"), int_pair(p["stride"], "stride")
    )
    fill = input_value(p["fill"], "fill", ws.norm).to(ws.device)[0]
    precision = resolve_precision(p["precision"], ws.device)
    with torch.inference_mode(), tracing(Trace()), precision_context(ws.device, precision):
        embed = occluded_embeddings(ws.backbone, x, boxes, fill, incremental=bool(p["incremental"]))
        return occlusion_map(
            [embed],
            boxes,
            lambda embs: torch.stack([t(embs[0]) for t in ws.targets], dim=1),
            tuple(x.shape[-2:]),
            batch_size(p["batch_size"], "occlusion", ws.device),
            ws.progress.step,
        )[None]  # one row: the face


def occlusion_reranked(
    spaces: Sequence[Workspace],
    targets: Sequence[Target],
    flips: Sequence[bool],
    p: Mapping[str, Any],
) -> torch.Tensor:
    """Occlusion of the score as GestaltMatcher computes it for each occluded face, all variants at
    once: window ``i`` occludes the same face region in every variant (mirrored in flipped ones),
    and the drop is that of :meth:`~gmx.explain.targets.Target.ranking_score`, e.g. the syndrome's
    re-ranked score ``max_g mean_v cos(e_v, g_v)``."""
    first = spaces[0]
    hw = tuple(first.x.shape[-2:])
    boxes = window_boxes(hw, int_pair(p["window"], "window"), int_pair(p["stride"], "stride"))
    device = first.device
    classifiers = [ws.model.classifier for ws in spaces]
    embedders = []
    with torch.inference_mode(), tracing(Trace()):
        for ws, flip in zip(spaces, flips, strict=True):
            x = ws.x[:1].contiguous(memory_format=torch.channels_last)
            if tuple(x.shape[-2:]) != hw:
                raise ValueError(f"variants differ in input size: {tuple(x.shape[-2:])} vs {hw}")
            fill = input_value(p["fill"], "fill", ws.norm).to(ws.device)[0]
            precision = resolve_precision(p["precision"], ws.device)
            with precision_context(ws.device, precision):
                embed = occluded_embeddings(
                    ws.backbone,
                    x,
                    mirror_boxes(boxes, hw[1]) if flip else boxes,
                    fill,
                    incremental=bool(p["incremental"]),
                )
            embedders.append(_in_precision(embed, ws.device, precision))

        def score(embs: list[torch.Tensor]) -> torch.Tensor:
            embs = [e.to(device) for e in embs]
            return torch.stack([t.ranking_score(embs, classifiers) for t in targets], dim=1)

        def step() -> None:
            first.progress.step(len(spaces))

        return occlusion_map(
            embedders, boxes, score, hw, batch_size(p["batch_size"], "occlusion", device), step
        )


def _in_precision(
    embed: Callable[[int, int], torch.Tensor], device: torch.device, precision: str
) -> Callable[[int, int], torch.Tensor]:
    def run(start: int, stop: int) -> torch.Tensor:
        with precision_context(device, precision):
            return embed(start, stop)

    return run


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


#: ``prelu`` parameter of Guided Backprop / Deconvolution -> suffix of the backward rule: the rule
#: applied to each ReLU of ``relu(x) - a relu(-x)`` (default), or the PReLU treated as the ReLU the
#: papers define (only its positive part passes a signal). See docs/explain.md, "The PReLU fix".
PRELU_RULES: Mapping[str, str] = {"decomposed": "", "as_relu": "_relu"}


def _prelu_rule(base: str, p: Mapping[str, Any]) -> str:
    try:
        return base + PRELU_RULES[p["prelu"]]
    except KeyError:
        raise ValueError(
            f"prelu must be one of {sorted(PRELU_RULES)}, got {p['prelu']!r}"
        ) from None


@register_method(
    "deconvolution",
    "Deconvolution",
    family="input",
    batchable=True,
    signed=True,
    shared=True,
    smoothable=True,
    defaults={"prelu": "decomposed"},
    reference=ref.deconvolution,
    citation="Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014",
)
def deconvolution(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Input 'gradient' with every ReLU passing ``relu(grad_out)``; on a PReLU (``prelu``):
    ``relu(g) - relu(-a g)`` ("decomposed", the PReLU applied to the signal) or ``relu(g)``."""
    rule = _prelu_rule("deconv", p)
    return _per_target(ws, lambda t: sum_channels(ws.rule_gradient(rule, t)))


@register_method(
    "guided_backprop",
    "Guided Backprop",
    family="input",
    batchable=True,
    signed=True,
    shared=True,
    smoothable=True,
    defaults={"prelu": "decomposed"},
    reference=ref.guided_backprop,
    citation="Springenberg et al., Striving for Simplicity: The All Convolutional Net, ICLR-W 2015",
)
def guided_backprop(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """Input gradient with every ReLU passing only positive gradients of positive inputs; on a PReLU
    (``prelu``): ``relu(g)`` where x > 0 and ``-relu(-a g)`` where x < 0 ("decomposed") or
    ``relu(g)`` where x > 0 and nothing where x < 0 ("as_relu", Springenberg's mask)."""
    rule = _prelu_rule("guided", p)
    return _per_target(ws, lambda t: sum_channels(ws.rule_gradient(rule, t)))


@register_method(
    "deeplift",
    "DeepLIFT hybrid (IG head)",
    family="input",
    batchable=True,
    signed=True,
    shared=True,
    defaults={"baseline": "black"},
    reference=ref.deeplift,
    citation="Shrikumar, Greenside & Kundaje, Learning Important Features Through Propagating "
    "Activation Differences, ICML 2017 (Rescale rule); target head integrated along the embedding "
    "path as in Sundararajan, Taly & Yan, ICML 2017",
)
def deeplift(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """A DeepLIFT / Integrated Gradients hybrid: the Rescale rule through the backbone (no
    RevealCancel), and the target head (e.g. the cosine) treated as one unit whose multipliers are
    its gradient integrated along the embedding path. The map sums to ``f(x) - f(baseline)``."""
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
    "hirescam_signed",
    "HiResCAM (signed)",
    family="layer",
    batchable=True,
    signed=True,
    shared=True,
    defaults={"layer": MAPS_LAYER},
    plan=_plan_layer,
    reference=ref.hirescam_signed,
    citation="Draelos & Carin, arXiv:2011.08891; unfiltered map as in the gmx thesis (3.3.1-3.3.2)",
)
def hirescam_signed(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """HiResCAM without the ReLU (``hirescam`` with ``relu=False``), as the thesis panel shows it."""
    return _per_target(ws, lambda t: hirescam_map(*_cam(ws, p["layer"], t), relu=False))


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


#: FullGrad's ``rescale`` parameter -> the post-processing ``psi`` applied to each layer's terms.
FULLGRAD_RESCALE: Mapping[str, Any] = {"layer": minmax_per_layer, "channel": minmax_per_channel}


def _plan_fullgrad(ws: Workspace, p: Mapping[str, Any]) -> None:
    ws.want_bias()


@register_method(
    "fullgrad",
    "FullGrad",
    family="layer",
    batchable=True,
    signed=False,
    shared=True,
    defaults={"rescale": "layer"},
    plan=_plan_fullgrad,
    reference=ref.fullgrad,
    citation="Srinivas & Fleuret, Full-Gradient Representation for Neural Network Visualization, "
    "NeurIPS 2019",
)
def fullgrad(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
    """``psi(|x * grad_x|) + sum over bias layers of psi(|b * grad_b|)``, summed over channels.

    ``psi`` = min-max rescaling, per layer (``rescale="layer"``, the authors' reference code) or per
    channel (``"channel"``, pytorch-grad-cam), then placement on the input (:func:`upsample`: cell
    ``j`` at pixel ``s * j``, the layer's receptive-field centre; pytorch-grad-cam and the reference
    code resize with half-pixel or corner-aligned centres instead). Since placement is linear, layers
    of equal resolution are summed first and placed once.
    """
    try:
        psi = FULLGRAD_RESCALE[p["rescale"]]
    except KeyError:
        raise ValueError(
            f"rescale must be one of {sorted(FULLGRAD_RESCALE)}, got {p['rescale']!r}"
        ) from None
    ws.want_bias()
    size = tuple(ws.x.shape[-2:])

    def one(t: int) -> torch.Tensor:
        grads = ws.gradients(t)
        total = psi((ws.x * grads.input).abs()).sum(dim=1)  # (n, H, W)
        by_size: dict[tuple[int, int], torch.Tensor] = {}
        for name, g in grads.biases.items():
            b = ws.model.biases[name].to(g.dtype)[None, :, None, None]
            term = psi((b * g).abs()).sum(dim=1)
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
