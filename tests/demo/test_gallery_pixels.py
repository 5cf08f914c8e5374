"""The shipped demo gallery stores exactly the pixels that were ranked.

Every stored embedding must be the embedding of the stored (decoded WebP) photo, and the exact pair
decomposition the Similarity page shows, which recomputes the gallery side from the stored photos,
must equal the ranking's ``1 - d``. Both failed on the gallery shipped before the one-encoding build
(worst re-embedding cosine 0.9944, decomposition off by up to 1.5e-2).
"""

from __future__ import annotations

import numpy as np
import pytest

from gmx.config import DEMO_DIR, DEMO_GALLERY, DEMO_MODEL
from gmx.demo import PHOTO_CODEC, PHOTO_QUALITY
from gmx.encode import Ensemble, load_model
from gmx.gallery import CONSISTENT_COSINE, load_gallery, rank, verify_embeddings
from gmx.similarity import PairExplainer
from gmx.synth import load_demo_data

#: Agreement promised by docs/similarity.md between the decomposition and the ranking.
DECOMPOSITION_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def demo():
    ensemble = Ensemble([load_model(DEMO_MODEL, device="cpu")], flip=True, grey=True)
    gallery = load_gallery(DEMO_GALLERY, expected_fingerprint=ensemble.fingerprint)
    return ensemble, gallery


def test_stored_photos_are_the_embedded_pixels(demo):
    ensemble, gallery = demo
    assert (gallery.photo_codec, gallery.photo_quality) == (PHOTO_CODEC, PHOTO_QUALITY)
    check = verify_embeddings(gallery, ensemble.embed, sample=96, seed=0)
    assert check.worst_cosine >= CONSISTENT_COSINE, (check.worst_cosine, check.worst_image_id)


def test_decomposition_equals_the_ranking_on_real_pairs(demo):
    """Frequent-test queries x the nearest image of each of their top-3 syndromes."""
    ensemble, gallery = demo
    data = load_demo_data(DEMO_DIR)
    queries = data.select(data.splits == "test")
    pick = np.linspace(0, len(queries) - 1, 16).round().astype(int)
    explainer = PairExplainer(ensemble, gallery)
    gaps, variant_gaps = [], []
    for q in pick:
        face = queries.images[q : q + 1]
        ranking = rank(ensemble.embed(face)[0], gallery)
        indices = [m.image_index for m in ranking.syndromes[:3]]
        pairs = explainer.decompose(explainer.query(face), indices)
        for i, pair in zip(indices, pairs, strict=True):
            gaps.append(abs(pair.cosine - (1.0 - ranking.image_distances[i])))
            per_variant = 1.0 - ranking.per_variant_distances[:, i]
            variant_gaps.append(float(np.abs(pair.per_variant_cosine - per_variant).max()))
    assert len(gaps) == 48
    assert max(gaps) <= DECOMPOSITION_TOLERANCE, max(gaps)
    assert max(variant_gaps) <= DECOMPOSITION_TOLERANCE, max(variant_gaps)
