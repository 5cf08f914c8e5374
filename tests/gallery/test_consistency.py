"""Stored embeddings are of exactly the stored pixels (every codec); check_compatible; --verify."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from gmx.cli import main
from gmx.encode import Ensemble, load_model
from gmx.errors import GalleryError
from gmx.gallery import (
    CONSISTENT_COSINE,
    Gallery,
    build_gallery,
    check_compatible,
    encode_photos,
    load_gallery,
    save_gallery,
    store_photos,
    verify_embeddings,
)


@pytest.fixture(scope="module")
def setup(tiny_setup) -> tuple[Ensemble, Gallery]:
    ensemble = Ensemble([load_model(tiny_setup.model_path, device="cpu")], flip=True, grey=True)
    return ensemble, load_gallery(tiny_setup.gallery_path)


def _rebuild(ensemble: Ensemble, src: Gallery, embed_fn, codec: str, quality: int) -> Gallery:
    return build_gallery(
        src.name,
        src.version,
        src.images,
        src.syndromes,
        embed_fn,
        src.photos,  # type: ignore[arg-type]
        ensemble.variants,
        ensemble.fingerprint,
        photos_visible=True,
        photo_codec=codec,  # type: ignore[arg-type]
        photo_quality=quality,
        batch_size=4,
    )


@pytest.mark.parametrize(("codec", "quality"), [("webp", 60), ("webp", 92), ("png", 0), ("raw", 0)])
def test_every_codec_stores_the_pixels_that_were_embedded(
    tmp_path: Path, setup: tuple[Ensemble, Gallery], codec: str, quality: int
) -> None:
    ensemble, src = setup
    seen: list[np.ndarray] = []

    def spy(batch: np.ndarray) -> np.ndarray:
        seen.append(np.array(batch))
        return ensemble.embed(batch)

    g = _rebuild(ensemble, src, spy, codec, quality)
    assert np.array_equal(np.concatenate(seen), g.photos)  # embed_fn saw the stored pixels
    lossy = codec == "webp"
    assert np.array_equal(g.photos, src.photos) != lossy  # type: ignore[arg-type]
    back = load_gallery(save_gallery(g, tmp_path / "g.sqlite"))
    assert back.photo_codec == codec and np.array_equal(back.photos, g.photos)  # type: ignore[arg-type]
    check = verify_embeddings(back, ensemble.embed)
    assert check.indices == tuple(range(len(back))) and check.cosines.shape == (len(back), 4)
    assert check.consistent() and check.worst_cosine >= CONSISTENT_COSINE


def test_a_second_lossy_generation_is_detected(setup: tuple[Ensemble, Gallery]) -> None:
    """What the demo used to ship: embed one WebP round trip, store another encoding of it."""
    ensemble, src = setup
    first, _ = store_photos(src.photos, "webp", 60)  # type: ignore[arg-type]
    second = encode_photos(first, "webp", 60)
    stale = dataclasses.replace(
        src, embeddings=ensemble.embed(first), photos=None, encoded_photos=second
    )
    assert not np.array_equal(stale.photos, first)  # lossy WebP is not idempotent
    check = verify_embeddings(stale, ensemble.embed)
    assert not check.consistent() and check.worst_cosine < CONSISTENT_COSINE
    assert check.worst_image_id in {im.image_id for im in src.images}
    sampled = verify_embeddings(stale, ensemble.embed, sample=3, seed=1, variants=[0, 2])
    assert len(sampled.indices) == 3 and sampled.variants == (0, 2)
    assert sampled.indices == tuple(sorted(set(sampled.indices)))
    assert sampled.worst_cosine >= check.worst_cosine


def test_verify_refuses_bad_arguments(setup: tuple[Ensemble, Gallery]) -> None:
    ensemble, src = setup
    with pytest.raises(ValueError, match="sample"):
        verify_embeddings(src, ensemble.embed, sample=0)
    with pytest.raises(ValueError, match="variants"):
        verify_embeddings(src, ensemble.embed, variants=[4])
    with pytest.raises(GalleryError, match="no photos"):
        verify_embeddings(dataclasses.replace(src, photos=None), ensemble.embed)


def test_check_compatible_names_what_differs(setup: tuple[Ensemble, Gallery]) -> None:
    ensemble, src = setup
    check_compatible(ensemble, src)
    with pytest.raises(GalleryError, match="model fingerprint"):
        check_compatible(ensemble, dataclasses.replace(src, model_fingerprint="f" * 64))
    no_flip = Ensemble(ensemble.models, flip=False, grey=True).variants
    with pytest.raises(GalleryError, match="variants"):
        check_compatible(_Models(src.model_fingerprint, no_flip), src)


@dataclasses.dataclass(frozen=True)
class _Models:
    """Anything with a fingerprint and variants is checked (gmx.gallery.EmbeddingModels)."""

    fingerprint: str
    variants: tuple


def test_cli_info_verify(tmp_path: Path, tiny_setup, setup, capsys) -> None:
    ensemble, src = setup
    good = save_gallery(
        _rebuild(ensemble, src, ensemble.embed, "webp", 60), tmp_path / "good.sqlite"
    )
    first, _ = store_photos(src.photos, "webp", 60)  # type: ignore[arg-type]
    stale = dataclasses.replace(
        src,
        embeddings=ensemble.embed(first),
        photos=None,
        encoded_photos=encode_photos(first, "webp", 60),
    )
    bad = save_gallery(stale, tmp_path / "bad.sqlite")
    models = ["--models", str(tiny_setup.model_path)]
    capsys.readouterr()
    assert main(["gallery", "info", str(good), "--verify", "--sample", "0", *models]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verify"]["consistent"] and out["verify"]["images_checked"] == len(src)
    assert out["verify"]["worst_cosine"] >= CONSISTENT_COSINE and out["photo_codec"] == "webp"
    assert main(["gallery", "info", str(bad), "--verify", "--sample", "4", *models]) == 1
    out = json.loads(capsys.readouterr().out)
    assert not out["verify"]["consistent"] and out["verify"]["images_checked"] == 4
    assert out["verify"]["worst_cosine"] < CONSISTENT_COSINE
    assert main(["gallery", "info", str(bad)]) == 0  # without --verify: metadata only
    assert "verify" not in json.loads(capsys.readouterr().out)
