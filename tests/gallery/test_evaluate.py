from __future__ import annotations

import numpy as np
import pytest

from gmx.gallery import Gallery, evaluate, rank, split_members

from ._gallery_fixtures import QUERY, random_gallery

# q1 = QUERY ranks A, C, B (see _gallery_fixtures); FAR is nearest to c1 (C), then ...
FAR = np.array([[-1.0, 0.0], [0.0, -1.0]], dtype=np.float32)


def test_macro_and_micro_by_hand(tiny: Gallery) -> None:
    queries = np.stack([QUERY, QUERY, QUERY, FAR])
    labels = ["A", "B", "C", "C"]
    ev = evaluate(queries, labels, tiny, ks=(1, 2, 3))
    # ranks of the true syndrome: A 1st, B 3rd, C 2nd for QUERY; FAR's nearest image is c1 (C) -> 1st
    assert ev.ranks.tolist() == [1, 3, 2, 1]
    # per syndrome (A: 1 query, B: 1, C: 2) top-1: 1/1, 0/1, 1/2 -> macro 0.5; micro 2/4
    assert ev.macro[1] == pytest.approx(0.5)
    assert ev.micro[1] == pytest.approx(0.5)
    # top-2: 1, 0, 2/2 -> macro 2/3; micro 3/4 (macro and micro differ)
    assert ev.macro[2] == pytest.approx(2 / 3)
    assert ev.micro[2] == pytest.approx(0.75)
    assert ev.macro[3] == ev.micro[3] == pytest.approx(1.0)
    assert [(s.syndrome_id, s.n_queries, s.hits) for s in ev.per_syndrome] == [
        ("A", 1, (1, 1, 1)),
        ("B", 1, (0, 0, 1)),
        ("C", 2, (1, 2, 2)),
    ]
    assert ev.per_syndrome[2].accuracy(0) == 0.5
    assert ev.ks == (1, 2, 3) and ev.n_queries == 4


def test_same_subject_excluded(tiny: Gallery) -> None:
    q = np.stack([QUERY, QUERY])
    # the first query is a photo of s1 (both A images are s1's): A cannot be found -> miss (rank 0);
    # the second (patient s9, not in the gallery) is unaffected: B stays 3rd
    ev = evaluate(q, ["A", "B"], tiny, ks=(1, 5), query_subjects=["s1", "s9"])
    assert ev.ranks.tolist() == [0, 3]
    assert ev.macro[5] == pytest.approx(0.5)
    kept = evaluate(
        q, ["A", "B"], tiny, ks=(1, 5), query_subjects=["s1", "s9"], exclude_same_subject=False
    )
    assert kept.ranks.tolist() == [1, 3]
    # s2 (b1) excluded for a B query: B is reached through b2 (0.5), after A (a1 0.0) and C (c2 0.2)
    assert evaluate(QUERY[None], ["B"], tiny, query_subjects=["s2"]).ranks.tolist() == [3]
    # s5 (c2) excluded for a C query: C is reached through c1 (2.0), last
    assert evaluate(QUERY[None], ["C"], tiny, query_subjects=["s5"]).ranks.tolist() == [3]
    assert evaluate(QUERY[None], ["C"], tiny).ranks.tolist() == [2]


def test_near_duplicates_and_unknown_labels(tiny: Gallery) -> None:
    ev = evaluate(np.stack([QUERY, QUERY]), ["B", "nope"], tiny, ks=(1,), min_distance=0.3)
    assert ev.ranks.tolist() == [1, 0]  # a1, c2 dropped -> B first; unknown syndrome = miss
    assert ev.macro[1] == pytest.approx(0.5)


def test_agrees_with_rank_and_split_protocol() -> None:
    g = random_gallery(n=80, v=3, d=8, n_syn=9, seed=5)
    rng = np.random.default_rng(6)
    q = rng.standard_normal((25, 3, 8)).astype(np.float32)
    labels = [f"S{k}" for k in rng.integers(0, 9, size=25)]
    ev = evaluate(q, labels, g, chunk_size=7)
    for i in range(25):
        order = [m.syndrome_id for m in rank(q[i], g).syndromes]
        assert ev.ranks[i] == order.index(labels[i]) + 1
    for k in ev.ks:
        hits = np.array([1 <= r <= k for r in ev.ranks])
        per = [hits[np.array(labels) == s].mean() for s in dict.fromkeys(labels)]
        assert ev.macro[k] == pytest.approx(float(np.mean(per)))
        assert ev.micro[k] == pytest.approx(float(hits.mean()))
    # variant masks and gallery subsets are honoured the same way
    ev0 = evaluate(q, labels, g, variant_mask=[0])
    sub = g.subset(split_members(g, 0))
    assert (
        ev0.ranks[0]
        == [m.syndrome_id for m in rank(q[0], g, variant_mask=[0]).syndromes].index(labels[0]) + 1
    )
    assert evaluate(q, labels, sub).n_queries == 25


def test_inputs_untouched_and_errors(tiny: Gallery) -> None:
    q = np.stack([QUERY, FAR])
    before = q.copy()
    labels = ["A", "C"]
    evaluate(q, labels, tiny)
    np.testing.assert_array_equal(q, before)
    assert labels == ["A", "C"]
    with pytest.raises(ValueError, match="labels"):
        evaluate(q, ["A"], tiny)
    with pytest.raises(ValueError, match="ks"):
        evaluate(q, labels, tiny, ks=(0,))
    with pytest.raises(ValueError, match="shape"):
        evaluate(QUERY, ["A"], tiny)
