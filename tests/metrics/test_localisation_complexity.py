"""Localisation and complexity scores on toy maps with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gmx.aggregate.localisation import score_matrix
from gmx.metrics import LocalisationMetrics, entropy, localisation_metrics, sparseness
from gmx.metrics.localisation import auroc, pointing_game, relevance_mass, relevance_rank

A = np.array([[0.1, 0.5, 0.2], [0.4, -0.3, 0.0]])
M1 = np.array([[False, True, False], [True, False, False]])  # the two largest values
M2 = np.array([[False, True, True], [False, False, False]])
M3 = np.array([[True, False, False], [False, False, False]])


def test_relevance_mass_by_hand() -> None:
    # Positive mass 0.1 + 0.5 + 0.2 + 0.4 = 1.2; inside M1 0.9, inside M2 0.7.
    assert relevance_mass(A, M1) == pytest.approx(0.75)
    assert relevance_mass(A, M2) == pytest.approx(0.7 / 1.2)
    assert math.isnan(relevance_mass(-np.abs(A), M1))  # no positive mass


def test_relevance_rank_by_hand() -> None:
    assert relevance_rank(A, M1) == 1.0  # top-2 = 0.5, 0.4, both inside
    assert relevance_rank(A, M2) == 0.5  # top-2 = 0.5 (in), 0.4 (out)
    assert relevance_rank(A, M3) == 0.0  # top-1 = 0.5, outside


def test_pointing_game_by_hand() -> None:
    assert pointing_game(A, M1) == 1.0
    assert pointing_game(A, M3) == 0.0
    tied = np.array([[1.0, 2.0], [2.0, 0.0]])
    assert pointing_game(tied, np.array([[False, True], [False, False]])) == 0.5


def test_auroc_by_hand() -> None:
    assert auroc(A, M1) == 1.0
    # Inside {0.5, 0.2} vs outside {0.1, 0.4, -0.3, 0.0}: 4 + 3 of 8 pairs won.
    assert auroc(A, M2) == pytest.approx(7 / 8)
    # Ties count half: a constant map is at chance.
    assert auroc(np.ones((2, 3)), M1) == 0.5


def test_shared_implementation_with_aggregate() -> None:
    # One implementation: the numbers are those of gmx.aggregate's score_matrix.
    assert relevance_mass(A, M2) == score_matrix(A[None], M2[None], "mass_inside")[0, 0]
    assert auroc(A, M2) == score_matrix(A[None], M2[None], "auroc")[0, 0]


def test_all_metrics_and_degenerate_masks() -> None:
    a, m = A.copy(), M2.copy()
    got = localisation_metrics(a, m)
    assert isinstance(got, LocalisationMetrics)
    np.testing.assert_allclose(
        [got.relevance_mass, got.relevance_rank, got.pointing_game, got.auroc, got.area],
        [0.7 / 1.2, 0.5, 1.0, 7 / 8, 2 / 6],
    )
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(m, M2)
    for mask in (np.zeros((2, 3), bool), np.ones((2, 3), bool)):
        vals = localisation_metrics(A, mask)
        assert all(math.isnan(v) for v in (vals.relevance_mass, vals.relevance_rank,
                                           vals.pointing_game, vals.auroc))  # fmt: skip
    with pytest.raises(ValueError, match="bool"):
        localisation_metrics(A, M1.astype(int))
    with pytest.raises(ValueError, match="same"):
        localisation_metrics(A, M1[:, :2])


@pytest.mark.parametrize(
    ("values", "gini"),
    [
        ([0, 0, 0, 1], 0.75),  # (n - 1) / n
        ([1, 2, 3, 4], 0.25),  # (-3*1 - 1*2 + 1*3 + 3*4) / (4 * 10)
        ([-1, 2, -3, 4], 0.25),  # absolute values
        ([5, 5, 5, 5], 0.0),
    ],
)
def test_sparseness_by_hand(values, gini) -> None:
    assert sparseness(np.array(values, float).reshape(2, 2)) == pytest.approx(gini)


@pytest.mark.parametrize(
    ("values", "nats"),
    [
        ([1, 1, 1, 1], math.log(4)),
        ([0, 0, 0, 1], 0.0),
        ([1, 1, 2], 1.5 * math.log(2)),
        ([-1, 1], math.log(2)),
    ],
)
def test_entropy_by_hand(values, nats) -> None:
    assert entropy(np.array(values, float)) == pytest.approx(nats)


def test_complexity_of_zero_map_is_nan() -> None:
    assert math.isnan(sparseness(np.zeros((3, 3))))
    assert math.isnan(entropy(np.zeros((3, 3))))
