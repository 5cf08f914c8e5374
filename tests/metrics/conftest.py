"""A tiny deterministic gallery (random-init mini iResNet, flip variants) for gmx.metrics tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from gmx.encode import Ensemble, GestaltModel, LoadedModel, default_card, iresnet
from gmx.gallery import Gallery, GalleryImage, Syndrome, build_gallery
from tests.explain.helpers import synthetic_face


@dataclass(frozen=True)
class Tiny:
    model: LoadedModel
    gallery: Gallery
    faces: np.ndarray  # (3, 112, 112, 3) outside faces
    labels: tuple[str, ...]


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    torch.manual_seed(0)
    backbone = iresnet((1, 1, 1, 1), (8, 16, 16, 32), embedding_dim=32).eval()
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model = GestaltModel(backbone, None).eval()
    card = default_card(
        name="tiny-metrics", architecture="iresnet[1,1,1,1]x[8,16,16,32]", embedding_dim=32
    )
    loaded = LoadedModel(model, card, "tiny-metrics-fingerprint")
    ens = Ensemble([loaded], flip=True, grey=False)
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (6, 112, 112, 3), dtype=np.uint8)
    labels = ["S:1"] * 3 + ["S:2"] * 3
    images = [GalleryImage(f"im{i}", f"p{i}", labels[i], None) for i in range(6)]
    syndromes = [Syndrome("S:1", "One"), Syndrome("S:2", "Two")]
    gallery = build_gallery(
        "tiny metrics", "1", images, syndromes, ens.embed, photos, ens.variants, ens.fingerprint
    )
    base = synthetic_face()
    faces = np.stack([base, base[:, ::-1], np.roll(base, 9, axis=0)]).copy()
    return Tiny(loaded, gallery, faces, ("S:1", "S:2", "S:1"))


@pytest.fixture()
def face() -> np.ndarray:
    return synthetic_face()
