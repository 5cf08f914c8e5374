"""Engine implementations reproduce captum / pytorch-grad-cam (the reference backend).

Stated tolerances (fp32): maps on captum's scale agree element-wise to 1e-3 relative (of the map's
maximum); pytorch-grad-cam maps (min-max scaled by the library) agree after the same scaling to 1e-3;
every map has Pearson r >= 0.9999. bf16 paths (occlusion, integrated gradients with
``precision="bf16"``) must keep r >= 0.99 and top-10% pixel IoU >= 0.9 against fp32.
"""

from __future__ import annotations

import numpy as np
import pytest

from gmx.encode.geometry import half_pixel_grid
from gmx.explain import SimilarityTarget, agreement, explain, get_method, list_methods, methods

from .helpers import deeper_iresnet, gallery, tiny_iresnet

PARAMS = {
    "occlusion": {"window": 12, "stride": 12, "precision": "fp32"},
    "integrated_gradients": {"steps": 8, "precision": "fp32"},
}
#: pytorch-grad-cam returns min-max scaled maps; compare after the same scaling. FullGrad's default
#: (per-layer rescaling) has a naive reference on the engine's scale; ``rescale="channel"`` is
#: pytorch-grad-cam's (``test_fullgrad_per_channel_matches_pytorch_grad_cam``).
SCALED = {"gradcam", "hirescam", "gradcam_plusplus", "layercam"}
#: FullGrad places its bias terms at the layers' receptive-field centres, the references resize
#: them with half-pixel centres: compared with the engine's placement swapped for that resize.
PLACED_DIFFERENTLY = {"fullgrad"}


def _half_pixel_upsample(maps, size):
    return half_pixel_grid(tuple(maps.shape[-2:]), size[0]).place(maps)


def _at_cells(eng, ref) -> tuple[np.ndarray, np.ndarray]:
    """Compare at cell resolution: both raw maps where the reference is coarse (captum), else
    the engine's cells with pytorch-grad-cam's half-pixel resize against its 112x112 map."""
    if ref.raw.shape == eng.raw.shape:
        return eng.raw, ref.raw
    return half_pixel_grid(eng.raw.shape).place(eng.raw), ref.values


def _minmax(v: np.ndarray) -> np.ndarray:
    v = v - v.min()
    return v / (1e-7 + v.max())


def _compare(name: str, eng: np.ndarray, ref: np.ndarray) -> None:
    if name in SCALED:
        eng = _minmax(eng)
    scale = float(np.abs(ref).max())
    if scale == 0:  # e.g. a ReLU'd CAM with no positive evidence: both must be empty
        np.testing.assert_array_equal(eng, 0.0, err_msg=name)
        return
    np.testing.assert_allclose(eng, ref, rtol=0, atol=1e-3 * scale, err_msg=name)
    assert agreement(eng, ref).pearson >= 0.9999, name


@pytest.mark.parametrize(
    "model_fn", [tiny_iresnet, deeper_iresnet], ids=["tiny", "two-blocks-per-stage"]
)
def test_engine_matches_reference(model_fn, face, real_face, monkeypatch) -> None:
    names = [n for n in list_methods() if get_method(n).reference is not None]
    params = {k: v for k, v in PARAMS.items() if k in names}
    for img in (face, real_face):
        model = model_fn()
        target = SimilarityTarget(gallery(64, seed=3))
        eng = explain(model, img, target, methods=names, params=params)
        ref = explain(model, img, target, methods=names, params=params, backend="reference")
        for name in names:
            if name not in PLACED_DIFFERENTLY:
                _compare(name, *_at_cells(eng[name], ref[name]))
        with monkeypatch.context() as mp:
            mp.setattr(methods, "upsample", _half_pixel_upsample)
            resized = explain(model, img, target, methods=sorted(PLACED_DIFFERENTLY))
        for name in PLACED_DIFFERENTLY:
            _compare(name, resized[name].values, ref[name].values)
            assert not np.allclose(resized[name].values, eng[name].values), name


def test_signed_variants_match_captum_layer_methods(face) -> None:
    model = tiny_iresnet(2)
    target = SimilarityTarget(gallery(64, seed=5))
    params = {"hirescam": {"relu": False}, "gradcam_signed": {"layer": "layer4"}}
    names = ["hirescam", "gradcam_signed"]
    eng = explain(model, face, target, methods=names, params=params)
    ref = explain(model, face, target, methods=names, params=params, backend="reference")
    for name in names:
        assert eng[name].signed
        np.testing.assert_allclose(eng[name].raw, ref[name].raw, rtol=0, atol=1e-6)


@pytest.mark.parametrize("layer", ["layer3", "layer4.0.bn3", "bn2"])
def test_cam_on_other_layers_matches_reference(face, layer: str) -> None:
    model = tiny_iresnet(4)
    target = SimilarityTarget(gallery(64, seed=6))
    params = {"gradcam": {"layer": layer}, "layercam": {"layer": layer}}
    eng = explain(model, face, target, methods=["gradcam", "layercam"], params=params)
    ref = explain(
        model, face, target, methods=["gradcam", "layercam"], params=params, backend="reference"
    )
    for name in ("gradcam", "layercam"):
        _compare(name, *_at_cells(eng[name], ref[name]))
    if layer == "bn2":  # the forward_maps output, the default layer
        default = explain(model, face, target, methods=["gradcam"])["gradcam"]
        np.testing.assert_allclose(default.values, eng["gradcam"].values, rtol=1e-6, atol=1e-9)


def test_bf16_paths_stay_within_tolerance(real_face) -> None:
    model = deeper_iresnet(5)
    target = SimilarityTarget(gallery(64, seed=9))
    names = ["occlusion", "integrated_gradients"]
    fp32 = {"occlusion": {"stride": 8, "precision": "fp32"}, "integrated_gradients": {"steps": 8}}
    bf16 = {
        "occlusion": {"stride": 8, "precision": "bf16"},
        "integrated_gradients": {"steps": 8, "precision": "bf16"},
    }
    a = explain(model, real_face, target, methods=names, params=fp32)
    b = explain(model, real_face, target, methods=names, params=bf16)
    for name in names:
        agree = agreement(b[name].values, a[name].values)
        assert agree.pearson >= 0.99 and agree.top_iou >= 0.9, (name, agree)


def test_fullgrad_per_channel_matches_pytorch_grad_cam(face, monkeypatch) -> None:
    model = tiny_iresnet(3)
    target = SimilarityTarget(gallery(64, seed=4))
    params = {"fullgrad": {"rescale": "channel"}}
    monkeypatch.setattr(methods, "upsample", _half_pixel_upsample)  # pytorch-grad-cam's resize
    eng = explain(model, face, target, methods=["fullgrad"], params=params)["fullgrad"]
    ref = explain(model, face, target, methods=["fullgrad"], params=params, backend="reference")[
        "fullgrad"
    ]
    _compare("gradcam", _minmax(eng.values), ref.values)  # both min-max scaled


@pytest.mark.parametrize("name", ["guided_backprop", "deconvolution"])
def test_prelu_as_relu_rule_matches_captum(face, name: str) -> None:
    model = tiny_iresnet(5)
    target = SimilarityTarget(gallery(64, seed=7))
    params = {name: {"prelu": "as_relu"}}
    eng = explain(model, face, target, methods=[name], params=params)[name]
    ref = explain(model, face, target, methods=[name], params=params, backend="reference")[name]
    _compare(name, eng.values, ref.values)
    default = explain(model, face, target, methods=[name])[name]
    assert agreement(default.values, eng.values).pearson < 0.999  # the rule matters here
