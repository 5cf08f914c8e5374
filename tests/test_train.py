from __future__ import annotations

import numpy as np
import torch

from gmx.encode import preprocess
from gmx.encode.iresnet import iresnet
from gmx.train import (
    TrainConfig,
    augment,
    class_weights,
    macro_topk_from_logits,
    train_classifier,
)


def test_class_weights_inverse_frequency_mean_one():
    w = class_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    # counts 3, 1, 2, 0 -> 1/3, 1, 1/2 rescaled to mean 1 over present classes; absent class 0
    expected = np.array([1 / 3, 1.0, 0.5]) * 3 / (1 / 3 + 1 + 0.5)
    np.testing.assert_allclose(w[:3], expected, rtol=1e-6)
    assert w[3] == 0


def test_augment_is_seeded_and_keeps_range_and_shape():
    x = preprocess(np.random.default_rng(0).integers(0, 256, (4, 112, 112, 3), dtype=np.uint8))
    before = x.clone()
    cfg = TrainConfig()
    a = augment(x, cfg, torch.Generator().manual_seed(1))
    b = augment(x, cfg, torch.Generator().manual_seed(1))
    c = augment(x, cfg, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(x, before)


def test_macro_topk_from_logits_hand_case():
    logits = np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    labels = np.array([0, 0, 1, 2])
    acc = macro_topk_from_logits(logits, labels, ks=(1, 2))
    # class 0: 1/2 at top-1, 1/2 at top-2 (second sample ranks 0 last); class 1: 0 then 1; class 2: 1, 1
    assert acc[1] == (0.5 + 0 + 1) / 3
    assert acc[2] == (0.5 + 1 + 1) / 3


def test_training_learns_an_easy_task_and_is_reproducible():
    rng = np.random.default_rng(0)
    n = 48
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, 112, 112, 3), dtype=np.uint8)
    images[labels == 1, 30:60, 30:80] = 230  # class 1 has a bright patch
    cfg = TrainConfig(
        layers=(1, 1, 1, 1),
        widths=(4, 8, 8, 16),
        embedding_dim=16,
        epochs=10,
        batch_size=16,
        lr=5e-3,
    )

    def build(c):
        return iresnet(c.layers, c.widths, c.embedding_dim)

    r1 = train_classifier(images, labels, 2, cfg, build_backbone=build, val=(images, labels))
    r2 = train_classifier(images, labels, 2, cfg, build_backbone=build)
    assert r1.history[-1].val_accuracy >= 0.9
    for p1, p2 in zip(r1.backbone.parameters(), r2.backbone.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_training_restores_the_thread_count():
    before = torch.get_num_threads()
    images = np.zeros((4, 112, 112, 3), np.uint8)
    cfg = TrainConfig(
        layers=(1, 1, 1, 1),
        widths=(4, 4, 4, 4),
        embedding_dim=8,
        epochs=1,
        batch_size=4,
        threads=before + 1,
    )
    train_classifier(
        images,
        np.array([0, 1, 0, 1]),
        2,
        cfg,
        build_backbone=lambda c: iresnet(c.layers, c.widths, c.embedding_dim),
    )
    assert torch.get_num_threads() == before
