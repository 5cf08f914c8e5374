"""Foreign iResNet weights -> native :class:`~gmx.encode.IResNet` state_dicts.

Both foreign sources (onnx2torch state_dicts of GestaltMatcher-Arc and insightface ONNX graphs) are
first read into :class:`IResNetParts`: the tensors of the stem, of each block and of the head, in
graph order. :func:`parts_to_state_dict` then writes the native insightface layout.

BatchNorm folded into a convolution (the ONNX exporter folds every BN that directly follows a conv)
is *un-folded*: the conv keeps the folded weight (no bias) and the following native BN becomes
``y = x + b`` (weight 1, bias ``b``, running mean 0, running var ``1 - eps``), which is exact up to
one float32 rounding of ``sqrt(var + eps)``. This keeps one module layout for every source, so
``forward_maps``/``head``, hooks and explainers see the same network whatever file it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gmx.encode.iresnet import _BN_EPS
from gmx.errors import ModelLoadError


@dataclass(frozen=True)
class BatchNormParts:
    """Inference parameters of one BatchNorm: ``(x - mean) / sqrt(var + eps) * weight + bias``."""

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor
    eps: float = _BN_EPS


@dataclass(frozen=True)
class ConvParts:
    """One convolution; ``bn`` is the BatchNorm applied right after it when not folded in."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    bn: BatchNormParts | None = None


@dataclass(frozen=True)
class BlockParts:
    """One IBasicBlock: bn1 -> conv1 (+bn2) -> PReLU -> conv2 (+bn3), skip = downsample (+bn)."""

    bn1: BatchNormParts
    conv1: ConvParts
    prelu: torch.Tensor
    conv2: ConvParts
    downsample: ConvParts | None


@dataclass(frozen=True)
class IResNetParts:
    """Every tensor of an iResNet, in graph order."""

    stem: ConvParts
    stem_prelu: torch.Tensor
    blocks: tuple[BlockParts, ...]
    bn2: BatchNormParts
    fc_weight: torch.Tensor
    fc_bias: torch.Tensor
    features: BatchNormParts


def group_blocks(
    convs: Sequence[ConvParts],
    leading_bns: Sequence[BatchNormParts],
    slopes: Sequence[torch.Tensor],
) -> tuple[BlockParts, ...]:
    """Split the block convolutions (stem excluded) into blocks, in graph order.

    Within a block, conv2 consumes conv1's output, so conv1 comes first in any topological order.
    The 1x1 downsample conv depends only on the block input, so a topological order may put it
    before, between or after the 3x3 convs, but always before the next block's convs (which
    consume the residual sum). Tracing exporters (torch.onnx, used for insightface's files) emit
    it after conv2, following ``IBasicBlock.forward``. Rule: a 1x1 conv met while a block has fewer
    than two 3x3 convs belongs to that block; one right after them belongs to it too when its
    shape fits the block (``in`` = conv1's ``in``, ``out`` = conv1's ``out``), else it is the next
    block's. When both fit (equal widths), the trace order decides: this block.

    Raises:
        ModelLoadError: if the convs, leading BNs and PReLU slopes do not form iResNet blocks.
    """
    blocks: list[BlockParts] = []
    i = 0
    n = len(convs)
    while i < n:
        three: list[ConvParts] = []
        down: ConvParts | None = None
        while i < n and len(three) < 2:
            k = convs[i].weight.shape[-1]
            if k == 3:
                three.append(convs[i])
            elif k == 1 and down is None:
                down = convs[i]
            else:
                raise ModelLoadError(
                    f"not an iResNet: unexpected conv of shape {tuple(convs[i].weight.shape)} "
                    f"in block {len(blocks)}"
                )
            i += 1
        if i < n and down is None and len(three) == 2 and convs[i].weight.shape[-1] == 1:
            w1, wd = three[0].weight.shape, convs[i].weight.shape
            if (wd[0], wd[1]) == (w1[0], w1[1]):
                down = convs[i]
                i += 1
        if len(three) != 2:
            raise ModelLoadError(f"not an iResNet: block {len(blocks)} has {len(three)} 3x3 convs")
        b = len(blocks)
        if b >= len(leading_bns) or b >= len(slopes):
            raise ModelLoadError(
                f"not an iResNet: {b + 1}+ blocks of convs but {len(leading_bns)} leading BNs "
                f"and {len(slopes)} PReLU slopes"
            )
        blocks.append(BlockParts(leading_bns[b], three[0], slopes[b], three[1], down))
    if len(blocks) != len(leading_bns) or len(blocks) != len(slopes):
        raise ModelLoadError(
            f"not an iResNet: {len(blocks)} blocks of convs but {len(leading_bns)} leading BNs "
            f"and {len(slopes)} PReLU slopes"
        )
    return tuple(blocks)


