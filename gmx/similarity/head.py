"""The affine head of a backbone, folded into one weight tensor per 7x7 cell.

Everything after an iResNet's last convolution stage is affine in eval mode::

    e = BN1d(W_fc · vec(M) + b_fc) = A · vec(M) + b,
    A = diag(s) · W_fc,   b = s ⊙ (b_fc - μ) + β,   s = γ / sqrt(σ² + ε),

with ``M`` the ``(C, h, w)`` map after ``bn2``, ``(μ, σ², γ, β)`` the running statistics and affine
parameters of the ``features`` BatchNorm1d and ``vec`` PyTorch's flatten order (channel-major: index
``ch * h * w + row * w + col``). Splitting the columns of ``A`` by cell gives ``A_g`` ``(D, C)`` for each
of the ``G = h * w`` cells (``g = row * w + col``), and ``e = Σ_g A_g m_g + b`` where ``m_g`` is the
``(C,)`` activation vector of cell ``g``. :class:`AffineHead` stores the ``(G, D, C)`` stack once per
model so that every later pair costs only batched matrix products.

Other backbones whose ``head(maps)`` is affine (FaceRecogNet's average pool) are folded from the
head's Jacobian and checked for affinity on random maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gmx.encode.iresnet import IResNet

#: Largest relative deviation from affinity tolerated when a head is folded from its Jacobian.
AFFINE_TOLERANCE = 1e-4


@dataclass(frozen=True, eq=False)
class AffineHead:
    """A backbone's head ``maps (N, C, h, w) -> embeddings (N, D)`` as ``Σ_g A_g m_g + b``.

    Attributes:
        weight: ``(G, D, C)`` float32 CPU tensor, ``G = h * w`` cells in row-major order
            (``g = row * w + col``, row 0 at the top of the template, column 0 at the image's left),
            ``weight[g] = A_g``. Stored as a view of ``(G, C, D)`` memory (faster products). Never
            modified.
        bias: ``(D,)`` float32 CPU tensor (the folded constant ``b``). Never modified.
        grid: ``(h, w)`` of the feature map (``(7, 7)`` at 112x112 input).
    """

    weight: torch.Tensor
    bias: torch.Tensor
    grid: tuple[int, int]

    def __post_init__(self) -> None:
        w, b = self.weight, self.bias
        if w.ndim != 3 or b.ndim != 1 or w.shape[1] != b.shape[0]:
            raise ValueError(
                f"weight must be (G, D, C) and bias (D,), got {tuple(w.shape)} {tuple(b.shape)}"
            )
        if w.shape[0] != self.grid[0] * self.grid[1]:
            raise ValueError(f"weight has {w.shape[0]} cells but grid is {self.grid}")
        if not w.transpose(1, 2).is_contiguous():
            # Kept as a (G, D, C) view of (G, C, D) memory: ``maps^T @ A_g^T`` reads it row by row,
            # about 2.5x faster than ``A_g @ maps`` on CPU for a few images (measured).
            object.__setattr__(self, "weight", w.transpose(1, 2).contiguous().transpose(1, 2))

    @property
    def cells(self) -> int:
        """``G``, the number of cells."""
        return int(self.weight.shape[0])

    @property
    def channels(self) -> int:
        """``C``, channels of the feature map."""
        return int(self.weight.shape[2])

    @property
    def embedding_dim(self) -> int:
        """``D``, size of the embedding."""
        return int(self.weight.shape[1])

    def cell_terms(self, maps: torch.Tensor) -> torch.Tensor:
        """Each cell's share of the embedding, ``u_g = A_g m_g``.

        Args:
            maps: ``(N, C, h, w)`` float feature maps (after ``bn2``).

        Returns:
            ``(N, G, D)`` float32 tensor; ``cell_terms(maps).sum(1) + bias == head(maps)``.
        """
        maps = self._check(maps)
        n = maps.shape[0]
        per_cell = maps.reshape(n, self.channels, self.cells).permute(2, 0, 1)  # (G, N, C)
        out = torch.bmm(per_cell, self.weight.transpose(1, 2))  # (G, N, D)
        return out.permute(1, 0, 2)

    def __call__(self, maps: torch.Tensor) -> torch.Tensor:
        """The embeddings ``(N, D)`` of ``(N, C, h, w)`` maps (equal to the backbone's ``head``)."""
        return self.cell_terms(maps).sum(1) + self.bias

    def _check(self, maps: torch.Tensor) -> torch.Tensor:
        if not isinstance(maps, torch.Tensor):
            raise ValueError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
        want = (self.channels, *self.grid)
        if maps.ndim != 4 or tuple(maps.shape[1:]) != want:
            raise ValueError(
                f"maps must be (N, {want[0]}, {want[1]}, {want[2]}), got {tuple(maps.shape)}"
            )
        return maps.detach().to(device=self.weight.device, dtype=self.weight.dtype)


def _backbone_of(model: nn.Module) -> nn.Module:
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"expected a backbone nn.Module, got {type(backbone).__name__}")
    for name in ("forward_maps", "head"):
        if not callable(getattr(backbone, name, None)):
            raise ValueError(
                f"{type(backbone).__name__} has no {name}(): the exact decomposition needs a "
                "backbone with forward_maps(x) -> (N, C, h, w) and an affine head(maps)"
            )
    if backbone.training:
        raise ValueError(
            f"{type(backbone).__name__} is in training mode: BatchNorm then uses batch statistics and "
            "the head is not affine per image; call .eval() first"
        )
    return backbone


def _fold_iresnet(backbone: IResNet) -> AffineHead:
    fc = backbone.fc
    bn = backbone.features
    if not isinstance(fc, nn.Linear) or not isinstance(bn, nn.BatchNorm1d):
        raise ValueError("IResNet head must be fc: nn.Linear followed by features: nn.BatchNorm1d")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("the features BatchNorm1d tracks no running statistics: not affine")
    dropout = getattr(backbone, "dropout", None)
    if isinstance(dropout, nn.Dropout) and dropout.training and dropout.p > 0:
        raise ValueError("the head's dropout is active (training mode)")
    g = backbone.grid
    c = backbone.feature_channels
    with torch.no_grad():
        w = fc.weight.detach().to("cpu", torch.float64)  # (D, C*g*g)
        b_fc = (
            fc.bias.detach().to("cpu", torch.float64)
            if fc.bias is not None
            else torch.zeros(w.shape[0], dtype=torch.float64)
        )
        var = bn.running_var.detach().to("cpu", torch.float64)
        mean = bn.running_mean.detach().to("cpu", torch.float64)
        gamma = (
            bn.weight.detach().to("cpu", torch.float64)
            if bn.weight is not None
            else torch.ones_like(var)
        )
        beta = (
            bn.bias.detach().to("cpu", torch.float64)
            if bn.bias is not None
            else torch.zeros_like(var)
        )
        scale = gamma / torch.sqrt(var + bn.eps)
        a = scale[:, None] * w  # (D, C*G)
        bias = scale * (b_fc - mean) + beta
        if a.shape[1] != c * g * g:
            raise ValueError(f"fc takes {a.shape[1]} inputs, expected C*h*w = {c}*{g}*{g}")
        weight = a.reshape(a.shape[0], c, g * g).permute(2, 0, 1)  # (G, D, C)
    return AffineHead(
        weight=weight.to(torch.float32).contiguous(),
        bias=bias.to(torch.float32).contiguous(),
        grid=(g, g),
    )


def _fold_jacobian(backbone: nn.Module) -> AffineHead:
    channels = getattr(backbone, "feature_channels", None)
    grid = getattr(backbone, "grid", None)
    if not isinstance(channels, int) or not isinstance(grid, int):
        raise ValueError(
            f"{type(backbone).__name__} must expose int feature_channels and grid to fold its head"
        )
    param = next(iter(backbone.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    zeros = torch.zeros((1, channels, grid, grid), device=device)
    with torch.no_grad():
        bias = backbone.head(zeros)[0].detach().to("cpu", torch.float32)
    jac = torch.autograd.functional.jacobian(lambda m: backbone.head(m)[0], zeros)
    # (D, 1, C, h, w) -> (G, D, C)
    d = bias.shape[0]
    weight = (
        jac.detach().to("cpu", torch.float32).reshape(d, channels, grid * grid).permute(2, 0, 1)
    )
    head = AffineHead(weight.contiguous(), bias.contiguous(), (grid, grid))
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn((2, channels, grid, grid), generator=gen)
    with torch.no_grad():
        want = backbone.head(probe.to(device)).to("cpu", torch.float32)
    got = head(probe)
    err = float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))
    if err > AFFINE_TOLERANCE:
        raise ValueError(
            f"the head of {type(backbone).__name__} is not affine (relative deviation {err:.2e}); "
            "the exact decomposition needs an affine head"
        )
    return head


def fold_head(model: nn.Module) -> AffineHead:
    """Fold a backbone's eval-mode head into per-cell weights (see the module docstring).

    Args:
        model: an :class:`~gmx.encode.IResNet`, any backbone with ``forward_maps``/``head``,
            ``feature_channels`` and ``grid`` whose head is affine (e.g. FaceRecogNet), or an object
            holding one as ``.backbone`` (``GestaltModel``). Not modified.

    Returns:
        The folded head on the CPU, float32 (folding itself is done in float64).

    Raises:
        ValueError: if the model is in training mode, lacks ``forward_maps``/``head``, or its head
            is not affine.
    """
    backbone = _backbone_of(model)
    if isinstance(backbone, IResNet):
        return _fold_iresnet(backbone)
    return _fold_jacobian(backbone)


__all__ = ["AFFINE_TOLERANCE", "AffineHead", "fold_head"]
