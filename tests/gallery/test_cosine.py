"""gmx.gallery.cosine_distances: the one NumPy cosine of gmx, hand values and its users."""

from __future__ import annotations

import numpy as np

from gmx.gallery import cosine_distances, rank

from ._gallery_fixtures import make_tiny


def test_hand_values_zero_vectors_and_clipping() -> None:
    q = np.array([[[1.0, 0.0]], [[0.0, 0.0]]])  # (2, V=1, D=2)
    g = np.array([[[1.0, 1.0]], [[-2.0, 0.0]], [[3.0, 0.0]]])  # (3, 1, 2)
    d = cosine_distances(q, g)
    assert d.shape == (2, 3, 1) and d.dtype == np.float64
    np.testing.assert_allclose(d[0, :, 0], [1 - 1 / np.sqrt(2), 2.0, 0.0], atol=1e-15)
    np.testing.assert_array_equal(d[1, :, 0], [1.0, 1.0, 1.0])  # a zero vector: similarity 0
    same = np.full((1, 1, 3), 1 / 3, np.float32)
    assert cosine_distances(same, same)[0, 0, 0] >= 0.0  # never negative from rounding


def test_rank_uses_it() -> None:
    g = make_tiny()
    q = g.embeddings[0] * 2.0 + 0.01
    want = cosine_distances(q[None], g.embeddings)[0].T
    np.testing.assert_array_equal(rank(q, g).per_variant_distances, want)
