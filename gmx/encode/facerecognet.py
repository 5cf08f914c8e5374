"""FaceRecogNet: the backbone of the original GestaltMatcher (Hsieh et al., Nature Genetics 2022).

A CASIA-WebFace-style network (Yi et al., "Learning Face Representation from Scratch", 2014): ten 3x3
convolutions on a ``1x100x100`` grey face, max-pools between pairs, a last conv 160 -> 320 without
normalisation or activation, then a 7x7 average pool giving the 320-d embedding.

Module names reproduce the upstream checkpoints' keys so that their state_dicts load with
``strict=True`` (after the ``classifier.0.*`` entries are moved to :class:`~gmx.encode.GestaltModel`):
``base.{i}.conv.weight|bias`` and ``base.{i}.norm.*`` for ``i`` in ``{0, 1, 3, 4, 6, 7, 9, 10, 12}``
(conv + BatchNorm2d + ReLU), max-pools at ``2, 5, 8, 11``, the last conv at ``base.13`` and the
average pool at ``base.14``. Facts read from the public igsb/GestaltMatcher repository
(``lib/models/face_recog_net.py``); nothing was copied from it.

Inferred rather than read: BatchNorm ``eps`` and ``momentum`` are PyTorch's defaults (the upstream
code passes none), and the input is grey in ``[0, 1]`` (upstream ``predict.py`` feeds
``ToTensor()`` output; its training dataset additionally min-max normalised each image).
"""

from __future__ import annotations

import torch
from torch import nn

#: Output channels of the nine conv + BN + ReLU blocks, in order (each takes the previous one's).
FACERECOGNET_WIDTHS: tuple[int, ...] = (32, 64, 64, 128, 96, 192, 128, 256, 160)

#: Indices in ``base`` of the conv + BN + ReLU blocks (the others are pools and the last conv).
FACERECOGNET_BLOCK_INDICES: tuple[int, ...] = (0, 1, 3, 4, 6, 7, 9, 10, 12)

#: Index in ``base`` of the last convolution (160 -> 320, with bias, no BN/ReLU).
FACERECOGNET_LAST_CONV: int = 13

#: Side of the FaceRecogNet input.
FACERECOGNET_INPUT_SIZE: int = 100

#: Size of the FaceRecogNet embedding.
FACERECOGNET_EMBEDDING_DIM: int = 320


class ConvNormAct(nn.Module):
    """conv3x3 (with bias) -> BatchNorm2d -> ReLU, the repeated unit of FaceRecogNet."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1)
        self.norm = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class FaceRecogNet(nn.Module):
    """Original GestaltMatcher backbone: ``(N, C, 100, 100)`` in ``[0, 1]`` -> ``(N, 320)``.

    Args:
        in_channels: input channels (1 for the published grey models).

    The spatial sizes are 100 -> 50 -> 25 -> 13 -> 7 (max-pools round up), so the last map is 7x7
    and the head is a plain average over its 49 cells (a GAP head).
    """

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = int(in_channels)
        self.embedding_dim = FACERECOGNET_EMBEDDING_DIM
        self.grid = 7
        widths = iter(FACERECOGNET_WIDTHS)
        c_in = self.in_channels
        layers: list[nn.Module] = []
        for i in range(FACERECOGNET_LAST_CONV):
            if i in FACERECOGNET_BLOCK_INDICES:
                c_out = next(widths)
                layers.append(ConvNormAct(c_in, c_out))
                c_in = c_out
            else:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        layers.append(nn.Conv2d(c_in, FACERECOGNET_EMBEDDING_DIM, kernel_size=3, padding=1))
        layers.append(nn.AvgPool2d(kernel_size=7, stride=1, padding=0))
        self.base = nn.ModuleList(layers)

    @property
    def feature_channels(self) -> int:
        """Channels of the last feature map (320)."""
        return FACERECOGNET_EMBEDDING_DIM

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last conv (``base.13``): ``(N, 320, 7, 7)``."""
        for module in self.base[: FACERECOGNET_LAST_CONV + 1]:
            x = module(x)
        return x

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """Average pool and flatten: ``(N, 320, 7, 7) -> (N, 320)``."""
        return torch.flatten(self.base[FACERECOGNET_LAST_CONV + 1](maps), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding ``(N, 320)`` of grey faces ``(N, C, 100, 100)`` in ``[0, 1]``."""
        return self.head(self.forward_maps(x))


__all__ = [
    "FACERECOGNET_BLOCK_INDICES",
    "FACERECOGNET_EMBEDDING_DIM",
    "FACERECOGNET_INPUT_SIZE",
    "FACERECOGNET_LAST_CONV",
    "FACERECOGNET_WIDTHS",
    "ConvNormAct",
    "FaceRecogNet",
]
