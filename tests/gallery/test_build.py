from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data

from gmx.gallery import build_gallery, load_gallery, rank, save_gallery
from gmx.variants import Variant

from ._gallery_fixtures import IMAGES, SYNDROMES

VARIANTS = (Variant(0, False, False), Variant(0, True, False))


def colour_embed(batch: np.ndarray) -> np.ndarray:
    """A model-free embedding: mean RGB of the left and right halves, plain and mirrored."""
    assert not batch.flags.writeable
    x = batch.astype(np.float32)
    left, right = x[:, :, :56].mean(axis=(1, 2)), x[:, :, 56:].mean(axis=(1, 2))
    plain = np.concatenate([left, right], axis=1)
    flipped = np.concatenate([right, left], axis=1)
    return np.stack([plain, flipped], axis=1)


def photos() -> np.ndarray:
    face = data.astronaut()[0:224, 140:364]  # a real face, cropped square
    small = face[::2, ::2]
    rng = np.random.default_rng(0)
    return np.stack(
        [
            np.clip(small.astype(int) + rng.integers(-40, 40, size=3), 0, 255).astype(np.uint8)
            for _ in range(6)
        ]
    )


def test_build_batches_and_progress(tmp_path: Path) -> None:
    p = photos()
    before = p.copy()
    calls: list[tuple[int, int]] = []
    g = build_gallery(
        "built",
        "1",
        IMAGES,
        SYNDROMES,
        colour_embed,
        p,
        VARIANTS,
        "fp",
        batch_size=4,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(0, 6), (4, 6), (6, 6)]
    np.testing.assert_array_equal(p, before)
    assert p.flags.writeable
    np.testing.assert_allclose(g.embeddings, colour_embed(_ro(p)), rtol=1e-6)
    assert g.photos is not None and g.photos.tobytes() == p.tobytes()
    # a photo ranks its own gallery entry first
    r = rank(g.embeddings[3], g)
    assert r.image_order[0] == 3 and r.image_distances[3] == pytest.approx(0.0, abs=1e-6)
    save_gallery(g, tmp_path / "b.sqlite")
    assert load_gallery(tmp_path / "b.sqlite").embeddings.tobytes() == g.embeddings.tobytes()


def _ro(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


def test_build_without_photos_kept() -> None:
    g = build_gallery(
        "b",
        "1",
        IMAGES,
        SYNDROMES,
        colour_embed,
        photos(),
        VARIANTS,
        "fp",
        keep_photos=False,
        photos_visible=True,
    )
    assert g.photos is None and not g.photos_visible


def test_embed_fn_checked() -> None:
    with pytest.raises(ValueError, match=r"returned shape \(2, 6\)"):
        build_gallery(
            "b",
            "1",
            IMAGES,
            SYNDROMES,
            lambda b: np.zeros((len(b), 6)),
            photos(),
            VARIANTS,
            "fp",
            batch_size=2,
        )
    with pytest.raises(ValueError, match="NaN"):
        build_gallery(
            "b",
            "1",
            IMAGES,
            SYNDROMES,
            lambda b: np.full((len(b), 2, 3), np.nan),
            photos(),
            VARIANTS,
            "fp",
        )
    with pytest.raises(ValueError, match="uint8"):
        build_gallery(
            "b", "1", IMAGES, SYNDROMES, colour_embed, photos().astype(float), VARIANTS, "fp"
        )
