from __future__ import annotations

import numpy as np
import pytest

from gmx.errors import GalleryError
from gmx.gallery import Gallery, GalleryImage, InvalidGalleryError, Syndrome, split_members
from gmx.variants import Variant

from ._gallery_fixtures import EMBEDDINGS, IMAGES, SYNDROMES, make_tiny


def test_gallery_basics(tiny: Gallery) -> None:
    assert (len(tiny), tiny.n_variants, tiny.embedding_dim) == (6, 2, 2)
    assert tiny.index_of("b2") == 3
    assert tiny.images_of("B").tolist() == [2, 3]
    assert tiny.subject_ids == ("s1", "s2", "s3", "s4", "s5")
    assert list(tiny.syndromes) == ["A", "B", "C"]
    assert "tiny" in repr(tiny)
    with pytest.raises(KeyError, match="zz"):
        tiny.index_of("zz")


def test_arrays_read_only_and_inputs_not_frozen() -> None:
    emb = EMBEDDINGS.copy()
    g = make_tiny(embeddings=emb)
    assert not g.embeddings.flags.writeable
    assert emb.flags.writeable  # the caller's array is not frozen in place ...
    emb[0, 0, 0] = 99.0  # ... and changing it does not change the gallery
    assert g.embeddings[0, 0, 0] == 1.0
    with pytest.raises(TypeError):
        g.syndromes["X"] = Syndrome("X", "x")  # type: ignore[index]
    with pytest.raises(AttributeError):
        g.name = "other"  # type: ignore[misc]


def test_float64_embeddings_become_float32() -> None:
    g = make_tiny(embeddings=EMBEDDINGS.astype(np.float64))
    assert g.embeddings.dtype == np.float32


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"embeddings": EMBEDDINGS[:5]}, "6 images but embeddings for 5"),
        ({"embeddings": EMBEDDINGS[:, :1]}, "2 variants"),
        ({"embeddings": EMBEDDINGS[:, 0]}, r"\(N, V, D\)"),
        ({"images": (*IMAGES[:5], GalleryImage("a1", "s9", "A"))}, "duplicate image_id 'a1'"),
        ({"images": (*IMAGES[:5], GalleryImage("x1", "s9", "Q"))}, "syndrome_id 'Q'"),
        ({"syndromes": (*SYNDROMES, SYNDROMES[0])}, "duplicate syndrome_id 'A'"),
        ({"syndromes": {"Z": SYNDROMES[0]}}, "key 'Z' differs"),
        ({"variants": (Variant(0), Variant(0))}, "variants repeat"),
        ({"model_fingerprint": ""}, "model_fingerprint"),
        ({"photos": np.zeros((6, 100, 100, 3), np.uint8)}, r"\(6, 112, 112, 3\) uint8"),
        ({"photos_visible": True}, "no photos"),
        ({"extras": {"m": np.zeros(5)}}, "first axis N=6"),
        ({"extras": {"bad name": np.zeros(6)}}, "extra name"),
        (
            {"embeddings": np.where(EMBEDDINGS == 3, np.nan, EMBEDDINGS)},
            "NaN/inf, first at image 'b1'",
        ),
    ],
)
def test_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidGalleryError, match=message) as info:
        make_tiny(**changes)
    assert isinstance(info.value, GalleryError) and isinstance(info.value, ValueError)


def test_record_validation() -> None:
    with pytest.raises(ValueError, match="image_id"):
        GalleryImage("", "s", "A")
    with pytest.raises(ValueError, match="genes"):
        Syndrome("A", "a", None, "GENE1")  # type: ignore[arg-type]
    assert Syndrome("A", "a", None, ["G"]).genes == ("G",)  # type: ignore[arg-type]


def test_subset_and_split_members(tiny_with_photos: Gallery) -> None:
    sub = tiny_with_photos.subset([5, 2])
    assert [im.image_id for im in sub.images] == ["c2", "b1"]
    np.testing.assert_array_equal(sub.embeddings, tiny_with_photos.embeddings[[5, 2]])
    np.testing.assert_array_equal(sub.photos, tiny_with_photos.photos[[5, 2]])
    np.testing.assert_array_equal(sub.extras["masks"], tiny_with_photos.extras["masks"][[5, 2]])
    assert sub.model_fingerprint == tiny_with_photos.model_fingerprint
    # None = every split; "1,2" = splits 1 and 2
    assert split_members(tiny_with_photos, 2).tolist() == [0, 1, 3, 4, 5]
    assert split_members(tiny_with_photos, 0).tolist() == [0, 1, 2, 4]
    assert tiny_with_photos.images[3].splits == frozenset({"1", "2"})
    with pytest.raises(ValueError, match="out of range"):
        tiny_with_photos.subset([6])