def stage_layout(parts: IResNetParts) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(layers, widths)`` of the parts: a stage starts at each block with a downsample.

    Raises:
        ModelLoadError: if there are not exactly 4 stages or a stage changes width inside.
    """
    layers: list[int] = []
    widths: list[int] = []
    for b, block in enumerate(parts.blocks):
        c_out = int(block.conv1.weight.shape[0])
        if block.downsample is not None:
            layers.append(0)
            widths.append(c_out)
        elif not layers:
            raise ModelLoadError("not an insightface iResNet: the first block has no downsample")
        elif c_out != widths[-1]:
            raise ModelLoadError(f"not an iResNet: block {b} changes width without a downsample")
        layers[-1] += 1
    if len(layers) != 4:
        raise ModelLoadError(f"not an insightface iResNet: found {len(layers)} stages, expected 4")
    return tuple(layers), tuple(widths)


def _identity_bn(bias: torch.Tensor | None, channels: int, eps: float) -> dict[str, torch.Tensor]:
    b = torch.zeros(channels) if bias is None else bias.detach().reshape(-1).to(torch.float32)
    return {
        "weight": torch.ones(channels),
        "bias": b.clone(),
        "running_mean": torch.zeros(channels),
        "running_var": torch.full((channels,), 1.0 - eps),
        "num_batches_tracked": torch.tensor(0, dtype=torch.long),
    }


def _bn(parts: BatchNormParts, shift: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Native BN entries; ``shift`` is a conv bias folded in before this BN (mean -= bias)."""
    mean = parts.mean.detach().reshape(-1).to(torch.float32)
    if shift is not None:
        mean = mean - shift.detach().reshape(-1).to(torch.float32)
    var = parts.var.detach().reshape(-1).to(torch.float32)
    if abs(parts.eps - _BN_EPS) > 1e-12:
        # Native BNs use eps=1e-5; rescale var so (var + eps) is unchanged.
        var = var + (parts.eps - _BN_EPS)
    return {
        "weight": parts.weight.detach().reshape(-1).to(torch.float32).clone(),
        "bias": parts.bias.detach().reshape(-1).to(torch.float32).clone(),
        "running_mean": mean.clone(),
        "running_var": var.clone(),
        "num_batches_tracked": torch.tensor(0, dtype=torch.long),
    }


def _conv_and_bn(prefix_conv: str, prefix_bn: str, conv: ConvParts) -> dict[str, torch.Tensor]:
    out = {f"{prefix_conv}.weight": conv.weight.detach().to(torch.float32).clone()}
    channels = int(conv.weight.shape[0])
    if conv.bn is None:
        bn = _identity_bn(conv.bias, channels, _BN_EPS)
    else:
        bn = _bn(conv.bn, shift=conv.bias)
    out.update({f"{prefix_bn}.{k}": v for k, v in bn.items()})
    return out


def _slope(slope: torch.Tensor, channels: int, where: str) -> torch.Tensor:
    flat = slope.detach().reshape(-1).to(torch.float32)
    if flat.numel() == 1:
        flat = flat.expand(channels)
    if flat.numel() != channels:
        raise ModelLoadError(
            f"PReLU slope of {where} has shape {tuple(slope.shape)}, expected {channels} channels"
        )
    return flat.clone()


def parts_to_state_dict(
    parts: IResNetParts,
) -> tuple[tuple[int, ...], tuple[int, ...], int, dict[str, torch.Tensor]]:
    """Native IResNet state_dict of the parts.

    Returns:
        ``(layers, widths, embedding_dim, state_dict)``; the state_dict loads into
        ``IResNet(layers, widths, embedding_dim)`` with ``strict=True``.
    """
    layers, widths = stage_layout(parts)
    sd: dict[str, torch.Tensor] = {}
    sd.update(_conv_and_bn("conv1", "bn1", parts.stem))
    sd["prelu.weight"] = _slope(parts.stem_prelu, int(parts.stem.weight.shape[0]), "the stem")
    b = 0
    for s, n_blocks in enumerate(layers, start=1):
        for j in range(n_blocks):
            block = parts.blocks[b]
            p = f"layer{s}.{j}"
            sd.update({f"{p}.bn1.{k}": v for k, v in _bn(block.bn1).items()})
            sd.update(_conv_and_bn(f"{p}.conv1", f"{p}.bn2", block.conv1))
            sd[f"{p}.prelu.weight"] = _slope(block.prelu, int(block.conv1.weight.shape[0]), p)
            sd.update(_conv_and_bn(f"{p}.conv2", f"{p}.bn3", block.conv2))
            if block.downsample is not None:
                sd.update(_conv_and_bn(f"{p}.downsample.0", f"{p}.downsample.1", block.downsample))
            b += 1
    sd.update({f"bn2.{k}": v for k, v in _bn(parts.bn2).items()})
    sd["fc.weight"] = parts.fc_weight.detach().to(torch.float32).clone()
    sd["fc.bias"] = parts.fc_bias.detach().reshape(-1).to(torch.float32).clone()
    sd.update({f"features.{k}": v for k, v in _bn(parts.features).items()})
    embedding_dim = int(parts.fc_weight.shape[0])
    return layers, widths, embedding_dim, sd


__all__ = [
    "BatchNormParts",
    "BlockParts",
    "ConvParts",
    "IResNetParts",
    "group_blocks",
    "parts_to_state_dict",
    "stage_layout",
]
