"""One AUROC kernel (:func:`gmx.aggregate.stats.auroc_matrix`): the gallery statistics' ``auroc``
(scores, labels), the localisation study's ``score_matrix(..., "auroc")`` and the metrics'
``auroc(attribution, mask)`` are calls of it and agree, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from gmx.aggregate.localisation import score_matrix
from gmx.aggregate.stats import auroc, auroc_matrix
from gmx.metrics.localisation import auroc as map_auroc


def _pairs(scores: np.ndarray, labels: np.ndarray) -> float:
    """The definition, pair by pair: P(positive > negative) + 1/2 P(tie)."""
    pos, neg = scores[labels], scores[~labels]
    wins = sum(float(p > n) + 0.5 * float(p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_by_hand_with_a_tie() -> None:
    # ranks 1, 2.5, 2.5, 4; positives 2.5 + 4 = 6.5; (6.5 - 3) / (2 * 2) = 0.875
    # pairs: 2>1, 2=2 (half), 3>1, 3>2 -> 3.5 / 4
    scores = np.array([1.0, 2.0, 2.0, 3.0])
    labels = np.array([False, True, False, True])
    assert auroc(scores, labels) == 0.875
    assert map_auroc(scores.reshape(2, 2), labels.reshape(2, 2)) == 0.875
    assert score_matrix(scores[None], labels[None], "auroc")[0, 0] == 0.875
    assert _pairs(scores, labels) == 0.875


@pytest.mark.parametrize("tied", [False, True])
def test_the_three_auroc_entry_points_agree_exactly(tied: bool) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        side = int(rng.integers(2, 9))
        a = (
            rng.integers(0, 3, (side, side)).astype(float)
            if tied
            else rng.normal(size=(side, side))
        )
        m = rng.random((side, side)) < 0.4
        if m.all() or not m.any():
            continue
        want = _pairs(a.ravel(), m.ravel())
        got = auroc(a, m)
        assert got == pytest.approx(want, abs=1e-12)
        assert map_auroc(a, m) == got
        assert score_matrix(a[None], m[None], "auroc")[0, 0] == got
        assert auroc_matrix(a.reshape(1, -1), m.reshape(1, -1))[0, 0] == got


def test_auroc_matrix_rows_columns_and_undefined_cases() -> None:
    scores = np.array([[0.1, 0.4, 0.35, 0.8], [1.0, 1.0, 0.0, 0.0], [0.0, np.nan, 1.0, 2.0]])
    labels = np.array([[0, 0, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1]], bool)
    got = auroc_matrix(scores, labels)
    assert got.shape == (3, 3)
    for i in range(2):
        for j in range(2):
            assert got[i, j] == pytest.approx(_pairs(scores[i], labels[j]), abs=1e-12)
    assert np.isnan(got[:, 2]).all()  # one class only
    assert np.isnan(got[2]).all()  # a non-finite score
    assert np.isnan(auroc(np.array([]), np.array([], bool)))


def test_auroc_of_a_non_finite_score_is_nan() -> None:
    """Before: the NaN was ranked above every number and the AUROC came out as 1.0 here."""
    assert np.isnan(auroc(np.array([0.1, np.nan, 0.3, 0.2]), np.array([0, 1, 1, 0])))
