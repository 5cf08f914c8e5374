"""One Pearson r for gmx (method agreement and split-half stability)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gmx.aggregate.stats as stats
from gmx.explain import agreement, pearson


def test_pearson_hand_values() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert pearson(a, 2 * a + 7) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    # x = (1, 2, 3), y = (1, 3, 2): r = 0.5 by hand.
    assert pearson(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="size"):
        pearson(np.zeros(3), np.zeros(4))


def test_constant_maps_have_no_correlation() -> None:
    flat = np.zeros((7, 7))
    ramp = np.arange(49.0).reshape(7, 7)
    assert math.isnan(pearson(flat, ramp)) and math.isnan(pearson(flat, flat))
    same = agreement(flat, flat)
    assert math.isnan(same.pearson) and same.max_abs_diff == 0.0 and same.top_iou == 1.0
    assert math.isnan(agreement(flat, ramp).pearson)


def test_aggregate_statistics_use_the_same_pearson() -> None:
    assert stats.pearson is pearson
