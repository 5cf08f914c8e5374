"""Gallery activations: computed, stored in extras or a sidecar, served lazily; float16 accuracy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import gmx.similarity.activations as acts_mod
from gmx.errors import GalleryError
from gmx.gallery import load_gallery, rank, save_gallery
from gmx.similarity import (
    ActivationStore,
    PairExplainer,
    activation_key,
    gallery_activations,
    load_activations,
    query_activations,
    save_activations,
    with_activations,
)
from gmx.variants import Variant


def test_activation_keys_name_every_variant():
    assert activation_key(Variant(0)) == "simmaps.m0"
    assert activation_key(Variant(2, flip=True, grey=True)) == "simmaps.m2.flip.grey"


def test_gallery_activations_match_a_query_forward_pass(tta_setup):
    ens, gallery = tta_setup.ensemble, tta_setup.gallery
    acts = gallery_activations(ens, gallery, dtype=np.float32, indices=[1, 4])
    assert sorted(acts) == sorted(activation_key(v) for v in ens.variants)
    photo_q = query_activations(ens, np.asarray(gallery.photos[4]))
    for vi, v in enumerate(ens.variants):
        arr = acts[activation_key(v)]
        assert arr.shape == (2, 32, 7, 7) and arr.dtype == np.float32
        np.testing.assert_allclose(arr[1], photo_q.maps[vi], rtol=1e-5, atol=1e-5)
    # the head applied to a variant's maps is that variant's gallery embedding
    np.testing.assert_allclose(photo_q.embeddings, gallery.embeddings[4], rtol=1e-5, atol=1e-5)


def test_progress_and_argument_checks(tta_setup):
    calls = []
    gallery_activations(
        tta_setup.ensemble,
        tta_setup.gallery,
        variants=[0],
        batch_size=4,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(0, 6), (4, 6), (6, 6)]
    with pytest.raises(ValueError, match="dtype"):
        gallery_activations(tta_setup.ensemble, tta_setup.gallery, dtype=np.int8)
    with pytest.raises(ValueError, match="out of range"):
        gallery_activations(tta_setup.ensemble, tta_setup.gallery, indices=[6])


def test_stored_extras_survive_save_and_load_and_need_no_photos(tta_setup, tmp_path):
    ens, gallery = tta_setup.ensemble, tta_setup.gallery
    acts = gallery_activations(ens, gallery)  # float16
    stored = with_activations(gallery, acts)
    assert set(gallery.extras) == set()  # the input gallery is unchanged
    path = save_gallery(stored, tmp_path / "g.sqlite")
    loaded = load_gallery(path, expected_fingerprint=ens.fingerprint)
    no_photos = dataclasses.replace(loaded, photos=None, photos_visible=False)
    store = ActivationStore(ens, no_photos)
    assert store.fully_stored and store.source(0) == "gallery"
    maps = store.maps([3, 0])
    assert maps[0].dtype == np.float32 and maps[0].shape == (2, 32, 7, 7)
    np.testing.assert_array_equal(maps[2][1], acts[activation_key(ens.variants[2])][0])
    # float16 maps: the decomposition is exact for them and within 1e-3 of the ranking
    explainer = PairExplainer(ens, no_photos, store=store)
    q = explainer.query(tta_setup.face)
    ranking = rank(q.embeddings, no_photos)
    for d in explainer.decompose(q, range(6)):
        assert d.query_map().sum() + d.query_constant() == pytest.approx(d.cosine, abs=1e-9)
        assert abs(d.cosine - (1 - ranking.image_distances[d.image_index])) < 1e-3


def test_lazy_maps_are_computed_only_for_the_images_asked_and_cached(tta_setup, monkeypatch):
    ens, gallery = tta_setup.ensemble, tta_setup.gallery
    store = ActivationStore(ens, gallery, cache_images=2)
    assert not store.fully_stored and store.source(1) == "computed"
    seen: list[int] = []
    real = acts_mod._variant_maps

    def spy(ensemble, images, gm, vids, batch, want_embeddings=False):
        seen.append(len(images))
        return real(ensemble, images, gm, vids, batch, want_embeddings)

    monkeypatch.setattr(acts_mod, "_variant_maps", spy)
    first = store.maps([5, 2])
    assert seen == [2]
    again = store.maps([2, 5])
    assert seen == [2]  # cached
    np.testing.assert_array_equal(first[3][0], again[3][1])
    full = gallery_activations(ens, gallery, dtype=np.float32, indices=[5])
    np.testing.assert_allclose(first[1][0], full[activation_key(ens.variants[1])][0], atol=1e-5)
    store.maps([0])  # evicts 5 (LRU of 2 images)
    store.maps([5])
    assert seen == [2, 1, 1]


def test_missing_maps_without_photos_is_a_clear_error(tta_setup):
    ens = tta_setup.ensemble
    bare = dataclasses.replace(tta_setup.gallery, photos=None, photos_visible=False)
    with pytest.raises(GalleryError, match="neither photos nor feature maps"):
        ActivationStore(ens, bare).maps([0])
    with pytest.raises(GalleryError, match="stores no photos"):
        gallery_activations(ens, bare)


def test_sidecar_roundtrip_and_refusals(tta_setup, tmp_path):
    ens, gallery = tta_setup.ensemble, tta_setup.gallery
    acts = gallery_activations(ens, gallery, variants=[0, 2])
    path = save_activations(tmp_path / "g.simmaps.npz", gallery, acts)
    back = load_activations(path, gallery)
    assert sorted(back) == sorted(acts)
    store = ActivationStore(ens, gallery, sidecar=back)
    assert [store.source(v) for v in range(4)] == ["sidecar", "computed", "sidecar", "computed"]
    with pytest.raises(GalleryError, match="other models"):
        load_activations(path, _other(gallery))
    with pytest.raises(GalleryError, match="image list"):
        load_activations(path, gallery.subset([1, 0, 2, 3, 4, 5]))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(GalleryError, match="cannot read"):
        load_activations(tmp_path / "junk.npz", gallery)
    with pytest.raises(ValueError, match="activation key"):
        with_activations(gallery, {"masks": np.zeros((6, 2))})


def _other(gallery):
    return dataclasses.replace(gallery, model_fingerprint="0" * 64)
