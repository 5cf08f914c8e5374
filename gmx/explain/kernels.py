"""Array kernels of the explanation methods: pure functions on tensors, shared by the engine's methods
(:mod:`gmx.explain.methods`) and anything else that needs the same maths.

Every kernel works per row: ``(n, ...)`` in, ``(n, h, w)`` out. Nothing here touches a model, a target or
the registry; parameter coercion lives in :mod:`gmx.explain._params`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gmx.encode.geometry import stride_grid


def sum_channels(attr: torch.Tensor) -> torch.Tensor:
    """``(n, 3, H, W) -> (n, H, W)``: channel sum per row."""
    return attr.sum(dim=1)


def gradcam_map(acts: torch.Tensor, grads: torch.Tensor, relu: bool) -> torch.Tensor:
    """Grad-CAM ``sum_c mean_hw(grad_c) * A_c`` per row ``(n, h, w)`` (ReLU'd if asked)."""
    cam = (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1)
    return F.relu(cam) if relu else cam


def hirescam_map(acts: torch.Tensor, grads: torch.Tensor, relu: bool) -> torch.Tensor:
    """HiResCAM ``sum_c grad_c * A_c`` per row ``(n, h, w)``."""
    cam = (grads * acts).sum(dim=1)
    return F.relu(cam) if relu else cam


def gradcam_pp_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (eq. 19 of Chattopadhay et al.) per row ``(n, h, w)``, ReLU'd."""
    g2 = grads**2
    g3 = g2 * grads
    sum_a = acts.sum(dim=(2, 3), keepdim=True)
    aij = g2 / (2 * g2 + sum_a * g3 + 1e-6)
    aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
    weights = (F.relu(grads) * aij).sum(dim=(2, 3), keepdim=True)
    return F.relu((weights * acts).sum(dim=1))


def layercam_map(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """LayerCAM ``relu(sum_c relu(grad_c) * A_c)`` per row ``(n, h, w)``."""
    return F.relu((F.relu(grads) * acts).sum(dim=1))


def minmax_per_channel(v: torch.Tensor) -> torch.Tensor:
    """``(v - min) / (1e-7 + max - min)`` over the spatial axes of ``(n, C, h, w)``."""
    v = v - v.amin(dim=(2, 3), keepdim=True)
    return v / (1e-7 + v.amax(dim=(2, 3), keepdim=True))


def minmax_per_layer(v: torch.Tensor) -> torch.Tensor:
    """``(v - min) / (1e-6 + max - min)`` over channels and space of each row of ``(n, C, h, w)``
    (``_postProcess`` of the FullGrad reference code, idiap/fullgrad-saliency)."""
    v = v - v.amin(dim=(1, 2, 3), keepdim=True)
    return v / (1e-6 + v.amax(dim=(1, 2, 3), keepdim=True))


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Place ``(..., h, w)`` stride-``size / h`` maps on a ``size`` image: cell ``j`` at pixel ``s * j``.

    The analytic receptive-field centres of iResNet layers (:func:`gmx.encode.geometry.stride_grid`;
    the last stage's own maps are placed by the engine with the measured grid instead).
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    h, w = maps.shape[-2:]
    if size[0] != size[1] or size[0] % h or size[1] % w:
        raise ValueError(f"cannot place a {h}x{w} map on {size}: not a stride of it")
    return stride_grid((h, w), size[0]).place(maps)


#: Sobel kernel for d/dx (rows: y, columns: x), as OpenCV's ``Sobel(ksize=3)``.
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def luma(x: torch.Tensor, colour_order: str = "RGB") -> torch.Tensor:
    """ITU-R BT.601 luma ``(n, H, W)`` of ``(n, 3, H, W)`` RGB (or BGR) input."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
    if colour_order == "BGR":
        w = w.flip(0)
    return (x * w[None, :, None, None]).sum(dim=1)


def sobel_magnitude(x: torch.Tensor, colour_order: str = "RGB") -> torch.Tensor:
    """Sobel gradient magnitude ``(n, H, W)`` of the luma, reflect-101 borders (OpenCV's default)."""
    y = luma(x, colour_order)[:, None]
    y = F.pad(y, (1, 1, 1, 1), mode="reflect")
    kx = SOBEL_X.to(x.device, x.dtype)[None, None]
    gx = F.conv2d(y, kx)
    gy = F.conv2d(y, kx.transpose(-1, -2))
    return torch.sqrt(gx**2 + gy**2)[:, 0]


__all__ = [
    "SOBEL_X",
    "gradcam_map",
    "gradcam_pp_map",
    "hirescam_map",
    "layercam_map",
    "luma",
    "minmax_per_channel",
    "minmax_per_layer",
    "sobel_magnitude",
    "sum_channels",
    "upsample",
]
