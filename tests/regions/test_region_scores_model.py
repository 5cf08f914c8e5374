"""Region Shapley values through a real (tiny, random-init) model on the similarity target."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.explain import SimilarityTarget
from gmx.metrics.faithfulness import fill_image
from gmx.regions import region_masks, region_shapley, target_scorer
from tests.metrics.conftest import tiny  # noqa: F401  (fixture)
from tests.regions.test_regions import synthetic_face


def test_region_shapley_on_the_similarity_target(tiny) -> None:  # noqa: F811
    g = tiny.gallery
    variants = list(g.variants)
    target = SimilarityTarget(g.embeddings[0], syndrome_embeddings=g.embeddings[:3])
    face = tiny.faces[0].copy()
    regions = region_masks(synthetic_face())
    evaluate = target_scorer(tiny.model, target, variants)
    got = region_shapley(evaluate, face, regions, fill_image(face, "blur"), batch_size=128)
    np.testing.assert_array_equal(face, tiny.faces[0])  # not modified
    assert got.evaluations == 1024
    # efficiency: the values share out exactly f(all) - f(none)
    assert got.shapley.sum() == pytest.approx(got.full - got.empty, abs=1e-9)
    # f(all) is the target's score of the clean face; batching does not change the numbers
    assert got.full == pytest.approx(float(evaluate(face[None])[0]), abs=1e-5)
    occ = region_shapley(
        evaluate, face, regions, fill_image(face, "blur"), shapley=False, batch_size=5
    )
    np.testing.assert_allclose(occ.occlusion, got.occlusion, atol=1e-5)
    assert occ.empty == pytest.approx(got.empty, abs=1e-5)
