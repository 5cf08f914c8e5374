"""A tiny deterministic setup: random-init mini iResNet with a classifier, 12 synthetic faces of 3
syndromes (with masks) embedded with flip+grey variants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from gmx.encode import Ensemble, GestaltModel, LoadedModel, default_card, iresnet
from gmx.gallery import Gallery, GalleryImage, Syndrome, build_gallery


@dataclass(frozen=True)
class Tiny:
    model: LoadedModel
    gallery: Gallery


@pytest.fixture(scope="module")
def tiny() -> Tiny:
    torch.manual_seed(0)
    backbone = iresnet((1, 1, 1, 1), (8, 16, 16, 32), embedding_dim=32).eval()
    # Non-trivial BatchNorm statistics so rows would interact if BN were in training mode.
    with torch.no_grad():
        for m in backbone.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model = GestaltModel(backbone, torch.nn.Linear(32, 2)).eval()
    card = default_card(
        name="tiny-agg",
        architecture="iresnet[1,1,1,1]x[8,16,16,32]",
        embedding_dim=32,
        classes=("S:1", "S:2"),
    )
    loaded = LoadedModel(model, card, "tiny-agg-fingerprint")
    ens = Ensemble([loaded], flip=True, grey=True)
    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (12, 112, 112, 3), dtype=np.uint8)
    masks = np.zeros((12, 112, 112), bool)
    masks[:4, 30:60, 20:90] = True
    masks[4:8, 70:100, 30:80] = True
    # S:1 four subjects, S:2 two subjects, S:3 one subject (no similarity target).
    subjects = ["a", "b", "c", "d", "e", "e", "f", "f", "g", "g", "g", "g"]
    labels = ["S:1"] * 4 + ["S:2"] * 4 + ["S:3"] * 4
    images = [GalleryImage(f"im{i}", subjects[i], labels[i], None) for i in range(12)]
    syndromes = [Syndrome("S:1", "One"), Syndrome("S:2", "Two"), Syndrome("S:3", "Three")]
    gallery = build_gallery(
        "tiny agg",
        "1",
        images,
        syndromes,
        ens.embed,
        photos,
        ens.variants,
        ens.fingerprint,
        extras={"gt_mask": masks},
    )
    return Tiny(loaded, gallery)
