"""One preprocess: without a card it is the iResNet input; normalize/denormalize invert."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmx.encode import (
    IRESNET_NORM,
    ModelCard,
    default_card,
    denormalize,
    input_norm,
    normalize,
    preprocess,
)


def test_no_card_means_the_iresnet_input() -> None:
    faces = np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    x = preprocess(faces)
    want = torch.from_numpy(faces.astype(np.float32)).permute(0, 3, 1, 2) / 127.5 - 1.0
    torch.testing.assert_close(x, want, rtol=0, atol=1e-6)
    card = default_card(name="t", architecture="iresnet50")
    assert torch.equal(
        preprocess(faces, card, flip=True, grey=True), preprocess(faces, flip=True, grey=True)
    )
    with pytest.raises(ValueError, match="112x112"):
        preprocess(faces[:, :100, :100])


def test_norm_is_written_once() -> None:
    assert IRESNET_NORM == ((0.5,) * 3, (0.5,) * 3)
    card = ModelCard(name="t", architecture="iresnet50")
    assert input_norm(None) == IRESNET_NORM == (card.mean, card.std)
    grey = default_card(name="g", architecture="facerecognet")
    assert input_norm(grey) == ((0.0,), (1.0,))
    x = torch.rand(2, 3, 4, 4)
    odd = default_card(name="o", architecture="iresnet50", mean=(0.1, 0.2, 0.3), std=(2, 3, 4))
    torch.testing.assert_close(denormalize(normalize(x, odd), odd), x)
    torch.testing.assert_close(normalize(x, odd)[:, 2], (x[:, 2] - 0.3) / 4)
