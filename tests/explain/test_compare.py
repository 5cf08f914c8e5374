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


# ------------------------------------------------------------------ one top_mask, two countings
def test_top_mask_rounds_or_takes_the_ceiling() -> None:
    from gmx.explain.compare import top_mask

    ramp = np.arange(100.0).reshape(10, 10)
    assert top_mask(ramp, 0.071).sum() == 7  # round(7.1)
    assert top_mask(ramp, 0.071, rounding="ceil").sum() == 8  # every started pixel
    assert top_mask(ramp, 0.07, rounding="ceil").sum() == 7  # 0.07 * 100 = 7.000000000000001
    assert top_mask(ramp, 0.001).sum() == 1  # "round" keeps at least one pixel
    assert top_mask(ramp, 1e-15, rounding="ceil").sum() == 1  # as does "ceil"
    top = top_mask(ramp, 0.1, rounding="ceil")
    assert top.shape == ramp.shape and top[9].all() and top.sum() == 10
    ties = top_mask(np.zeros(10), 0.3, rounding="ceil")
    assert ties.tolist() == [True] * 3 + [False] * 7  # ties in raster order
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            top_mask(ramp, bad)
    with pytest.raises(ValueError, match="rounding"):
        top_mask(ramp, 0.1, rounding="floor")  # type: ignore[arg-type]


def test_study_top_percent_counts_as_before() -> None:
    """The study's top-k % (``ceil(size * percent / 100)`` pixels, its hand-computed tests) is the
    one top_mask with ``rounding="ceil"``: the same count for every map size and percent tried."""
    from gmx.explain.compare import top_mask
    from gmx.study import regions

    rng = np.random.default_rng(0)
    for side in (7, 10, 14, 28, 112):
        m = rng.normal(size=(side, side))
        for percent in (*np.arange(0.5, 100.5, 0.5), 1 / 3, 12.345, 33.3):
            want = math.ceil(m.size * float(percent) / 100)
            got = regions.top_mask(m, float(percent))
            assert got.sum() == want, (side, percent)
            assert np.array_equal(got, top_mask(m, float(percent) / 100, rounding="ceil"))


def test_study_top_percent_is_the_one_top_mask(monkeypatch) -> None:
    from gmx.explain import compare
    from gmx.study import regions

    calls: list[dict[str, object]] = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return compare.top_mask(*args, **kwargs)

    monkeypatch.setattr(regions, "compare_top_mask", spy)
    assert regions.top_mask(np.arange(100.0).reshape(10, 10), 10).sum() == 10
    assert calls == [{"rounding": "ceil"}]


# --------------------------------------------------- one module, distinct names for two agreements
def test_reference_and_method_agreement_are_distinct_classes_of_one_module() -> None:
    import gmx.explain
    from gmx.explain import compare

    ref = compare.agreement(np.arange(9.0), np.arange(9.0))
    assert isinstance(ref, compare.ReferenceAgreement) and ref.pearson == pytest.approx(1.0)
    maps = {"a": np.arange(9.0).reshape(3, 3), "b": -np.arange(9.0).reshape(3, 3)}
    pair = compare.agreement_matrix(maps)
    assert isinstance(pair, compare.MethodAgreement) and pair.spearman[0, 1] == pytest.approx(-1)
    assert gmx.explain.ReferenceAgreement is compare.ReferenceAgreement
    assert not hasattr(compare, "Agreement") and not hasattr(gmx.explain, "Agreement")
