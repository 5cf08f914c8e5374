"""Helpers for gmx.explain tests: tiny random iResNets, faces, galleries, hook counting."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gmx.encode.iresnet import IResNet, iresnet


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm statistics and PReLU slopes (default init makes BN an identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_((torch.rand(c, generator=gen) - 0.5) * 0.4)
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_((torch.rand(c, generator=gen) - 0.5) * 0.4)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(0.05 + 0.35 * torch.rand(m.weight.shape, generator=gen))
    return model.eval()


def tiny_iresnet(seed: int = 0, embedding_dim: int = 64) -> IResNet:
    """The brief's tiny iResNet: one block per stage, widths (8, 16, 16, 32)."""
    torch.manual_seed(seed)
    model = iresnet((1, 1, 1, 1), widths=(8, 16, 16, 32), embedding_dim=embedding_dim)
    return randomise(model, seed)  # type: ignore[return-value]


def deeper_iresnet(seed: int = 1) -> IResNet:
    """Two blocks per stage (exercises block boundaries in incremental occlusion)."""
    torch.manual_seed(seed)
    model = iresnet((2, 2, 2, 2), widths=(8, 16, 16, 32), embedding_dim=64)
    return randomise(model, seed)  # type: ignore[return-value]


def synthetic_face() -> np.ndarray:
    """Synthetic 112x112 RGB uint8 'face': smooth gradients plus a few blobs (deterministic)."""
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float64)
    img = np.stack(
        [
            120 + 80 * np.sin(xx / 17.0) * np.cos(yy / 23.0),
            110 + 70 * np.cos((xx + yy) / 29.0),
            100 + 60 * np.sin(yy / 13.0),
        ],
        axis=-1,
    )
    for cx, cy, r in ((38, 52, 7), (74, 52, 7), (56, 72, 5), (56, 92, 9)):
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (40, 30, 30)
    return np.clip(img, 0, 255).astype(np.uint8)


def astronaut_face() -> np.ndarray:
    """scikit-image's astronaut (public domain), face cropped roughly to the ArcFace template."""
    import cv2
    from skimage import data

    crop = data.astronaut()[34:177, 150:293]
    return cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA)


def gallery(dim: int = 64, rows: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)


def face_input(face: np.ndarray) -> torch.Tensor:
    """(1, 3, 112, 112) float32 in [-1, 1] (independent of gmx.encode.preprocess)."""
    return torch.from_numpy(face.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1.0


def hook_count(model: nn.Module) -> int:
    """Forward, forward-pre and backward hooks on every submodule."""
    total = 0
    for m in model.modules():
        total += len(m._forward_hooks) + len(m._forward_pre_hooks)
        total += len(m._backward_hooks) + len(getattr(m, "_backward_pre_hooks", {}))
    return total
