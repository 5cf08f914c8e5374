"""Occlusion: captum's window grid, black fill, incremental recomputation == full recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmx.explain import SimilarityTarget, explain
from gmx.explain.occlusion import iresnet_units, occluded_embeddings, window_starts
from gmx.explain.prepared import engine_model

from .helpers import deeper_iresnet, face_input, gallery, tiny_iresnet


def test_window_starts_follow_captum() -> None:
    # ceil((112 - 10) / 5) + 1 = 22 windows; the last one starts at 105 and is clipped to 7 px.
    starts = window_starts(112, 10, 5)
    assert len(starts) == 22 and starts[0] == 0 and starts[-1] == 105
    assert window_starts(112, 112, 112) == [0]
    assert window_starts(112, 16, 16)[-1] == 112 - 16
    with pytest.raises(ValueError, match="stride"):
        window_starts(112, 4, 8)
    with pytest.raises(ValueError, match="larger"):
        window_starts(10, 12, 1)


def test_single_black_window_gives_score_drop_to_black_image(tiny_model, face) -> None:
    target = SimilarityTarget(gallery(64))
    amap = explain(
        tiny_model,
        face,
        target,
        methods=["occlusion"],
        params={"occlusion": {"window": 112, "stride": 112, "precision": "fp32"}},
    )["occlusion"]
    x = face_input(face)
    fn = target.bind(0)
    with torch.no_grad():
        expected = float(fn(tiny_model(x)) - fn(tiny_model(torch.full_like(x, -1.0))))
    np.testing.assert_allclose(amap.values, expected, rtol=1e-5)
    assert amap.signed


@pytest.mark.parametrize(
    ("window", "stride"), [(10, 5), (7, 7), ((12, 6), (6, 3))], ids=["10s5", "7s7", "rect"]
)
def test_incremental_equals_full_recomputation(real_face, window, stride) -> None:
    model = deeper_iresnet(2)
    target = SimilarityTarget(gallery(64, seed=8))
    common = {"window": window, "stride": stride, "precision": "fp32", "fill": 0.3}
    inc = explain(
        model,
        real_face,
        target,
        methods=["occlusion"],
        params={"occlusion": {**common, "incremental": True}},
    )["occlusion"]
    full = explain(
        model,
        real_face,
        target,
        methods=["occlusion"],
        params={"occlusion": {**common, "incremental": False, "batch_size": 7}},
    )["occlusion"]
    scale = float(np.abs(full.values).max())
    np.testing.assert_allclose(inc.values, full.values, rtol=0, atol=1e-4 * scale)


def test_incremental_embeddings_match_direct_forward(face) -> None:
    model = tiny_iresnet(5)
    em = engine_model(model)
    assert iresnet_units(em.backbone) is not None
    x = face_input(face)
    windows = [(0, 10, 0, 10), (50, 60, 97, 107), (105, 112, 105, 112), (30, 40, 0, 10)]
    with torch.inference_mode():
        embed = occluded_embeddings(em.backbone, x, windows, -1.0, incremental=True)
        assert embed.incremental
        assert not occluded_embeddings(em.backbone, x, windows, -1.0, incremental=False).incremental
        got = embed(0, len(windows))
        xs = x.repeat(len(windows), 1, 1, 1)
        for i, (y0, y1, x0, x1) in enumerate(windows):
            xs[i, :, y0:y1, x0:x1] = -1.0
        want = model(xs)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(embed(-1, 0), model(x), rtol=1e-5, atol=1e-6)


def test_non_iresnet_backbone_falls_back_to_full_forward(face) -> None:
    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=16, padding=1)
            self.act = torch.nn.PReLU(4)
            self.fc = torch.nn.Linear(4 * 7 * 7, 8)

        def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.conv(x))

        def head(self, maps: torch.Tensor) -> torch.Tensor:
            return self.fc(maps.flatten(1))

    torch.manual_seed(0)
    model = Plain().eval()
    assert iresnet_units(model) is None
    params = {"occlusion": {"window": 16, "stride": 16, "precision": "fp32"}}
    target = SimilarityTarget(np.ones(8, np.float32))
    eng = explain(model, face, target, methods=["occlusion", "gradcam"], params=params)
    ref = explain(
        model, face, target, methods=["occlusion", "gradcam"], params=params, backend="reference"
    )
    np.testing.assert_allclose(
        eng["occlusion"].values, ref["occlusion"].values, rtol=1e-4, atol=1e-6
    )
    assert eng["gradcam"].raw.shape == (7, 7)
