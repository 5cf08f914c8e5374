"""ModelCard, GestaltModel, FaceRecogNet, fingerprints and preprocessing."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from gmx.encode import (
    FaceRecogNet,
    GestaltModel,
    ModelCard,
    build_backbone,
    default_card,
    iresnet,
    iresnet_architecture,
    preprocess,
    rgb_to_grey,
    weights_fingerprint,
)

from ._encode_upstream import gm_upstream_keys, randomise

IRES_CARD = ModelCard(name="m", architecture="iresnet50")
GM_CARD = default_card(name="gm", architecture="facerecognet")

# -------------------------------------------------------------------------------------------- cards


def test_card_json_round_trip_and_defaults() -> None:
    card = ModelCard(
        name="gm-arc-r100",
        architecture="iresnet100",
        classes=["OMIM:1", "OMIM:2"],  # type: ignore[arg-type]  # lists become tuples
        version="1.0.3",
        notes="ünïcode ok",
    )
    assert card.layers == (3, 13, 30, 3)
    assert card.widths == (64, 128, 256, 512)
    assert card.classes == ("OMIM:1", "OMIM:2")
    again = ModelCard.from_json(card.to_json())
    assert again == card
    assert hash(again) == hash(card)


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"architecture": "resnet50"}, "unknown architecture"),
        ({"architecture": "iresnet50", "layers": (3, 4, 6, 3)}, "contradicts"),
        ({"architecture": "facerecognet", "layers": (1, 1, 1, 1)}, "only apply"),
        ({"colour_order": "RBG"}, "colour_order"),
        ({"mean": (0.5,)}, "one value per channel"),
        ({"std": (0.5, 0.0, 0.5)}, "> 0"),
        ({"channels": 2}, "channels"),
        ({"name": ""}, "name"),
    ],
)
def test_card_validation(fields: dict, pattern: str) -> None:
    base = {"name": "m", "architecture": "iresnet50"}
    with pytest.raises(ValueError, match=pattern):
        ModelCard(**{**base, **fields})


def test_card_from_json_rejects_unknown_and_missing_fields() -> None:
    with pytest.raises(ValueError, match="unknown model card fields"):
        ModelCard.from_json('{"name": "m", "architecture": "iresnet50", "colour": "RGB"}')
    with pytest.raises(ValueError, match="required"):
        ModelCard.from_json('{"name": "m"}')
    with pytest.raises(ValueError, match="JSON object"):
        ModelCard.from_json("[1, 2]")
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelCard.from_json("{name: m}")


def test_architecture_names() -> None:
    assert iresnet_architecture((3, 4, 14, 3)) == "iresnet50"
    assert iresnet_architecture((3, 13, 30, 3)) == "iresnet100"
    assert (
        iresnet_architecture((1, 2, 2, 1), (16, 32, 64, 128)) == "iresnet[1,2,2,1]x[16,32,64,128]"
    )
    assert iresnet_architecture((3, 4, 14, 3), (32, 64, 128, 256)) == (
        "iresnet[3,4,14,3]x[32,64,128,256]"
    )
    card = ModelCard(name="s", architecture="iresnet[1,2,2,1]x[16,32,64,128]", embedding_dim=64)
    net = build_backbone(card)
    assert (net.layers_spec, net.widths, net.embedding_dim) == ((1, 2, 2, 1), (16, 32, 64, 128), 64)
    assert isinstance(build_backbone(GM_CARD), FaceRecogNet)


def test_facerecognet_default_card() -> None:
    assert (GM_CARD.channels, GM_CARD.input_size, GM_CARD.mean, GM_CARD.std) == (
        1,
        100,
        (0.0,),
        (1.0,),
    )
    assert GM_CARD.embedding_dim == 320
    assert GM_CARD.layers is None


# ------------------------------------------------------------------------------------- FaceRecogNet


def test_facerecognet_layout_matches_upstream_keys() -> None:
    net = FaceRecogNet(1)
    expected = {k: v for k, v in gm_upstream_keys(1).items() if k.startswith("base.")}
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == expected


def test_facerecognet_shapes_and_head() -> None:
    net = randomise(FaceRecogNet(1), 0)
    x = torch.rand(2, 1, 100, 100)
    with torch.no_grad():
        maps = net.forward_maps(x)
        emb = net(x)
    assert maps.shape == (2, 320, 7, 7)
    assert emb.shape == (2, 320)
    assert torch.allclose(emb, maps.mean(dim=(2, 3)), atol=1e-6)


# ------------------------------------------------------------------------------------- GestaltModel


def test_gestalt_model_embed_logits() -> None:
    backbone = randomise(iresnet((1, 1, 1, 1), (4, 4, 4, 4), 8), 0)
    classifier = nn.Linear(8, 3)
    model = GestaltModel(backbone, classifier).eval()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), backbone(x))
        assert torch.allclose(model.logits(x), classifier(backbone(x)))
    assert (model.embedding_dim, model.num_classes) == (8, 3)
    with pytest.raises(ValueError, match="no classifier"):
        GestaltModel(backbone).logits(x)
    with pytest.raises(ValueError, match="classifier takes 5"):
        GestaltModel(backbone, nn.Linear(5, 3))
    with pytest.raises(ValueError, match="embedding_dim"):
        GestaltModel(nn.Linear(2, 2))


def test_weights_fingerprint() -> None:
    a = GestaltModel(randomise(iresnet((1, 1, 1, 1), (4, 4, 4, 4), 8), 0))
    b = GestaltModel(randomise(iresnet((1, 1, 1, 1), (4, 4, 4, 4), 8), 0))
    assert weights_fingerprint(a) == weights_fingerprint(b)
    b.backbone.bn2.num_batches_tracked += 5  # does not change outputs
    assert weights_fingerprint(a) == weights_fingerprint(b)
    with torch.no_grad():
        b.backbone.fc.bias[0] += 1e-3
    assert weights_fingerprint(a) != weights_fingerprint(b)
    assert len(weights_fingerprint(a)) == 64


# ------------------------------------------------------------------------------------ preprocessing


def _images(n: int = 2, size: int = 112, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_rgb_to_grey_equals_opencv() -> None:
    images = _images(3)
    ours = rgb_to_grey(images)
    theirs = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])
    assert np.array_equal(ours, theirs)
    # Hand-computed BT.601: round(0.299 * 255) = 76, round(0.587 * 255) = 150, round(0.114 * 255) = 29.
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert rgb_to_grey(px).tolist() == [[76, 150, 29, 255]]


def test_preprocess_values_by_hand() -> None:
    image = np.zeros((1, 112, 112, 3), dtype=np.uint8)
    image[0, 0, 0] = (255, 51, 0)  # top-left pixel
    image[0, 0, 111] = (0, 0, 255)  # top-right pixel
    x = preprocess(image, IRES_CARD)
    assert x.shape == (1, 3, 112, 112) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == pytest.approx([1.0, -0.6, -1.0])
    assert x[0, :, 5, 5].tolist() == [-1.0, -1.0, -1.0]
    flipped = preprocess(image, IRES_CARD, flip=True)
    assert flipped[0, :, 0, 111].tolist() == pytest.approx([1.0, -0.6, -1.0])
    assert flipped[0, :, 0, 0].tolist() == pytest.approx([-1.0, -1.0, 1.0])
    grey = preprocess(image, IRES_CARD, grey=True)
    luma = (round(0.299 * 255 + 0.587 * 51) / 255 - 0.5) / 0.5
    assert grey[0, :, 0, 0].tolist() == pytest.approx([luma] * 3)
    bgr = preprocess(image, dataclasses.replace(IRES_CARD, colour_order="BGR"))
    assert bgr[0, :, 0, 0].tolist() == pytest.approx([-1.0, -0.6, 1.0])


def test_preprocess_matches_upstream_recipe() -> None:
    """(x/255 - 0.5)/0.5 on RGB, grey = cv2 RGB2GRAY replicated, flip = mirror, as GM-Arc does."""
    images = _images(2, seed=3)
    for flip in (False, True):
        for grey in (False, True):
            ours = preprocess(images, IRES_CARD, flip=flip, grey=grey)
            for i, im in enumerate(images):
                ref = im
                if grey:
                    ref = cv2.cvtColor(cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                if flip:
                    ref = cv2.flip(ref, 1)
                t = torch.from_numpy(np.transpose(ref, (2, 0, 1)).copy()).float()
                t = t.div(255).sub(0.5).div(0.5)
                assert torch.equal(ours[i], t)


def test_preprocess_facerecognet() -> None:
    images = _images(2, size=100)
    x = preprocess(images, GM_CARD)
    assert x.shape == (2, 1, 100, 100)
    assert torch.allclose(x[:, 0], torch.from_numpy(rgb_to_grey(images)).float() / 255)
    grey_in = rgb_to_grey(images)
    assert torch.equal(preprocess(grey_in, GM_CARD), x)
    assert torch.equal(preprocess(images, GM_CARD, grey=True), x)
    assert torch.equal(preprocess(images, GM_CARD, flip=True), x.flip(-1))


def test_preprocess_never_mutates_input() -> None:
    images = _images(2)
    before = images.copy()
    for flip in (False, True):
        for grey in (False, True):
            preprocess(
                images, dataclasses.replace(IRES_CARD, colour_order="BGR"), flip=flip, grey=grey
            )
    assert np.array_equal(images, before)
    read_only = images.copy()
    read_only.setflags(write=False)
    preprocess(read_only, IRES_CARD, flip=True)


@pytest.mark.parametrize(
    ("images", "pattern"),
    [
        (np.zeros((1, 112, 112, 3), dtype=np.float32), "uint8"),
        (np.zeros((112, 112, 3), dtype=np.uint8), "N, 112, 112, 3"),
        (np.zeros((1, 100, 100, 3), dtype=np.uint8), "112x112"),
        (np.zeros((1, 112, 112, 4), dtype=np.uint8), "N, 112, 112, 3"),
    ],
)
def test_preprocess_rejects_bad_input(images: np.ndarray, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        preprocess(images, IRES_CARD)
