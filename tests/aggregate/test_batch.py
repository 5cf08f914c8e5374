"""Batched per-image maps equal one-face engine calls; targets; inputs untouched."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.aggregate import batch_maps, own_syndrome_targets, syndrome_targets
from gmx.explain import LogitTarget, SimilarityTarget, explain, get_method, list_methods
from gmx.gallery import rank

BATCHABLE = tuple(m for m in list_methods() if get_method(m).batchable)


def test_similarity_targets_exclude_same_subject(tiny) -> None:
    g = tiny.gallery
    t = own_syndrome_targets(g, np.arange(12), "similarity")
    subj = [im.subject_id for im in g.images]
    lab = [im.syndrome_id for im in g.images]
    assert t.valid.tolist() == [True] * 8 + [False] * 4  # S:3 has one subject
    for i in range(8):
        j = int(t.reference_index[i])
        assert lab[j] == lab[i] and subj[j] != subj[i]
        # nearest among the allowed images, by GestaltMatcher-Arc's ranking distance
        allowed = [k for k in range(12) if lab[k] == lab[i] and subj[k] != subj[i]]
        d = rank(g.embeddings[i], g).image_distances[allowed]
        assert j == allowed[int(np.argmin(d))]
        np.testing.assert_array_equal(t.reference[i, 0], g.embeddings[j, 0])


def test_logit_and_auto_targets(tiny) -> None:
    g = tiny.gallery
    classes = tiny.model.card.classes
    t = own_syndrome_targets(g, np.arange(12), "logit", classes=classes)
    assert t.class_index.tolist() == [0] * 4 + [1] * 4 + [-1] * 4
    assert t.valid.tolist() == [True] * 8 + [False] * 4
    a = own_syndrome_targets(g, np.arange(12), "auto", classes=classes)
    assert a.class_index.tolist() == t.class_index.tolist()
    with pytest.raises(ValueError, match="mode"):
        own_syndrome_targets(g, [0], "nearest")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["similarity", "logit"])
def test_batch_equals_single_face_engine(tiny, mode) -> None:
    g = tiny.gallery
    idx = np.arange(8)
    var = [0, 3]  # colour and flipped grey: exercises mirroring back
    t = own_syndrome_targets(g, idx, mode, classes=tiny.model.card.classes, variants=var)
    faces = np.array(g.photos[idx])
    before = faces.copy()
    methods = BATCHABLE
    maps = batch_maps(
        tiny.model, faces, t, methods=methods, variants=[g.variants[v] for v in var], batch_size=3
    )
    np.testing.assert_array_equal(faces, before)
    for i in (0, 4, 7):
        target = (
            LogitTarget(int(t.class_index[i]))
            if mode == "logit"
            else SimilarityTarget(t.reference[i])
        )
        ref = explain(tiny.model, faces[i], target, [g.variants[v] for v in var], methods=methods)
        for m in methods:
            scale = np.abs(ref[m].values).max()
            np.testing.assert_allclose(maps[m][i], ref[m].values, rtol=1e-3, atol=1e-4 * scale)


def test_invalid_rows_are_nan_and_fallback_methods_run(tiny) -> None:
    g = tiny.gallery
    t = own_syndrome_targets(g, np.arange(6, 10), "similarity")
    ig = "integrated_gradients"  # not batchable: explained face by face
    params = {ig: {"steps": 4}}
    maps = batch_maps(tiny.model, g.photos[6:10], t, methods=("gradcam", ig), params=params)
    # placed on the template with the backbone's cell grid, like the engine's values
    assert maps["gradcam"].shape == (4, 112, 112) and maps[ig].shape == (4, 112, 112)
    assert np.isfinite(maps["gradcam"][:2]).all() and np.isnan(maps["gradcam"][2:]).all()
    assert np.isnan(maps[ig][2:]).all()
    for i in (0, 1):
        target = SimilarityTarget(t.reference[i])
        ref = explain(tiny.model, g.photos[6 + i], target, methods=(ig, "gradcam"), params=params)
        np.testing.assert_allclose(maps[ig][i], ref[ig].values, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(maps["gradcam"][i], ref["gradcam"].values, rtol=1e-4, atol=1e-6)


def test_cohort_targets_point_at_nearest_image_of_syndrome(tiny) -> None:
    g = tiny.gallery
    emb = g.embeddings[8:10]
    t = syndrome_targets(g, emb, "S:2")
    members = np.arange(4, 8)
    for r in range(2):
        d = rank(emb[r], g).image_distances[members]
        assert t.reference_index[r] == members[np.argmin(d)]
    with pytest.raises(ValueError, match="no gallery images"):
        syndrome_targets(g, emb, "S:9")


def test_bad_inputs(tiny) -> None:
    g = tiny.gallery
    t = own_syndrome_targets(g, [0, 1], "similarity")
    with pytest.raises(ValueError, match="uint8"):
        batch_maps(tiny.model, g.photos[:2].astype(np.float32), t)
    with pytest.raises(ValueError, match="targets for"):
        batch_maps(tiny.model, g.photos[:3], t)
    with pytest.raises(ValueError, match="twice"):
        batch_maps(tiny.model, g.photos[:2], t, methods=("gradcam", "gradcam"))
