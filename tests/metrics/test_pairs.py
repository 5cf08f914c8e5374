"""Pair-map faithfulness: the Similarity page's maps scored on the pair's similarity, both faces."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.encode import Ensemble
from gmx.metrics.pairs import pair_faithfulness
from gmx.similarity import PairExplainer


def test_pair_faithfulness_on_both_faces(tiny) -> None:
    ens = Ensemble([tiny.model], flip=True, grey=False)
    assert ens.fingerprint == tiny.gallery.model_fingerprint
    explainer = PairExplainer(ens, tiny.gallery)
    face = tiny.faces[0]
    pairs = [
        *explainer.explain(face, [1, 4], method="exact"),
        *explainer.explain(face, [1], method="occlusion"),
    ]
    got = pair_faithfulness(ens, tiny.gallery, face, pairs, steps=4)
    assert [(r.method, r.image_index, r.side) for r in got] == [
        ("exact", 1, "query"), ("exact", 1, "gallery"), ("exact", 4, "query"),
        ("exact", 4, "gallery"), ("occlusion", 1, "query"), ("occlusion", 1, "gallery"),
    ]  # fmt: skip
    for r, p in zip(got, [pairs[0], pairs[0], pairs[1], pairs[1], pairs[2], pairs[2]], strict=True):
        # Both sides score the pair's similarity: the clean faces give PairMaps.score (the mean
        # cosine over the variants), at the start of deletion and the end of insertion.
        assert r.deletion.scores[0] == pytest.approx(p.score, abs=1e-5)
        assert r.insertion.scores[-1] == pytest.approx(p.score, abs=1e-5)
        assert r.random_deletion.scores[0] == pytest.approx(p.score, abs=1e-5)
        # Deletion and insertion meet at the fully perturbed face (the same on every curve).
        assert r.deletion.scores[-1] == pytest.approx(r.insertion.scores[0], abs=1e-6)
        assert r.deletion.scores[-1] == pytest.approx(r.random_deletion.scores[-1], abs=1e-6)
        assert np.isfinite(r.deletion_vs_random) and np.isfinite(r.insertion_vs_random)
    # The random null compared with itself is exactly 0 (same seed, same face).
    again = pair_faithfulness(ens, tiny.gallery, face, pairs[:1], steps=4, sides=("query",))
    assert again[0].random_deletion.auc == got[0].random_deletion.auc
    assert again[0].deletion.auc == got[0].deletion.auc


def test_pair_faithfulness_needs_gallery_photos(tiny) -> None:
    from dataclasses import replace

    ens = Ensemble([tiny.model], flip=True, grey=False)
    pairs = PairExplainer(ens, tiny.gallery).explain(tiny.faces[0], [0], method="exact")
    no_photos = replace(tiny.gallery, photos=None)
    with pytest.raises(ValueError, match="photos"):
        pair_faithfulness(ens, no_photos, tiny.faces[0], pairs)
    assert pair_faithfulness(ens, tiny.gallery, tiny.faces[0], []) == ()
