"""Choice of the torch device (CUDA when available, else Apple MPS, else CPU) and of the number of
CPU threads torch uses."""

from __future__ import annotations

import os

import torch

#: Environment variable that overrides the automatic choice (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
DEVICE_ENV = "GMX_DEVICE"
#: The automatic policy gives torch one intra-op thread per this many CPU cores available to the
#: process (at least one): the other cores are left to the app's other threads (Streamlit's server,
#: MediaPipe, other sessions) and other processes. With every core in torch's pool, a busy machine
#: preempts some of its threads and the others wait for them at every operation: on a loaded 2-core
#: box the demo's Explain maps took 18-23 s with 2 threads against 2-4 s with 1 (docs/benchmarks.md).
CORES_PER_THREAD = 2


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


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


def auto_threads(cores: int | None = None) -> int:
    """The automatic number of torch threads: one per :data:`CORES_PER_THREAD` cores, at least 1."""
    return max(1, (available_cores() if cores is None else cores) // CORES_PER_THREAD)


def set_threads(requested: int = 0) -> int:
    """Set torch's intra-op thread count (process-wide) and return it.

    Args:
        requested: threads; ``0`` picks :func:`auto_threads`.

    Raises:
        ValueError: if ``requested`` is negative.
    """
    if requested < 0:
        raise ValueError(f"threads must be 0 (automatic) or a positive number, got {requested}")
    threads = requested or auto_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


__all__ = [
    "CORES_PER_THREAD",
    "DEVICE_ENV",
    "auto_threads",
    "available_cores",
    "select_device",
    "set_threads",
]
