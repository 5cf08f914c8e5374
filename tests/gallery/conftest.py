"""Fixtures of the gallery tests (data in ``_gallery_fixtures.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.gallery import Gallery

from ._gallery_fixtures import make_tiny


@pytest.fixture
def tiny() -> Gallery:
    return make_tiny()


@pytest.fixture
def tiny_with_photos() -> Gallery:
    rng = np.random.default_rng(7)
    photos = rng.integers(0, 256, size=(6, 112, 112, 3), dtype=np.uint8)
    masks = rng.random((6, 112, 112)) > 0.5
    act = rng.standard_normal((6, 4, 7, 7)).astype(np.float32)
    return make_tiny(photos=photos, photos_visible=True, extras={"masks": masks, "act.layer4": act})
