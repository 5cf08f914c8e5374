"""Choice of the torch device: CUDA when available, else Apple MPS, else CPU."""

from __future__ import annotations

import os

import torch

#: Environment variable that overrides the automatic choice (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
DEVICE_ENV = "GMX_DEVICE"


def select_device(requested: str | None = None) -> torch.device:
    """Return the device to run models on.

    Args:
        requested: ``"auto"``/``None`` picks CUDA, then MPS, then CPU; anything else is passed to
            ``torch.device``. The ``GMX_DEVICE`` environment variable is used when this is ``None``.

    Raises:
        ValueError: if the requested device is unknown or not available on this machine.
    """
    choice = requested if requested is not None else os.environ.get(DEVICE_ENV, "auto")
    choice = choice.strip().lower()
    if choice in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {choice!r}: use auto, cpu, cuda[:N] or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} requested but CUDA is not available here")
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {choice!r} requested but MPS is not available here")
    return device


__all__ = ["DEVICE_ENV", "select_device"]
