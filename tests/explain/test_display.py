"""One colour-range type: explain's display ranges are gmx.viz.Scale values with its rule."""

from __future__ import annotations

import numpy as np

from gmx.explain import AttributionMap, DisplayRange, display_ranges
from gmx.viz import Scale, robust_limit


def _amap(values: np.ndarray, signed: bool) -> AttributionMap:
    return AttributionMap("m", "m", "t", values, values[::16, ::16], signed)


def test_display_ranges_are_viz_scales_with_the_same_rule() -> None:
    rng = np.random.default_rng(0)
    unsigned = (rng.random((112, 112)) + 2.0).astype(np.float32)  # in [2, 3): p0.5 far above 0
    signed = rng.standard_normal((112, 112)).astype(np.float32)
    assert DisplayRange is Scale
    for values, is_signed in ((unsigned, False), (signed, True)):
        (got,) = display_ranges([_amap(values, is_signed)])
        assert isinstance(got, Scale)
        assert got == Scale.for_maps([values], signed=is_signed)
    limit = float(np.percentile(unsigned.astype(np.float64), 99.5))
    assert Scale.for_maps([unsigned], signed=False) == Scale(0.0, limit, False)
    assert Scale.for_maps([signed], signed=True).diverging
    assert robust_limit(np.zeros((3, 3))) == 1.0
