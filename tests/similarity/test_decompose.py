"""Exact decomposition: hand-computed values, completeness on real models, flip handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gmx.encode import Ensemble, GestaltModel, LoadedModel, default_card, iresnet50, load_model
from gmx.gallery import rank
from gmx.similarity import (
    AffineHead,
    PairExplainer,
    QueryActivations,
    cell_label,
    decompose_pairs,
    fold_head,
    mirror_permutation,
    query_activations,
)
from gmx.variants import Variant

from .conftest import DEMO_FACES, DEMO_MODEL, astronaut_face, demo_faces, make_gallery, randomise

TOL = 1e-5


def _toy(flip: bool = False):
    """Grid 1x2, D=2, C=1: A_0 = e_1, A_1 = e_2, b = (1, 1); query m = (2, 1), gallery m = (1, 3)."""
    weight = torch.tensor([[[1.0], [0.0]], [[0.0], [1.0]]])
    head = AffineHead(weight, torch.tensor([1.0, 1.0]), (1, 2))
    query = QueryActivations(
        maps=(np.array([[[2.0, 1.0]]], np.float32),),
        embeddings=np.array([[3.0, 2.0]], np.float32),
        variants=(Variant(0, flip=flip),),
    )
    gallery = [np.array([[[[1.0, 3.0]]]], np.float32)]
    return decompose_pairs(query, gallery, [head], image_indices=[7])[0]


def test_hand_computed_toy_pair():
    # u = (2,0), (0,1); v = (1,0), (0,3); e_q = (3,2), e_p = (2,4); n = sqrt(13 * 20)
    d = _toy()
    n = np.sqrt(13 * 20)
    assert d.image_index == 7
    np.testing.assert_allclose(d.correspondence, np.array([[2, 0], [0, 3]]) / n, atol=1e-12)
    np.testing.assert_allclose(d.query_bias, np.array([2, 1]) / n, atol=1e-12)
    np.testing.assert_allclose(d.gallery_bias, np.array([1, 3]) / n, atol=1e-12)
    assert d.bias_bias == pytest.approx(2 / n)
    assert d.cosine == pytest.approx(14 / n)
    np.testing.assert_allclose(d.query_map(), [[4 / n, 4 / n]], atol=1e-12)
    assert d.query_constant() == pytest.approx(6 / n)
    np.testing.assert_allclose(d.gallery_map(), [[3 / n, 6 / n]], atol=1e-12)
    assert d.gallery_constant() == pytest.approx(5 / n)
    np.testing.assert_allclose(d.query_map("shared"), [[3 / n, 2.5 / n]], atol=1e-12)
    np.testing.assert_allclose(d.gallery_map("shared"), [[2 / n, 4.5 / n]], atol=1e-12)
    assert d.query_constant("shared") == d.gallery_constant("shared") == pytest.approx(2 / n)


def test_flipped_variant_is_mirrored_on_both_axes():
    d = _toy(flip=True)
    n = np.sqrt(13 * 20)
    np.testing.assert_allclose(d.correspondence, np.array([[3, 0], [0, 2]]) / n, atol=1e-12)
    np.testing.assert_allclose(d.query_bias, np.array([1, 2]) / n, atol=1e-12)
    np.testing.assert_allclose(d.gallery_bias, np.array([3, 1]) / n, atol=1e-12)
    assert d.cosine == pytest.approx(14 / n)


def test_mirror_permutation_and_cell_labels():
    perm = mirror_permutation((7, 7))
    assert perm[0] == 6 and perm[6] == 0 and perm[3] == 3 and perm[7] == 13 and perm[48] == 42
    assert np.array_equal(perm[perm], np.arange(49))
    assert cell_label(0) == "r1 c1" and cell_label(48) == "r7 c7" and cell_label(10) == "r2 c4"
    with pytest.raises(ValueError):
        cell_label(49)


def _check_complete(d, want_cosine: float) -> None:
    assert d.cosine == pytest.approx(want_cosine, abs=TOL)
    for split in ("complete", "shared"):
        q, p = d.query_map(split), d.gallery_map(split)
        assert q.shape == p.shape == d.grid
        if split == "complete":
            assert q.sum() + d.query_constant(split) == pytest.approx(d.cosine, abs=1e-9)
            assert p.sum() + d.gallery_constant(split) == pytest.approx(d.cosine, abs=1e-9)
        else:
            assert q.sum() + p.sum() + d.bias_bias == pytest.approx(d.cosine, abs=1e-9)
    total = d.correspondence.sum() + d.query_bias.sum() + d.gallery_bias.sum() + d.bias_bias
    assert total == pytest.approx(d.cosine, abs=1e-9)
    # per-variant maps average to the map; the row of a cell plus its bias term is its map value
    np.testing.assert_allclose(d.per_variant_query.mean(0), d.query_map(), atol=1e-12)
    np.testing.assert_allclose(d.per_variant_gallery.mean(0), d.gallery_map(), atol=1e-12)
    g = 24
    assert d.matches(g).sum() + d.query_bias[g] == pytest.approx(d.query_map().ravel()[g])
    assert d.matched_by(g).sum() + d.gallery_bias[g] == pytest.approx(d.gallery_map().ravel()[g])


@pytest.fixture(scope="module")
def r50() -> LoadedModel:
    torch.manual_seed(0)
    backbone = randomise(iresnet50(), 0)
    card = default_card(name="r50-random", architecture="iresnet50")
    return LoadedModel(GestaltModel(backbone).eval(), card, "random-r50")


def test_completeness_on_random_iresnet50_single_model(r50: LoadedModel):
    """512x7x7 maps; cells + constant = cosine of the model's own forward embeddings (1e-5)."""
    ensemble = Ensemble([r50], flip=False, grey=False)
    face = astronaut_face()
    others = np.stack([face[:, ::-1], np.roll(face, 9, axis=0)]).copy()
    query = query_activations(ensemble, face)
    maps = [np.stack([query_activations(ensemble, o).maps[0] for o in others])]
    pairs = decompose_pairs(query, maps, [fold_head(r50.model)])
    emb_q = ensemble.embed(face[None])[0, 0]
    emb_p = ensemble.embed(others)[:, 0]
    for d, e_p in zip(pairs, emb_p, strict=True):
        want = float(np.dot(emb_q, e_p) / (np.linalg.norm(emb_q) * np.linalg.norm(e_p)))
        _check_complete(d, want)
        assert d.correspondence.shape == (49, 49)


