"""Coercion and validation of method parameters (fills, baselines, window sizes, batch sizes).

Shared by the engine's methods (:mod:`gmx.explain.methods`) and the reference adapters
(:mod:`gmx.explain.reference`), so both read a parameter the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from gmx.encode.model import IRESNET_NORM

#: Named baselines / fills as pixel levels in ``[0, 1]``; in model units (iResNet
#: normalisation) "black" is -1, "grey" 0 and "white" 1.
NAMED_LEVELS: Mapping[str, float] = {"black": 0.0, "grey": 0.5, "gray": 0.5, "white": 1.0}


def input_value(
    value: Any,
    name: str,
    norm: tuple[Sequence[float], Sequence[float]] = IRESNET_NORM,
) -> torch.Tensor:
    """A fill/baseline value ``(1, 3, 1, 1)`` in model-input units.

    Args:
        value: a name (``"black"``, ``"grey"``, ``"white"``: a pixel level, normalised with the
            model's ``norm``) or a number (already in model units, e.g. -1.0).
        name: parameter name for error messages.
        norm: the model's ``(mean, std)`` per channel, in the input's channel order.
    """
    if isinstance(value, str):
        try:
            level = NAMED_LEVELS[value]
        except KeyError:
            raise ValueError(
                f"{name} must be one of {sorted(NAMED_LEVELS)} or a number, got {value!r}"
            ) from None
        mean = torch.tensor([float(m) for m in norm[0]], dtype=torch.float32)
        std = torch.tensor([float(s) for s in norm[1]], dtype=torch.float32)
        return ((level - mean) / std).reshape(1, -1, 1, 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number or a name, got {value!r}")
    return torch.full((1, 3, 1, 1), float(value))


def int_pair(value: Any, name: str) -> tuple[int, int]:
    """An int or a pair of ints as ``(a, b)``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int ``>= 1``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


#: ``batch_size=0`` means: this many images per batch on (CPU, CUDA). CPU sizes bound peak memory
#: (an iResNet-50 graph holds ~100 MB per image in bf16); GPUs want large batches.
AUTO_BATCH: Mapping[str, tuple[int, int]] = {
    "occlusion": (32, 256),
    "integrated_gradients": (4, 32),
}


def batch_size(value: Any, method: str, device: torch.device | None) -> int:
    """Resolve a ``batch_size`` parameter (``0`` = automatic for the device)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value == 0:
        cpu, cuda = AUTO_BATCH[method]
        return cuda if device is not None and device.type == "cuda" else cpu
    return positive_int(value, "batch_size")


__all__ = [
    "AUTO_BATCH",
    "NAMED_LEVELS",
    "batch_size",
    "input_value",
    "int_pair",
    "positive_int",
]
