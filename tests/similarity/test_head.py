"""Folding the affine head: A = diag(γ/σ) W_fc per cell, b folded; Jacobian fold for other heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gmx.encode import FaceRecogNet, GestaltModel
from gmx.similarity import AffineHead, fold_head
from gmx.similarity.head import _fold_jacobian

from .conftest import tiny_backbone


def _maps(backbone, n: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, backbone.feature_channels, backbone.grid, backbone.grid), generator=gen)


def test_folded_head_equals_the_backbone_head():
    backbone = tiny_backbone(3)
    head = fold_head(backbone)
    maps = _maps(backbone)
    with torch.no_grad():
        want = backbone.head(maps)
    assert head.weight.shape == (49, 32, 32) and head.bias.shape == (32,) and head.grid == (7, 7)
    torch.testing.assert_close(head(maps), want, rtol=1e-5, atol=1e-5)
    # the cell terms are the per-cell shares: summing them plus the bias is the embedding
    terms = head.cell_terms(maps)
    assert terms.shape == (3, 49, 32)
    torch.testing.assert_close(terms.sum(1) + head.bias, want, rtol=1e-5, atol=1e-5)


def test_fold_follows_the_stated_formula_cell_by_cell():
    """A_g[:, ch] = γ/sqrt(σ²+ε) * W_fc[:, ch*49 + g]; b = s*(b_fc - μ) + β (hand-computed)."""
    backbone = tiny_backbone(4)
    head = fold_head(backbone)
    bn, fc = backbone.features, backbone.fc
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    g, ch = 17, 5
    torch.testing.assert_close(head.weight[g, :, ch], s * fc.weight[:, ch * 49 + g].detach())
    b = s * (fc.bias - bn.running_mean) + bn.bias
    torch.testing.assert_close(head.bias, b.detach())


def test_fold_accepts_a_gestalt_model_and_never_mutates_it():
    backbone = tiny_backbone(5)
    model = GestaltModel(backbone, nn.Linear(32, 4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = fold_head(model)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and all(
        not h for h in (model._forward_hooks, backbone._forward_hooks)
    )
    torch.testing.assert_close(head(_maps(backbone)), backbone.head(_maps(backbone)).detach())


def test_jacobian_fold_equals_the_explicit_fold_on_an_iresnet():
    backbone = tiny_backbone(6)
    explicit = fold_head(backbone)
    generic = _fold_jacobian(backbone)
    torch.testing.assert_close(generic.weight, explicit.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(generic.bias, explicit.bias, rtol=1e-5, atol=1e-6)


def test_facerecognet_average_pool_head_folds_to_identity_over_49():
    net = FaceRecogNet(in_channels=1).eval()
    head = fold_head(net)
    assert head.weight.shape == (49, 320, 320)
    torch.testing.assert_close(head.weight[10], torch.eye(320) / 49, rtol=1e-5, atol=1e-7)
    assert float(head.bias.abs().max()) == 0.0


class _ReluHead(nn.Module):
    feature_channels = 4
    grid = 2
    embedding_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 3)

    def forward_maps(self, x):
        return x

    def head(self, maps):
        return torch.relu(self.fc(maps.flatten(1)))


def test_a_non_affine_head_is_refused():
    with pytest.raises(ValueError, match="not affine"):
        fold_head(_ReluHead().eval())


def test_training_mode_and_missing_methods_are_refused():
    backbone = tiny_backbone(7).train()
    with pytest.raises(ValueError, match="training mode"):
        fold_head(backbone)
    with pytest.raises(ValueError, match="forward_maps"):
        fold_head(nn.Linear(3, 3))


def test_affine_head_checks_shapes():
    with pytest.raises(ValueError, match="cells"):
        AffineHead(torch.zeros(5, 2, 3), torch.zeros(2), (2, 2))
    head = AffineHead(torch.zeros(4, 2, 3), torch.zeros(2), (2, 2))
    with pytest.raises(ValueError, match="maps must be"):
        head(torch.zeros(1, 3, 3, 3))
    assert np.isclose(float(head(torch.ones(1, 3, 2, 2)).sum()), 0.0)