def test_completeness_on_random_iresnet50_tta_matches_the_ranking(r50: LoadedModel):
    ensemble = Ensemble([r50], flip=True, grey=True)
    face = astronaut_face()
    photos = np.stack([np.roll(face, s, axis=1) for s in (0, 5, -7)])
    gallery = make_gallery(ensemble, photos[:, :, ::-1].copy())
    explainer = PairExplainer(ensemble, gallery)
    query = explainer.query(face)
    ranking = rank(query.embeddings, gallery)
    for d in explainer.decompose(query, range(len(gallery))):
        per_variant = 1.0 - ranking.per_variant_distances[:, d.image_index]
        np.testing.assert_allclose(d.per_variant_cosine, per_variant, atol=TOL)
        _check_complete(d, 1.0 - ranking.image_distances[d.image_index])


@pytest.mark.skipif(not (DEMO_MODEL.is_file() and DEMO_FACES.is_file()), reason="demo files absent")
def test_completeness_on_the_demo_model_and_demo_faces():
    model = load_model(DEMO_MODEL, device="cpu")
    ensemble = Ensemble([model], flip=True, grey=True)
    faces = demo_faces(5)
    gallery = make_gallery(ensemble, faces[1:])
    explainer = PairExplainer(ensemble, gallery)
    query = explainer.query(faces[0])
    ranking = rank(query.embeddings, gallery)
    single = decompose_pairs(
        query, explainer.store.maps([0, 1, 2, 3]), explainer.variant_heads, variants=[0]
    )
    for d, s in zip(explainer.decompose(query, [0, 1, 2, 3]), single, strict=True):
        np.testing.assert_allclose(
            d.per_variant_cosine, 1.0 - ranking.per_variant_distances[:, d.image_index], atol=TOL
        )
        _check_complete(d, 1.0 - ranking.image_distances[d.image_index])
        _check_complete(s, 1.0 - ranking.per_variant_distances[0, d.image_index])


def test_flip_variant_equals_the_mirrored_plain_decomposition_of_mirrored_faces(flip_setup):
    """Variant 'flip' of (X, P) is variant 'plain' of (mirror X, mirror P), with cells mirrored."""
    ens, gallery, face = flip_setup.ensemble, flip_setup.gallery, flip_setup.face
    explainer = PairExplainer(ens, gallery)
    q = explainer.query(face)
    flipped = explainer.decompose(q, [2], variants=[1])[0]
    mirrored_face = face[:, ::-1].copy()
    mirrored_photo = np.asarray(gallery.photos[2])[:, ::-1].copy()
    qm = explainer.query(mirrored_face)
    pm = query_activations(ens, mirrored_photo)
    plain = decompose_pairs(
        qm, [pm.maps[0][None], pm.maps[1][None]], explainer.variant_heads, variants=[0]
    )[0]
    assert flipped.cosine == pytest.approx(plain.cosine, abs=1e-6)
    np.testing.assert_allclose(flipped.query_map(), plain.query_map()[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(flipped.gallery_map(), plain.gallery_map()[:, ::-1], atol=1e-6)
    perm = mirror_permutation((7, 7))
    np.testing.assert_allclose(
        flipped.correspondence, plain.correspondence[perm][:, perm], atol=1e-6
    )


def test_decompose_never_mutates_its_inputs(tta_setup):
    ens, gallery = tta_setup.ensemble, tta_setup.gallery
    explainer = PairExplainer(ens, gallery)
    q = explainer.query(tta_setup.face)
    maps = [m.copy() for m in explainer.store.maps([0, 1])]
    before = [m.copy() for m in maps]
    decompose_pairs(q, maps, explainer.variant_heads)
    assert all(
        np.array_equal(a, b) and a.flags.writeable for a, b in zip(maps, before, strict=True)
    )
    assert all(not m.flags.writeable for m in q.maps)


def test_decompose_checks_its_inputs(tta_setup):
    explainer = PairExplainer(tta_setup.ensemble, tta_setup.gallery)
    q = explainer.query(tta_setup.face)
    maps = explainer.store.maps([0])
    with pytest.raises(ValueError, match="one head per variant"):
        decompose_pairs(q, maps[:1], explainer.variant_heads)
    with pytest.raises(ValueError, match="subset"):
        decompose_pairs(q, maps, explainer.variant_heads, variants=[9])
    with pytest.raises(ValueError, match="do not fit"):
        decompose_pairs(q, [m[:, :3] for m in maps], explainer.variant_heads)
    d = explainer.decompose(q, [0])[0]
    with pytest.raises(ValueError, match="split"):
        d.query_map("half")
    with pytest.raises(ValueError, match="cell"):
        d.matches(49)
