"""Occlusion sensitivity (Zeiler & Fergus 2014), batched, with incremental recomputation.

Geometry follows captum's :class:`~captum.attr.Occlusion`: window starts ``0, s, 2s, ...`` with
``ceil((H - h) / s) + 1`` positions per axis (the last windows are clipped at the border); a pixel's
attribution is the mean, over the windows covering it, of ``f(x) - f(x with the window filled)``.

Speed: windows are evaluated in batches under ``torch.inference_mode`` (optionally bf16 autocast).
On iResNet-like backbones a window only changes a small rectangle of the early feature maps, so the
stem and the early residual blocks are recomputed only on that rectangle (plus the 2-pixel halo each
block needs) and pasted into the clean activations; the network runs in full from the block where the
changed rectangle stops being small. This is exact up to float rounding (tested against full
recomputation).

:func:`occlusion_map` averages the drops; it takes one embedding function per variant, so a score
that couples the variants (GestaltMatcher's re-ranked syndrome score, ``rerank=True``) sees window
``i`` on the same face region in every variant (:func:`mirror_boxes` for mirrored ones).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

#: Recompute a block only on its changed rectangle while that needs less than this area fraction.
INCREMENTAL_MAX_AREA = 0.75

Box = tuple[int, int, int, int]
"""A half-open window ``(y0, y1, x0, x1)`` in input pixels."""


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Window start offsets along one axis, captum's convention (last window may be clipped)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    if window > size:
        raise ValueError(f"window {window} larger than the image side {size}")
    if stride > window and window < size:
        raise ValueError(f"stride {stride} larger than window {window} leaves pixels unexplained")
    count = math.ceil((size - window) / stride) + 1
    return [i * stride for i in range(count)]


@dataclass(frozen=True)
class _Unit:
    """One step of the backbone for incremental recomputation.

    ``out[o]`` depends on ``in[stride*o - halo .. stride*o + halo]`` (per axis).
    """

    module: nn.Module
    stride: int
    halo: int


class _Stem(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.conv1 = backbone.conv1
        self.bn1 = backbone.bn1
        self.prelu = backbone.prelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn1(self.conv1(x)))


def _is_conv(m: object, k: int, stride: int | None = None, padding: int | None = None) -> bool:
    if type(m) is not nn.Conv2d:
        return False
    ok = m.kernel_size == (k, k) and m.dilation == (1, 1) and m.groups == 1
    if stride is not None:
        ok = ok and m.stride == (stride, stride)
    if padding is not None:
        ok = ok and m.padding == (padding, padding)
    return ok


def _block_unit(block: nn.Module) -> _Unit | None:
    conv1 = getattr(block, "conv1", None)
    conv2 = getattr(block, "conv2", None)
    if not (_is_conv(conv1, 3, 1, 1) and _is_conv(conv2, 3, None, 1)):
        return None
    stride = conv2.stride[0]
    if conv2.stride[1] != stride or stride not in (1, 2):
        return None
    ds = getattr(block, "downsample", None)
    if ds is not None:
        first = next(iter(ds.children()), None) if isinstance(ds, nn.Sequential) else None
        if not _is_conv(first, 1, stride, 0):
            return None
    elif stride != 1:
        return None
    if not all(hasattr(block, n) for n in ("bn1", "bn2", "prelu", "bn3")):
        return None
    return _Unit(block, stride, 2)


def iresnet_units(backbone: nn.Module) -> list[_Unit] | None:
    """The backbone as stem + residual blocks, or ``None`` if it is not iResNet-shaped."""
    if not all(hasattr(backbone, n) for n in ("conv1", "bn1", "prelu", "layer1", "layer4", "bn2")):
        return None
    if not _is_conv(backbone.conv1, 3, 1, 1):
        return None
    units = [_Unit(_Stem(backbone), 1, 1)]
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        seq = getattr(backbone, stage, None)
        if not isinstance(seq, nn.Sequential):
            return None
        for block in seq:
            unit = _block_unit(block)
            if unit is None:
                return None
            units.append(unit)
    return units


def _out_rect(lo: int, hi: int, unit: _Unit, out_size: int) -> tuple[int, int]:
    """Output index range (inclusive) whose receptive field meets input ``[lo, hi]``."""
    s, h = unit.stride, unit.halo
    o0 = max(0, math.ceil((lo - h) / s))
    o1 = min(out_size - 1, (hi + h) // s)
    return o0, o1


class _Rects:
    """Fixed-size changed rectangles (one per window) at the current resolution."""

    def __init__(self, y0: list[int], x0: list[int], h: int, w: int) -> None:
        self.y0, self.x0, self.h, self.w = y0, x0, h, w


def _propagate(rects: _Rects, unit: _Unit, in_hw: tuple[int, int], out_hw: tuple[int, int]):
    """Output rects (fixed size, clamped inside) and the input range each one needs."""
    s, h = unit.stride, unit.halo
    # Largest number of outputs an input rectangle of this size can reach.
    oh = min(out_hw[0], (rects.h - 1 + 2 * h) // s + 1)
    ow = min(out_hw[1], (rects.w - 1 + 2 * h) // s + 1)
    ys, xs, needs = [], [], []
    for y0, x0 in zip(rects.y0, rects.x0, strict=True):
        oy0 = min(_out_rect(y0, y0 + rects.h - 1, unit, out_hw[0])[0], out_hw[0] - oh)
        ox0 = min(_out_rect(x0, x0 + rects.w - 1, unit, out_hw[1])[0], out_hw[1] - ow)
        ys.append(oy0)
        xs.append(ox0)
        needs.append(
            (
                max(0, s * oy0 - h),
                min(in_hw[0] - 1, s * (oy0 + oh - 1) + h),
                max(0, s * ox0 - h),
                min(in_hw[1] - 1, s * (ox0 + ow - 1) + h),
            )
        )
    return _Rects(ys, xs, oh, ow), needs


def _aligned_crops(
    needs: Sequence[tuple[int, int, int, int]], in_hw: tuple[int, int], stride: int
) -> tuple[list[tuple[int, int]], int, int]:
    """Equal-size crops covering each needed range, with origins on the stride grid.

    Origins are multiples of ``stride`` so that output ``j`` of the crop is output
    ``origin / stride + j`` of the full map; a crop touching the image border keeps the true zero
    padding there.
    """

    def axis(lo_hi: list[tuple[int, int]], size: int) -> tuple[list[int], int]:
        starts = [stride * (lo // stride) for lo, _ in lo_hi]
        length = max(hi - st + 1 for (_, hi), st in zip(lo_hi, starts, strict=True))
        length = min(size, stride * math.ceil(length / stride))
        return [min(st, size - length) for st in starts], length

    ys, ch = axis([(n[0], n[1]) for n in needs], in_hw[0])
    xs, cw = axis([(n[2], n[3]) for n in needs], in_hw[1])
    return list(zip(ys, xs, strict=True)), ch, cw


def occluded_embeddings(
    backbone: nn.Module,
    x: torch.Tensor,
    windows: Sequence[tuple[int, int, int, int]],
    fill: float | torch.Tensor,
    *,
    incremental: bool = True,
) -> Callable[[int, int], torch.Tensor]:
    """Prepare a function giving embeddings of batches of occluded copies of ``x``.

    Args:
        backbone: engine copy (``forward_maps``/``head``); called under the caller's no-grad and
            autocast contexts.
        x: ``(1, 3, H, W)`` input.
        windows: ``(y0, y1, x0, x1)`` half-open window boxes.
        fill: value written into the window (a number, or ``(C, 1, 1)`` per channel).
        incremental: recompute early blocks only where a window changes them (iResNet-shaped
            backbones; ignored otherwise).

    Returns:
        ``embed(start, stop) -> (stop - start, D)`` embeddings of windows ``start:stop``, and the
        clean embedding is ``embed(-1, 0)``; its attribute ``incremental`` says which path runs.
    """
    units = iresnet_units(backbone) if incremental else None
    H, W = x.shape[-2:]

    def occlude(batch: Sequence[tuple[int, int, int, int]]) -> torch.Tensor:
        xs = x.expand(len(batch), -1, -1, -1).clone()
        for i, (y0, y1, x0, x1) in enumerate(batch):
            xs[i, :, y0:y1, x0:x1] = fill
        return xs

    if units is None:

        def embed_full(start: int, stop: int) -> torch.Tensor:
            if start < 0:
                return backbone.head(backbone.forward_maps(x))
            return backbone.head(backbone.forward_maps(occlude(windows[start:stop])))

        embed_full.incremental = False  # type: ignore[attr-defined]
        return embed_full

    # Clean activations at every unit boundary, then the tail from the first non-incremental unit.
    clean = [x]
    act = x
    for unit in units:
        act = unit.module(act)
        clean.append(act)
    tail_modules = [backbone.bn2]
    maps = backbone.bn2(act)
    reference = backbone.forward_maps(x)
    scale = float(reference.abs().max()) + 1e-12
    if reference.shape != maps.shape or float((reference - maps).abs().max()) > 1e-2 * scale:
        # forward_maps does something the stem/blocks walk does not: recompute in full.
        return occluded_embeddings(backbone, x, windows, fill, incremental=False)
    clean_emb = backbone.head(maps)

    def embed_incremental(start: int, stop: int) -> torch.Tensor:
        if start < 0:
            return clean_emb
        batch = windows[start:stop]
        b = len(batch)
        # Changed rectangle at input resolution: the window itself.
        hh = max(y1 - y0 for y0, y1, _, _ in batch)
        ww = max(x1 - x0 for _, _, x0, x1 in batch)
        rects = _Rects(
            [min(y0, H - hh) for y0, _, _, _ in batch],
            [min(x0, W - ww) for _, _, x0, _ in batch],
            hh,
            ww,
        )
        occluded = occlude(batch)
        patch = torch.stack(
            [
                occluded[i, :, y : y + hh, xx : xx + ww]
                for i, (y, xx) in enumerate(zip(rects.y0, rects.x0, strict=True))
            ]
        )
        k = 0
        for k, unit in enumerate(units):
            inp = clean[k]
            in_hw = (inp.shape[-2], inp.shape[-1])
            out_hw = (clean[k + 1].shape[-2], clean[k + 1].shape[-1])
            new_rects, needs = _propagate(rects, unit, in_hw, out_hw)
            origins, ch, cw = _aligned_crops(needs, in_hw, unit.stride)
            if ch * cw / float(in_hw[0] * in_hw[1]) > INCREMENTAL_MAX_AREA:
                break
            # Input crops: clean activations with the changed rectangle pasted in.
            cy = torch.stack([inp[0, :, y : y + ch, xx : xx + cw] for y, xx in origins]).clone()
            for i, (y, xx) in enumerate(origins):
                ry, rx = rects.y0[i] - y, rects.x0[i] - xx
                cy[i, :, ry : ry + rects.h, rx : rx + rects.w] = patch[i]
            out = unit.module(cy)
            s = unit.stride
            patch = torch.stack(
                [
                    out[
                        i,
                        :,
                        new_rects.y0[i] - y // s : new_rects.y0[i] - y // s + new_rects.h,
                        new_rects.x0[i] - xx // s : new_rects.x0[i] - xx // s + new_rects.w,
                    ]
                    for i, (y, xx) in enumerate(origins)
                ]
            )
            rects = new_rects
        else:
            k = len(units)
        full = clean[k].expand(b, -1, -1, -1).clone()
        for i in range(b):
            full[i, :, rects.y0[i] : rects.y0[i] + rects.h, rects.x0[i] : rects.x0[i] + rects.w] = (
                patch[i]
            )
        act_b = full
        for unit in units[k:]:
            act_b = unit.module(act_b)
        for m in tail_modules:
            act_b = m(act_b)
        return backbone.head(act_b)

    embed_incremental.incremental = True  # type: ignore[attr-defined]
    return embed_incremental


def window_boxes(
    hw: tuple[int, int], window: tuple[int, int], stride: tuple[int, int]
) -> list[Box]:
    """Half-open ``(y0, y1, x0, x1)`` boxes of every window, row-major (captum's geometry)."""
    H, W = hw
    return [
        (y, min(y + window[0], H), x, min(x + window[1], W))
        for y in window_starts(H, window[0], stride[0])
        for x in window_starts(W, window[1], stride[1])
    ]


def mirror_boxes(boxes: Sequence[Box], width: int) -> list[Box]:
    """The same boxes in the horizontally mirrored image (column ``c`` -> ``width - 1 - c``)."""
    return [(y0, y1, width - x1, width - x0) for y0, y1, x0, x1 in boxes]


def occlusion_map(
    embedders: Sequence[Callable[[int, int], torch.Tensor]],
    boxes: Sequence[Box],
    score: Callable[[list[torch.Tensor]], torch.Tensor],
    hw: tuple[int, int],
    batch: int,
    step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Mean score drop ``score(clean) - score(occluded)`` over the windows covering each pixel.

    Args:
        embedders: one :func:`occluded_embeddings` function per input variant, each built with that
            variant's own copy of ``boxes`` (e.g. :func:`mirror_boxes` for a mirrored variant), so
            that window ``i`` occludes the same face region in every variant.
        boxes: ``(y0, y1, x0, x1)`` windows in the map's (the face's) coordinates.
        score: the variants' embeddings ``[(b, D), ...]`` -> ``(b, T)`` scores.
        hw: map size ``(H, W)``.
        batch: windows per batch.
        step: called after every batch (progress, cancellation).

    Returns:
        ``(T, H, W)`` float32 map.
    """
    clean = score([e(-1, 0).float() for e in embedders])[0]  # (T,)
    total = torch.zeros((clean.shape[0], *hw), dtype=torch.float64, device=clean.device)
    count = torch.zeros(hw, dtype=torch.float64, device=clean.device)
    for start in range(0, len(boxes), batch):
        stop = min(start + batch, len(boxes))
        scores = score([e(start, stop).float() for e in embedders])  # (b, T)
        drop = (clean[None, :] - scores).double()
        for i, (y0, y1, x0, x1) in enumerate(boxes[start:stop]):
            total[:, y0:y1, x0:x1] += drop[i][:, None, None]
            count[y0:y1, x0:x1] += 1
        if step is not None:
            step()
    return (total / count.clamp_min(1)).float()


__all__ = [
    "INCREMENTAL_MAX_AREA",
    "Box",
    "iresnet_units",
    "mirror_boxes",
    "occluded_embeddings",
    "occlusion_map",
    "window_boxes",
    "window_starts",
]
