"""How concentrated a map is: sparseness (Gini index) and entropy of its absolute values.

* ``sparseness`` (Chalasani et al. 2020, as Quantus' ``Sparseness``): the Gini index of ``|a|``,
  ``sum_i (2 i - n - 1) a_(i) / (n sum_i a_(i))`` with ``a_(1) <= ... <= a_(n)`` sorted ascending
  and ``i`` 1-based. 0 for a uniform map, ``(n - 1) / n`` for a single non-zero pixel.
* ``entropy`` (Bhatt et al. 2020, as Quantus' ``Complexity``): Shannon entropy, in nats, of
  ``p = |a| / sum |a|``. 0 for a single non-zero pixel, ``ln n`` for a uniform map.

Both use absolute values (sign does not make a map simpler) and are NaN for an all-zero map.
"""

from __future__ import annotations

import numpy as np


def _abs(attribution: np.ndarray) -> np.ndarray | None:
    a = np.abs(np.asarray(attribution, np.float64)).ravel()
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("attribution must be a non-empty finite array")
    return None if a.sum() == 0 else a


def sparseness(attribution: np.ndarray) -> float:
    """Gini index of ``|attribution|`` (0 = uniform, towards 1 = concentrated)."""
    a = _abs(attribution)
    if a is None:
        return float("nan")
    s = np.sort(a)
    n = len(s)
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(np.sum((2 * i - n - 1) * s) / (n * s.sum()))


def entropy(attribution: np.ndarray) -> float:
    """Shannon entropy (nats) of ``|attribution|`` normalised to sum 1 (0 = one pixel)."""
    a = _abs(attribution)
    if a is None:
        return float("nan")
    p = a / a.sum()
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


__all__ = ["entropy", "sparseness"]
