"""Targets, registry, results and display helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gmx.explain import (
    THESIS_PANEL,
    AttributionMap,
    ContrastTarget,
    LogitTarget,
    SimilarityTarget,
    display_ranges,
    explain,
    explain_batch,
    get_method,
    list_methods,
    normalize_for_display,
    normalize_maps,
    register_method,
)
from gmx.explain.registry import unregister_method
from gmx.explain.workspace import Workspace, gauss_legendre, path_gradient

from .helpers import gallery


def test_similarity_target_is_cosine_per_variant() -> None:
    rows = gallery(8, rows=2)
    target = SimilarityTarget(rows, "CdLS")
    e = torch.randn(3, 8)
    for v in range(2):
        want = F.cosine_similarity(e, torch.from_numpy(rows[v])[None], dim=1)
        torch.testing.assert_close(target(e, v), want)
    assert "CdLS" in target.description
    assert not target.gallery_embeddings.flags.writeable
    rows[0, 0] = 99.0  # the target keeps its own copy
    assert target.gallery_embeddings[0, 0] != 99.0
    with pytest.raises(ValueError, match="gallery row"):
        target.bind(2)
    with pytest.raises(ValueError, match="zero"):
        SimilarityTarget(np.zeros((1, 8)))
    with pytest.raises(ValueError, match="shape"):
        SimilarityTarget(np.ones((1, 2, 3)))


def test_logit_and_contrast_targets() -> None:
    clf = torch.nn.Linear(8, 4)
    e = torch.randn(2, 8)
    torch.testing.assert_close(LogitTarget(2)(e, 0, clf), clf(e)[:, 2])
    with pytest.raises(ValueError, match="classifier"):
        LogitTarget(2).bind(0, None)
    with pytest.raises(ValueError, match="int"):
        LogitTarget(1.5)  # type: ignore[arg-type]
    a, b = SimilarityTarget(gallery(8, seed=1)), SimilarityTarget(gallery(8, seed=2))
    torch.testing.assert_close(ContrastTarget(a, b)(e), a(e) - b(e))
    assert "minus" in ContrastTarget(a, b).description


def test_path_gradient_integrates_exactly() -> None:
    target = SimilarityTarget(gallery(16)).bind(0)
    start, end = torch.randn(2, 16), torch.randn(2, 16)
    m = path_gradient(target, start, end)
    torch.testing.assert_close(
        (m * (end - start)).sum(1), target(end) - target(start), rtol=1e-5, atol=1e-6
    )
    nodes, weights = gauss_legendre(5)
    assert weights.sum() == pytest.approx(1.0) and (nodes > 0).all() and (nodes < 1).all()


def test_registry_lists_every_method_with_metadata() -> None:
    names = list_methods()
    for required in (
        *THESIS_PANEL,
        "gradcam_signed",
        "gradcam_plusplus",
        "layercam",
        "random",
        "edges",
    ):
        assert required in names
    assert set(list_methods("layer")) >= {"gradcam", "hirescam", "fullgrad"}
    for name in names:
        spec = get_method(name)
        assert spec.display_name and spec.citation and spec.family in ("input", "layer", "baseline")
    assert get_method("occlusion").defaults["window"] == 10
    assert get_method("occlusion").defaults["fill"] == "black"
    assert get_method("integrated_gradients").defaults["steps"] == 32
    assert get_method("saliency").defaults["smooth_samples"] == 0
    with pytest.raises(ValueError, match="unknown method"):
        get_method("lime")
    with pytest.raises(ValueError, match="no parameter"):
        get_method("gradcam").resolve({"steps": 3})


def test_adding_a_method_takes_one_decorated_function(tiny_model, face) -> None:
    @register_method(
        "inputxgrad",
        "Input x Gradient",
        family="input",
        signed=True,
        shared=True,
        batchable=True,
        citation="Shrikumar et al. 2016, arXiv:1605.01713",
    )
    def _input_x_gradient(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
        return torch.stack(
            [(ws.x * ws.gradients(t).input).sum(1) for t in range(ws.n_targets)], dim=1
        )

    try:
        with pytest.raises(ValueError, match="already registered"):
            register_method("inputxgrad", "x", family="input", signed=True)(_input_x_gradient)
        maps = explain(
            tiny_model, face, SimilarityTarget(gallery(64)), methods=["inputxgrad", "saliency"]
        )
        assert maps["inputxgrad"].display_name == "Input x Gradient"
        assert maps["inputxgrad"].values.shape == (112, 112)
        # The same registration serves a batch of faces (row 0 is the face above).
        faces = np.stack([face, face[:, ::-1]])
        rows = explain_batch(
            tiny_model, faces, SimilarityTarget(gallery(64)), methods=["inputxgrad"]
        )["inputxgrad"]
        assert rows.shape == (2, 112, 112)
        np.testing.assert_allclose(rows[0], maps["inputxgrad"].raw, rtol=1e-4, atol=1e-6)
    finally:
        unregister_method("inputxgrad")
    assert "inputxgrad" not in list_methods()


def _amap(values: np.ndarray, method: str = "m", signed: bool = True) -> AttributionMap:
    return AttributionMap(method, method, "t", values, values[::16, ::16], signed)


def test_attribution_map_is_frozen_and_read_only() -> None:
    src = np.arange(112 * 112, dtype=np.float64).reshape(112, 112)
    amap = _amap(src)
    assert amap.values.dtype == np.float32 and not amap.values.flags.writeable
    src[0, 0] = -5  # a private copy
    assert amap.values[0, 0] == 0
    with pytest.raises(AttributeError):
        amap.method = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        amap.params["a"] = 1  # type: ignore[index]
    with pytest.raises(ValueError, match="112, 112"):
        _amap(np.zeros((7, 7)))


def test_display_scaling() -> None:
    rng = np.random.default_rng(0)
    a = _amap(rng.standard_normal((112, 112)), "gradcam_signed")
    b = _amap(3 * rng.standard_normal((112, 112)), "gradcam_signed")
    c = _amap(np.abs(rng.standard_normal((112, 112))) * 0.01, "saliency", signed=False)
    before = a.values.copy()
    per_map = display_ranges([a, b, c], "map")
    assert per_map[0].vmin == -per_map[0].vmax and per_map[0].diverging
    assert per_map[2].vmin == 0 and not per_map[2].diverging
    by_method = display_ranges([a, b, c], "method")
    assert by_method[0].vmax == by_method[1].vmax != by_method[2].vmax
    shared = display_ranges([a, b, c], "all")
    assert len({r.vmax for r in shared}) == 1
    outs = normalize_maps([a, b, c], "method")
    assert outs[0].min() >= -1 and outs[0].max() <= 1 and outs[2].min() >= 0
    # Shared scale keeps relative strength: b is ~3x a.
    assert np.abs(outs[1]).mean() > 2 * np.abs(outs[0]).mean()
    np.testing.assert_array_equal(a.values, before)
    flat = normalize_for_display(_amap(np.zeros((112, 112))))
    assert np.all(flat == 0)
    with pytest.raises(ValueError, match="share"):
        display_ranges([a], "syndrome")  # type: ignore[arg-type]
