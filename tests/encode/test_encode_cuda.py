"""The same embeddings on a CUDA device as on the CPU (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmx.encode import Ensemble, load_model

from ._encode_upstream import ArcCheckpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_cuda_matches_cpu(arc_ckpt: ArcCheckpoint, faces: torch.Tensor) -> None:
    cpu = load_model(arc_ckpt.state_dict_path, device="cpu")
    gpu = load_model(arc_ckpt.state_dict_path, device="cuda")
    auto = load_model(arc_ckpt.onnx_path, device="auto")
    assert gpu.device.type == "cuda" and auto.device.type == "cuda"
    assert gpu.fingerprint == cpu.fingerprint
    with torch.inference_mode(), torch.backends.cudnn.flags(allow_tf32=False):
        ref = cpu.model.embed(faces)
        out = gpu.model.embed(faces.cuda()).cpu()
        assert torch.allclose(out, ref, atol=1e-4, rtol=0)
        logits = gpu.model.logits(faces.cuda()).cpu()
        assert torch.allclose(logits, cpu.model.logits(faces), atol=1e-4, rtol=0)
    images = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    with torch.backends.cudnn.flags(allow_tf32=False):
        on_gpu = Ensemble([gpu, auto]).embed(images)
    on_cpu = Ensemble([cpu, load_model(arc_ckpt.onnx_path, device="cpu")]).embed(images)
    assert on_gpu.dtype == np.float32
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4, rtol=0)
    assert Ensemble([gpu]).fingerprint == Ensemble([cpu]).fingerprint
