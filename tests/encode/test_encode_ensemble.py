"""Ensemble: variant order, one forward pass per model, FaceRecogNet inputs, fingerprints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from gmx.encode import (
    Ensemble,
    FaceRecogNet,
    GestaltModel,
    LoadedModel,
    default_card,
    derive_gm_image,
    iresnet,
    load_model,
    preprocess,
    weights_fingerprint,
)
from gmx.variants import Variant

from ._encode_upstream import ArcCheckpoint, randomise


def _loaded(seed: int, dim: int = 8) -> LoadedModel:
    model = GestaltModel(randomise(iresnet((1, 1, 1, 1), (4, 8, 8, 8), dim), seed)).eval()
    card = default_card(
        name=f"m{seed}", architecture="iresnet[1,1,1,1]x[4,8,8,8]", embedding_dim=dim
    )
    return LoadedModel(model, card, weights_fingerprint(model))


def _frn(seed: int) -> LoadedModel:
    model = GestaltModel(randomise(FaceRecogNet(1), seed)).eval()
    card = default_card(name="gm", architecture="facerecognet")
    return LoadedModel(model, card, weights_fingerprint(model))


@dataclass(frozen=True)
class FakeAlignedFace:
    """Duck-typed stand-in for gmx.align.AlignedFace (only the fields Ensemble reads)."""

    image: np.ndarray
    gm_image: np.ndarray


def _faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


def test_variants_and_shape() -> None:
    ens = Ensemble([_loaded(0), _loaded(1)])
    assert ens.variants == (
        Variant(0, False, False),
        Variant(0, False, True),
        Variant(0, True, False),
        Variant(0, True, True),
        Variant(1, False, False),
        Variant(1, False, True),
        Variant(1, True, False),
        Variant(1, True, True),
    )
    out = ens.embed(_faces(3))
    assert out.shape == (3, 8, 8) and out.dtype == np.float32
    assert Ensemble([_loaded(0)], flip=False).variants == (Variant(0), Variant(0, grey=True))
    assert Ensemble([_loaded(0)], flip=False, grey=False).embed(_faces(2)).shape == (2, 1, 8)


def test_each_column_is_its_variant() -> None:
    models = [_loaded(0), _loaded(1)]
    ens = Ensemble(models)
    faces = _faces(2, seed=1)
    out = ens.embed(faces)
    for v, variant in enumerate(ens.variants):
        m = models[variant.model]
        x = preprocess(faces, m.card, flip=variant.flip, grey=variant.grey)
        with torch.no_grad():
            ref = m.model.embed(x).numpy()
        np.testing.assert_allclose(out[:, v], ref, atol=1e-5, rtol=0)
    # The four TTA variants of one model really differ.
    assert len({out[0, v].tobytes() for v in range(4)}) == 4


def test_one_forward_pass_per_model_and_batch_independence() -> None:
    models = [_loaded(0), _loaded(1), _loaded(2)]
    ens = Ensemble(models)
    calls: list[int] = []
    handles = [
        m.model.backbone.register_forward_hook(lambda _m, inp, _o: calls.append(inp[0].shape[0]))
        for m in models
    ]
    try:
        one = ens.embed(_faces(1))
    finally:
        for h in handles:
            h.remove()
    assert calls == [4, 4, 4]  # all 4 TTA copies of the face in one pass per model
    assert all(not m.model.backbone._forward_hooks for m in models)
    faces = _faces(5, seed=2)
    big = Ensemble(models, batch_size=64).embed(faces)
    small = Ensemble(models, batch_size=1).embed(faces)
    np.testing.assert_allclose(big, small, atol=1e-5, rtol=0)
    np.testing.assert_allclose(Ensemble(models).embed(faces[:1]), big[:1], atol=1e-5, rtol=0)
    assert one.shape == (1, 12, 8)


def test_fingerprint() -> None:
    a, b = _loaded(0), _loaded(1)
    base = Ensemble([a, b]).fingerprint
    assert base == Ensemble([_loaded(0), _loaded(1)]).fingerprint
    assert len(base) == 64
    others = {
        Ensemble([b, a]).fingerprint,
        Ensemble([a, b], flip=False).fingerprint,
        Ensemble([a, b], grey=False).fingerprint,
        Ensemble([a]).fingerprint,
        Ensemble(
            [a, dataclasses.replace(b, card=dataclasses.replace(b.card, colour_order="BGR"))]
        ).fingerprint,
    }
    assert base not in others and len(others) == 5
    assert Ensemble([a, b], batch_size=3).fingerprint == base


def test_facerecognet_uses_gm_image() -> None:
    frn = _frn(0)
    ens = Ensemble([frn])
    rng = np.random.default_rng(3)
    images = _faces(2, seed=3)
    gm = rng.integers(0, 256, (2, 100, 100), dtype=np.uint8)
    faces = [FakeAlignedFace(images[i], gm[i]) for i in range(2)]
    out = ens.embed(faces)
    assert out.shape == (2, 4, 320)
    with torch.no_grad():
        plain = frn.model.embed(preprocess(gm, frn.card)).numpy()
        flipped = frn.model.embed(preprocess(gm, frn.card, flip=True)).numpy()
    np.testing.assert_allclose(out[:, 0], plain, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out[:, 1], plain, atol=1e-5, rtol=0)  # grey is a no-op
    np.testing.assert_allclose(out[:, 2], flipped, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out[:, 3], flipped, atol=1e-5, rtol=0)
    # Arrays only: the grey 100x100 input is derived from the 112x112 faces.
    derived = ens.embed(images)
    with torch.no_grad():
        ref = frn.model.embed(preprocess(derive_gm_image(images), frn.card)).numpy()
    np.testing.assert_allclose(derived[:, 0], ref, atol=1e-5, rtol=0)


def test_derive_gm_image() -> None:
    images = np.full((1, 112, 112, 3), (255, 0, 0), dtype=np.uint8)
    gm = derive_gm_image(images)
    assert gm.shape == (1, 100, 100) and gm.dtype == np.uint8
    assert np.all(gm == 76)  # BT.601 luma of pure red


def test_bad_ensembles_and_inputs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])
    with pytest.raises(ValueError, match="embedding size"):
        Ensemble([_loaded(0), _frn(0)])
    with pytest.raises(ValueError, match="batch_size"):
        Ensemble([_loaded(0)], batch_size=0)
    ens = Ensemble([_loaded(0)])
    with pytest.raises(ValueError, match="N faces"):
        ens.embed(_faces(1)[0])
    with pytest.raises(ValueError, match="uint8"):
        ens.embed(_faces(1).astype(np.float32))
    with pytest.raises(ValueError, match=r"\.image"):
        ens.embed([object()])
    with pytest.raises(ValueError, match="112x112"):
        ens.embed(np.zeros((1, 100, 100, 3), dtype=np.uint8))
    assert ens.embed(np.zeros((0, 112, 112, 3), dtype=np.uint8)).shape == (0, 4, 8)
    assert ens.embed([]).shape == (0, 4, 8)


def test_embed_never_mutates_input() -> None:
    faces = _faces(2)
    before = faces.copy()
    Ensemble([_loaded(0), _frn(1)][:1]).embed(faces)
    Ensemble([_frn(1)]).embed(faces)
    assert np.array_equal(faces, before)


def test_real_face_mirror_symmetry(arc_ckpt: ArcCheckpoint) -> None:
    """On a real photo, the 'flip' variant of a face equals the plain variant of its mirror."""
    crop = data.astronaut()[30:250, 120:340]  # the astronaut's face, roughly centred
    face = cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA)[None]
    model = load_model(arc_ckpt.state_dict_path, device="cpu")
    ens = Ensemble([model])
    out = ens.embed(face)
    mirrored = ens.embed(np.ascontiguousarray(face[:, :, ::-1]))
    np.testing.assert_allclose(out[0, 2], mirrored[0, 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(out[0, 3], mirrored[0, 1], atol=1e-5, rtol=0)
    assert np.isfinite(out).all()
    assert not np.allclose(out[0, 0], out[0, 2], atol=1e-3)  # a real face is not symmetric


def test_ensemble_of_loaded_files(arc_ckpt: ArcCheckpoint, tmp_path: Path) -> None:
    models = [load_model(arc_ckpt.state_dict_path), load_model(arc_ckpt.onnx_path)]
    ens = Ensemble(models)
    assert ens.models == tuple(models)
    out = ens.embed(_faces(1))
    assert out.shape == (1, 8, 16)
    # Same backbone weights in both files -> the backbone variants agree.
    np.testing.assert_allclose(out[:, :4], out[:, 4:], atol=1e-4, rtol=0)


def test_bf16_precision_is_close_to_fp32_and_keeps_the_fingerprint(tmp_path):
    import torch as _torch

    from gmx.encode import Ensemble, GestaltModel, default_card, iresnet, load_model, save_model

    _torch.manual_seed(0)
    module = GestaltModel(iresnet((1, 1, 1, 1), (8, 16, 16, 32), 32).eval())
    card = default_card(name="bf16", architecture="iresnet[1,1,1,1]x[8,16,16,32]", embedding_dim=32)
    loaded = load_model(save_model(module, card, tmp_path / "m.pt"), device="cpu")
    faces = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    full = Ensemble([loaded])
    half = Ensemble([loaded], precision="bf16")
    a, b = full.embed(faces), half.embed(faces)
    assert full.fingerprint == half.fingerprint
    assert not np.array_equal(a, b)
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cos.min() > 0.99
    with pytest.raises(ValueError, match="precision"):
        Ensemble([loaded], precision="fp8")
