"""Native iResNet in the insightface ``arcface_torch`` layout (Deng et al., ArcFace, CVPR 2019).

Module and parameter names follow insightface's ``iresnet.py`` so that insightface ``.pth`` state_dicts
load with ``strict=True``. Everything after the last convolution stage is affine
(``bn2 -> flatten -> fc -> features``), which :mod:`gmx.similarity` relies on for its exact decomposition.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Block counts of the standard depths.
IRESNET_LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
}

#: Channel widths of the four stages of the standard iResNets.
IRESNET_WIDTHS: tuple[int, int, int, int] = (64, 128, 256, 512)

_BN_EPS = 1e-5


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation residual block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN (+ skip)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, eps=_BN_EPS)
        self.conv1 = _conv3x3(c_in, c_out)
        self.bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.prelu = nn.PReLU(c_out)
        self.conv2 = _conv3x3(c_out, c_out, stride)
        self.bn3 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out, eps=_BN_EPS),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """iResNet backbone producing an embedding from a 3x112x112 face in ``[-1, 1]``.

    Args:
        layers: blocks per stage, e.g. ``(3, 4, 14, 3)`` for iResNet-50.
        widths: channels per stage; ``(64, 128, 256, 512)`` for the standard networks. Narrower widths
            give the small demo model the same structure.
        embedding_dim: size of the output embedding (512 for ArcFace models).
        grid: side of the last feature map (7 for 112x112 input).
    """

    def __init__(
        self,
        layers: Sequence[int],
        widths: Sequence[int] = IRESNET_WIDTHS,
        embedding_dim: int = 512,
        grid: int = 7,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"need 4 stages, got layers={layers!r} widths={widths!r}")
        self.layers_spec = tuple(int(n) for n in layers)
        self.widths = tuple(int(w) for w in widths)
        self.embedding_dim = int(embedding_dim)
        self.grid = int(grid)
        self.conv1 = _conv3x3(3, self.widths[0])
        self.bn1 = nn.BatchNorm2d(self.widths[0], eps=_BN_EPS)
        self.prelu = nn.PReLU(self.widths[0])
        c_in = self.widths[0]
        stages = []
        for n_blocks, c_out in zip(self.layers_spec, self.widths, strict=True):
            blocks = [IBasicBlock(c_in, c_out, stride=2)]
            blocks += [IBasicBlock(c_out, c_out) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(c_in, eps=_BN_EPS)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(c_in * self.grid * self.grid, self.embedding_dim)
        self.features = nn.BatchNorm1d(self.embedding_dim, eps=_BN_EPS)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    @property
    def feature_channels(self) -> int:
        """Channels of the last feature map (512 for the standard networks)."""
        return self.widths[-1]

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map after ``bn2``: ``(N, C, 7, 7)``."""
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.bn2(x)

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """Affine head: flatten -> (dropout) -> fc -> BatchNorm1d. ``(N, C, 7, 7) -> (N, D)``."""
        return self.features(self.fc(self.dropout(torch.flatten(maps, 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding ``(N, D)`` of faces ``(N, 3, 112, 112)`` in ``[-1, 1]``."""
        return self.head(self.forward_maps(x))


def iresnet(
    depth_or_layers: int | Sequence[int],
    widths: Sequence[int] = IRESNET_WIDTHS,
    embedding_dim: int = 512,
) -> IResNet:
    """Build an iResNet by depth (18, 34, 50, 100) or by explicit blocks per stage."""
    if isinstance(depth_or_layers, int):
        if depth_or_layers not in IRESNET_LAYERS:
            raise ValueError(
                f"unknown iResNet depth {depth_or_layers}; known: {sorted(IRESNET_LAYERS)}"
            )
        layers: Sequence[int] = IRESNET_LAYERS[depth_or_layers]
    else:
        layers = depth_or_layers
    return IResNet(layers, widths, embedding_dim)


def iresnet50(embedding_dim: int = 512) -> IResNet:
    """iResNet-50 (blocks 3, 4, 14, 3), as GestaltMatcher-Arc's model m0."""
    return iresnet(50, embedding_dim=embedding_dim)


def iresnet100(embedding_dim: int = 512) -> IResNet:
    """iResNet-100 (blocks 3, 13, 30, 3), as GestaltMatcher-Arc's models m1 and m2."""
    return iresnet(100, embedding_dim=embedding_dim)


__all__ = [
    "IRESNET_LAYERS",
    "IRESNET_WIDTHS",
    "IBasicBlock",
    "IResNet",
    "iresnet",
    "iresnet50",
    "iresnet100",
]
