"""PairExplainer: every pair method's contract, the nearest patients of a syndrome, availability."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gmx.errors import GalleryError
from gmx.gallery import rank
from gmx.similarity import (
    PAIR_METHODS,
    PairExplainer,
    gallery_activations,
    nearest_patients,
    with_activations,
)

from .conftest import make_gallery, noisy_faces


@pytest.fixture(scope="module")
def explainer(tta_setup) -> PairExplainer:
    return PairExplainer(tta_setup.ensemble, tta_setup.gallery)


@pytest.mark.parametrize("method", list(PAIR_METHODS))
def test_every_method_gives_finite_deterministic_signed_pair_maps(explainer, tta_setup, method):
    face = tta_setup.face.copy()
    face.setflags(write=False)
    q = explainer.query(face)
    first = explainer.explain(face, [4, 1], method=method, query=q)
    again = explainer.explain(face, [4, 1], method=method)
    assert [p.image_index for p in first] == [4, 1]
    ranking = rank(q.embeddings, tta_setup.gallery)
    for p, r in zip(first, again, strict=True):
        assert p.method == method and p.display_name == PAIR_METHODS[method] and p.signed
        assert p.query.shape == p.gallery.shape == (112, 112)
        assert np.isfinite(p.query).all() and np.isfinite(p.gallery).all()
        assert np.abs(p.query).max() > 0 and np.abs(p.gallery).max() > 0
        assert not p.query.flags.writeable and not p.gallery_raw.flags.writeable
        np.testing.assert_allclose(p.query, r.query, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(p.gallery, r.gallery, rtol=1e-5, atol=1e-7)
        assert p.score == pytest.approx(1 - ranking.image_distances[p.image_index], abs=1e-5)
        assert p.elapsed_s >= 0


def test_exact_pair_maps_are_complete_in_both_splits(explainer, tta_setup):
    for split in ("complete", "shared"):
        (p,) = explainer.explain(tta_setup.face, [2], split=split)
        assert p.query_raw.shape == (7, 7) and p.decomposition is not None and p.split == split
        if split == "complete":
            assert p.query_raw.sum() + p.query_constant == pytest.approx(p.score, abs=1e-5)
            assert p.gallery_raw.sum() + p.gallery_constant == pytest.approx(p.score, abs=1e-5)
        else:
            total = p.query_raw.sum() + p.gallery_raw.sum() + p.query_constant
            assert total == pytest.approx(p.score, abs=1e-5)


def test_occlusion_pair_uses_the_given_window(explainer, tta_setup):
    (p,) = explainer.explain(
        tta_setup.face, [0], method="occlusion", params={"window": 28, "stride": 28}
    )
    assert p.query_raw.shape == (112, 112)
    assert len(np.unique(p.query_raw[:28, :28])) == 1  # one window, one value
    with pytest.raises(ValueError):
        explainer.explain(tta_setup.face, [0], params={"window": 8})
    with pytest.raises(ValueError, match="unknown pair method"):
        explainer.explain(tta_setup.face, [0], method="lime")


def test_a_gallery_without_photos_keeps_exact_and_cams_but_not_occlusion(tta_setup):
    ens, gallery = tta_setup.ensemble, tta_setup.gallery
    stored = with_activations(gallery, gallery_activations(ens, gallery, dtype=np.float32))
    bare = dataclasses.replace(stored, photos=None, photos_visible=False)
    with_photos = PairExplainer(ens, gallery)
    without = PairExplainer(ens, bare)
    assert without.unavailable("occlusion") and without.unavailable("exact") is None
    with pytest.raises(GalleryError, match="occlusion"):
        without.explain(tta_setup.face, [0], method="occlusion")
    (cam,) = without.explain(tta_setup.face, [3], method="gradcam")
    (ref,) = with_photos.explain(tta_setup.face, [3], method="gradcam")
    assert cam.backend == "activations" and ref.backend == "explain"
    np.testing.assert_allclose(cam.query_raw, ref.query_raw, rtol=1e-6)
    # gallery side: closed form on stored maps vs back-propagation through the photo
    np.testing.assert_allclose(
        cam.gallery_raw, ref.gallery_raw, atol=1e-4 * np.abs(ref.gallery_raw).max()
    )
    (exact,) = without.explain(tta_setup.face, [3])
    (exact_ref,) = with_photos.explain(tta_setup.face, [3])
    np.testing.assert_allclose(exact.gallery_raw, exact_ref.gallery_raw, rtol=1e-4, atol=1e-7)


def test_nearest_patients_of_a_syndrome(tta_setup):
    ens = tta_setup.ensemble
    subjects = ["p1", "p1", "p2", "p3", "q1", "q2", "p4"]
    syndromes = ["A", "A", "A", "A", "B", "B", "A"]
    gallery = make_gallery(
        ens, noisy_faces(tta_setup.face, 7, seed=5), subjects=subjects, syndromes=syndromes
    )
    ranking = rank(ens.embed(tta_setup.face[None])[0], gallery)
    got = nearest_patients(ranking, gallery, "A", k=3)
    assert [p.rank for p in got] == [1, 2, 3]
    assert len({p.subject_id for p in got}) == 3 and all(p.syndrome_id == "A" for p in got)
    assert [p.distance for p in got] == sorted(p.distance for p in got)
    a_images = [i for i in range(7) if syndromes[i] == "A"]
    best = min(a_images, key=lambda i: ranking.image_distances[i])
    assert got[0].image_index == best
    # one entry per patient: p1's farther photo never appears
    p1 = [i for i in (0, 1)]
    far = max(p1, key=lambda i: ranking.image_distances[i])
    assert far not in [p.image_index for p in nearest_patients(ranking, gallery, "A", k=10)]
    assert len(nearest_patients(ranking, gallery, "A", k=10)) == 4
    with pytest.raises(ValueError):
        nearest_patients(ranking, gallery, "Z")
    with pytest.raises(ValueError):
        nearest_patients(ranking, gallery, "A", k=0)


def test_query_from_another_ensemble_is_refused(explainer, flip_setup):
    other = PairExplainer(flip_setup.ensemble, flip_setup.gallery).query(flip_setup.face)
    with pytest.raises(ValueError, match="variants"):
        explainer.decompose(other, [0])
