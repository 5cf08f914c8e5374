"""Array aliases shared across gmx.

Conventions used everywhere in gmx:

* Images are ``(H, W, 3)`` ``uint8`` **RGB** unless a name says otherwise.
* Points are ``(x, y)`` in pixels (column, row), never ``(row, col)``.
* Model inputs are ``(N, C, H, W)`` ``float32`` scaled to ``[-1, 1]``.
* Maps in template space are ``(7, 7)``, ``(112, 112)`` or ``(H, W)`` ``float32`` and keep their sign.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

ImageU8: TypeAlias = npt.NDArray[np.uint8]
"""``(H, W, 3)`` uint8 RGB image (or ``(H, W)`` grey where stated)."""

FloatArray: TypeAlias = npt.NDArray[np.floating]
"""Any float array; the docstring of the user states the shape."""

Points: TypeAlias = npt.NDArray[np.float64]
"""``(N, 2)`` float array of ``(x, y)`` pixel coordinates."""

Affine: TypeAlias = npt.NDArray[np.float64]
"""``(2, 3)`` float64 affine matrix mapping ``(x, y, 1)`` to ``(x', y')``."""

__all__ = ["Affine", "FloatArray", "ImageU8", "Points"]
