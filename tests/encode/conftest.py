"""Fixtures of the encoder tests (checkpoint builders in ``_encode_upstream.py``)."""

from __future__ import annotations

import pytest
import torch

from ._encode_upstream import N_CLASSES, ArcCheckpoint, arc_replica, export_onnx, small_iresnet


@pytest.fixture(scope="session")
def arc_ckpt(tmp_path_factory: pytest.TempPathFactory) -> ArcCheckpoint:
    tmp = tmp_path_factory.mktemp("arc")
    net = small_iresnet(0)
    onnx_path = export_onnx(net, tmp / "glint360k_small.onnx")
    replica = arc_replica(onnx_path, N_CLASSES)
    sd_path = tmp / "s1_glint360k_small_512d_gmdb__v1.0.3_bs64_size112_channels3_e1.pt"
    torch.save(replica.state_dict(), sd_path)
    return ArcCheckpoint(net, onnx_path, replica, sd_path)


@pytest.fixture(scope="session")
def faces() -> torch.Tensor:
    """Three random preprocessed inputs ``(3, 3, 112, 112)`` in [-1, 1]."""
    gen = torch.Generator().manual_seed(42)
    return torch.rand(3, 3, 112, 112, generator=gen) * 2 - 1
