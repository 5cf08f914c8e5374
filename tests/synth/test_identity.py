from __future__ import annotations

import numpy as np
import pytest

from gmx.synth.identity import MAX_WEIGHT, MIN_SOURCES, MIN_WEIGHT, sample_identity


def test_identity_mixes_at_least_five_sources_with_meaningful_weights(tiny_bank):
    for seed in range(20):
        idt = sample_identity(tiny_bank, np.random.default_rng(seed))
        assert len(set(idt.sources.tolist())) >= MIN_SOURCES
        assert idt.weights.sum() == pytest.approx(1.0)
        assert idt.weights.min() >= MIN_WEIGHT
        assert idt.weights.max() <= MAX_WEIGHT
        assert idt.shape.shape == (478, 2)


def test_identity_is_deterministic_and_seed_dependent(tiny_bank):
    a = sample_identity(tiny_bank, np.random.default_rng(5))
    b = sample_identity(tiny_bank, np.random.default_rng(5))
    c = sample_identity(tiny_bank, np.random.default_rng(6))
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.shape, b.shape)
    assert not np.array_equal(a.weights, c.weights)


def test_too_few_sources_is_rejected(tiny_bank):
    with pytest.raises(ValueError, match="n_sources"):
        sample_identity(tiny_bank, np.random.default_rng(0), n_sources=4)
