"""The result of one explanation: a frozen :class:`AttributionMap`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from gmx.constants import TEMPLATE_SIZE
from gmx.variants import Variant


def _readonly_f32(array: Any, name: str) -> np.ndarray:
    arr = np.array(array, dtype=np.float32, copy=True)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class AttributionMap:
    """One attribution map of a face for one target, in ArcFace template space.

    Values keep their sign and absolute scale (units of the target's score, e.g. cosine similarity,
    per pixel for completeness methods); nothing here is normalised. Use :mod:`gmx.explain.display`
    for display scaling.

    Attributes:
        method: registry name, e.g. ``"gradcam"``.
        display_name: name for the UI, e.g. ``"Grad-CAM"``.
        target_description: what was explained, e.g. ``"cosine similarity to CdLS"``.
        values: ``(112, 112)`` float32, read-only: each variant's map placed on the template with
            its backbone's cell grid (:mod:`gmx.encode.geometry`), mirrored back at pixel level if
            the variant was flipped, then averaged over variants.
        raw: the map at the method's native resolution, read-only (``(7, 7)`` for CAMs on the last
            stage, ``(112, 112)`` for input attributions), averaged over variants, where one cell
            grid holds every variant (no flipped variant and one backbone geometry, or pixel maps);
            otherwise no cell map is the average and ``raw`` equals ``values``.
        signed: whether the values carry a meaningful sign (use a diverging colour scale).
        params: the full parameter set used (defaults merged with overrides), read-only.
        elapsed_s: wall time of this method for all variants, including any shared pass it started.
        variants: the model/TTA variants averaged.
        backend: ``"engine"`` (gmx's batched implementation) or ``"reference"`` (captum /
            pytorch-grad-cam adapters).
    """

    method: str
    display_name: str
    target_description: str
    values: np.ndarray
    raw: np.ndarray
    signed: bool
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    elapsed_s: float = 0.0
    variants: tuple[Variant, ...] = ()
    backend: str = "engine"

    def __post_init__(self) -> None:
        values = _readonly_f32(self.values, "values")
        if values.shape != (TEMPLATE_SIZE, TEMPLATE_SIZE):
            raise ValueError(f"values must be (112, 112), got {values.shape}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "raw", _readonly_f32(self.raw, "raw"))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "variants", tuple(self.variants))

    @property
    def variant_labels(self) -> tuple[str, ...]:
        """Labels of the averaged variants, e.g. ``("m0 plain", "m0 flip")``."""
        return tuple(v.label for v in self.variants)


__all__ = ["AttributionMap"]
