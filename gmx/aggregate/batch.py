"""Per-image attribution maps for many faces at once: one forward/backward per batch, every method.

:func:`batch_maps` explains ``n`` faces, each against its own row-wise target
(:class:`~gmx.aggregate.targets.RowTargets`), in batches. Methods registered ``batchable=True``
(:attr:`gmx.explain.MethodSpec.batchable`: the Grad-CAM family, Saliency, Guided Backprop,
Deconvolution, DeepLIFT, FullGrad, the baselines) run through :func:`gmx.explain.explain_batch`: the
engine's own per-variant loop over the registered methods, where one forward pass and one ordinary
backward pass per batch and variant serve all of them. The others (occlusion, integrated gradients)
run through :func:`gmx.explain.explain` one face at a time.

Maps are in the engine's units and placed on the 112x112 template like :func:`gmx.explain.explain`
places them: each variant's map (``(7, 7)`` for the CAM family) is placed with its backbone's cell
grid (:func:`gmx.encode.geometry.cell_grid`) in the frame it was computed in, mirrored back at pixel
level if flipped, then averaged over variants. Template coordinates: the faces are aligned, so pixel
``(x, y)`` means the same facial location in every map.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gmx.aggregate.targets import RowTargets
from gmx.constants import TEMPLATE_SIZE
from gmx.explain import batch_faces, explain, explain_batch, get_method
from gmx.variants import Variant


def check_methods(
    methods: Sequence[str], params: Mapping[str, Mapping[str, Any]] | None = None
) -> None:
    """Check method names and per-method parameters before anything is computed or written.

    Raises:
        ValueError: not a non-empty sequence of distinct registered names, parameters for a method
            not in ``methods``, or a parameter a method does not have.
    """
    if isinstance(methods, str) or not methods:
        raise ValueError(f"methods must be a non-empty sequence of names, got {methods!r}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods listed twice: {list(methods)}")
    for m in methods:
        get_method(m)  # unknown names raise, listing the known ones
    params = params or {}
    if not isinstance(params, Mapping):
        raise ValueError(f"params must map method names to parameters, got {params!r}")
    stray = sorted(set(params) - set(methods))
    if stray:
        raise ValueError(f"parameters given for methods that are not run: {stray}")
    for m, overrides in params.items():
        get_method(m).resolve(overrides)  # unknown parameter names raise


def batch_maps(
    models: Any,
    faces: np.ndarray,
    targets: RowTargets,
    *,
    methods: Sequence[str] = ("gradcam", "hirescam", "gradcam_signed", "saliency"),
    variants: Sequence[Variant] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 0,
    progress: Callable[[int, int], None] | None = None,
    native: bool = False,
) -> dict[str, np.ndarray]:
    """Maps of ``n`` faces, each against its own target.

    Args:
        models: a model (``LoadedModel``, ``GestaltModel``, backbone) or a sequence (an ensemble);
            never modified.
        faces: ``(n, 112, 112, 3)`` uint8 RGB aligned faces; not modified.
        targets: ``n`` row targets; their reference rows follow ``variants``' order.
        methods: registry names; the batchable ones share the batch passes.
        variants: explained variants (default: model 0, no flip, colour); maps are averaged over them.
        params: per-method parameter overrides (as :func:`gmx.explain.explain`).
        batch_size: rows per forward pass (``0``: :func:`gmx.explain.batch_faces`, 32 on CPU, 256
            on CUDA).
        progress: ``progress(done_rows, n)`` after each batch.
        native: maps at the methods' native resolution (e.g. 7x7 cells, the engine's ``raw``)
            where one cell grid holds every variant, instead of placed on the template.

    Returns:
        method -> ``(n, 112, 112)`` float32 maps placed on the template (``native``: ``(n, h, w)``);
        rows whose target is invalid are NaN.

    Raises:
        ValueError: for bad faces, methods, variants, or targets that do not fit.
    """
    arr = np.asarray(faces)
    if arr.ndim != 4 or arr.shape[1:] != (TEMPLATE_SIZE, TEMPLATE_SIZE, 3) or arr.dtype != np.uint8:
        raise ValueError(f"faces must be (n, 112, 112, 3) uint8, got {arr.shape} {arr.dtype}")
    n = len(arr)
    if len(targets) != n:
        raise ValueError(f"{len(targets)} targets for {n} faces")
    check_methods(methods, params)
    n_variants = len(variants) if variants is not None else 1
    if targets.reference.shape[1] != n_variants:
        raise ValueError(
            f"targets hold {targets.reference.shape[1]} reference row(s) per face for "
            f"{n_variants} variant(s)"
        )
    batch_size = batch_faces(models, batch_size)
    params = params or {}
    # Batchable methods share the batch passes (SmoothGrad, which adds rows, runs per face).
    fast = [
        m
        for m in methods  # unknown names raise here
        if get_method(m).batchable
        and not get_method(m).resolve(params.get(m)).get("smooth_samples")
    ]
    slow = [m for m in methods if m not in fast]

    parts: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    rows_valid = np.flatnonzero(targets.valid)
    done = 0
    for start in range(0, len(rows_valid), batch_size):
        rows = rows_valid[start : start + batch_size]
        if fast:
            maps = explain_batch(
                models,
                arr[rows],
                targets.take(rows).target(),
                variants,
                methods=fast,
                params=params,
                native=native,
            )
            for m in fast:
                parts[m].append(maps[m])
        for r in rows if slow else ():
            one = explain(
                models, arr[r], targets.take([r]).target(), variants, methods=slow, params=params
            )
            for m in slow:
                amap = one[m].raw if native else one[m].values
                parts[m].append(amap[None].astype(np.float32))
        done += len(rows)
        if progress is not None:
            progress(done, len(rows_valid))
    out: dict[str, np.ndarray] = {}
    for m in methods:
        if parts[m]:
            stacked = np.concatenate(parts[m])
            full = np.full((n, *stacked.shape[1:]), np.nan, np.float32)
            full[rows_valid] = stacked
        else:
            full = np.full((n, TEMPLATE_SIZE, TEMPLATE_SIZE), np.nan, np.float32)
        out[m] = full
    return out


__all__ = ["batch_maps", "check_methods"]
