"""Model x test-time-augmentation variants, in GestaltMatcher-Arc's order."""

from __future__ import annotations

from dataclasses import dataclass

from gmx.constants import TTA_ORDER


@dataclass(frozen=True, order=True)
class Variant:
    """One embedding variant of an image: which model, mirrored or not, grey or colour.

    Attributes:
        model: index of the model in the ensemble.
        flip: the input was mirrored left-right before encoding.
        grey: the input was converted to grey (replicated over 3 channels) before encoding.
    """

    model: int
    flip: bool = False
    grey: bool = False

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``m0 flip grey``."""
        parts = [f"m{self.model}"]
        if self.flip:
            parts.append("flip")
        if self.grey:
            parts.append("grey")
        return " ".join(parts) if len(parts) > 1 else f"m{self.model} plain"


def tta_variants(n_models: int, *, flip: bool = True, grey: bool = True) -> tuple[Variant, ...]:
    """All variants of an ensemble, model-major, then flip, then grey (upstream order).

    Args:
        n_models: number of models in the ensemble (>= 1).
        flip: include mirrored variants.
        grey: include grey variants.
    """
    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    return tuple(
        Variant(model=m, flip=f, grey=g)
        for m in range(n_models)
        for f, g in TTA_ORDER
        if (flip or not f) and (grey or not g)
    )


__all__ = ["Variant", "tta_variants"]
