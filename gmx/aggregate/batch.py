"""Per-image attribution maps for many faces at once: one forward/backward per batch, every method.

:func:`batch_maps` explains ``n`` faces, each against its own row-wise target
(:class:`~gmx.aggregate.targets.RowTargets`), in batches. For the methods in :data:`BATCHED_METHODS`
one forward pass and one ordinary backward pass per batch and variant serve all of them (the
Grad-CAM family only differs in how it weights the same activations and gradients); Guided Backprop
and Deconvolution add one rule backward each. Other registered methods (occlusion, integrated
gradients, DeepLIFT, FullGrad, ...) fall back to :func:`gmx.explain.explain` one face at a time.

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
import torch

from gmx.aggregate.targets import RowTargets
from gmx.constants import TEMPLATE_SIZE
from gmx.encode.geometry import cell_grid, place_map
from gmx.explain import LogitTarget, SimilarityTarget, explain, get_method, variant_input
from gmx.explain.engine import as_explain_model
from gmx.explain.methods import gradcam_map, gradcam_pp_map, hirescam_map, layercam_map
from gmx.explain.prepared import engine_model
from gmx.explain.workspace import MAPS_LAYER, Progress, Workspace
from gmx.variants import Variant

RowReducer = Callable[[Workspace, Mapping[str, Any]], torch.Tensor]
"""``(workspace of n faces, params) -> (n, h, w)`` per-row raw maps of target 0."""


def _cam(fn: Callable[..., torch.Tensor], **kw: Any) -> RowReducer:
    def reduce(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
        ws.want_layer(p["layer"])
        acts, grads = ws.gradients(0).layers[p["layer"]]
        extra = {k: (p[v] if isinstance(v, str) else v) for k, v in kw.items()}
        return fn(acts, grads, **extra)

    return reduce


#: Methods computed per row from the shared batch pass (same definitions as the engine's methods,
#: before their mean over rows).
BATCHED_METHODS: Mapping[str, RowReducer] = {
    "gradcam": _cam(gradcam_map, relu=True),
    "gradcam_signed": _cam(gradcam_map, relu=False),
    "hirescam": _cam(hirescam_map, relu="relu"),
    "gradcam_plusplus": _cam(gradcam_pp_map),
    "layercam": _cam(layercam_map),
    "saliency": lambda ws, p: ws.gradients(0).input.abs().amax(dim=1),
    "guided_backprop": lambda ws, p: ws.rule_gradient("guided", 0).sum(dim=1),
    "deconvolution": lambda ws, p: ws.rule_gradient("deconv", 0).sum(dim=1),
}

#: Default rows per batch on CPU / CUDA.
AUTO_BATCH = (32, 256)


def _resolve(
    methods: Sequence[str], params: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    if isinstance(methods, str) or not methods:
        raise ValueError(f"methods must be a non-empty sequence of names, got {methods!r}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods listed twice: {list(methods)}")
    params = params or {}
    out = {}
    for name in methods:
        spec = get_method(name)
        resolved = dict(spec.resolve(params.get(name)))
        if resolved.get("smooth_samples", 0):
            raise ValueError(f"SmoothGrad is not supported in batch mode ({name})")
        out[name] = resolved
    return out


def _faces(faces: np.ndarray) -> np.ndarray:
    arr = np.asarray(faces)
    if arr.ndim != 4 or arr.shape[1:] != (TEMPLATE_SIZE, TEMPLATE_SIZE, 3) or arr.dtype != np.uint8:
        raise ValueError(f"faces must be (n, 112, 112, 3) uint8, got {arr.shape} {arr.dtype}")
    return arr


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
) -> dict[str, np.ndarray]:
    """Raw maps of ``n`` faces, each against its own target.

    Args:
        models: a model (``LoadedModel``, ``GestaltModel``, backbone) or a sequence (an ensemble);
            never modified.
        faces: ``(n, 112, 112, 3)`` uint8 RGB aligned faces; not modified.
        targets: ``n`` row targets; their reference rows follow ``variants``' order.
        methods: registry names; those in :data:`BATCHED_METHODS` share the batch passes.
        variants: explained variants (default: model 0, no flip, colour); maps are averaged over them.
        params: per-method parameter overrides (as :func:`gmx.explain.explain`).
        batch_size: rows per forward pass (``0``: 32 on CPU, 256 on CUDA).
        progress: ``progress(done_rows, n)`` after each batch.

    Returns:
        method -> ``(n, 112, 112)`` float32 maps placed on the template; rows whose target is
        invalid are NaN.

    Raises:
        ValueError: for bad faces, methods, variants, or targets that do not fit.
    """
    arr = _faces(faces)
    n = len(arr)
    if len(targets) != n:
        raise ValueError(f"{len(targets)} targets for {n} faces")
    resolved = _resolve(methods, params)
    model_list = list(models) if isinstance(models, (list, tuple)) else [models]
    pairs = [as_explain_model(m) for m in model_list]
    variants = tuple(variants) if variants is not None else (Variant(0),)
    if not variants:
        raise ValueError("variants must not be empty")
    for v in variants:
        if not isinstance(v, Variant) or not 0 <= v.model < len(pairs):
            raise ValueError(f"variant {v!r} names no model (have {len(pairs)})")
    if targets.reference.shape[1] != len(variants):
        raise ValueError(
            f"targets hold {targets.reference.shape[1]} reference row(s) per face for "
            f"{len(variants)} variant(s)"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"batch_size must be an int >= 0, got {batch_size!r}")
    emodels = [engine_model(p.backbone, p.classifier) for p in pairs]
    if batch_size == 0:
        batch_size = AUTO_BATCH[1] if emodels[0].device.type == "cuda" else AUTO_BATCH[0]

    fast = [m for m in resolved if m in BATCHED_METHODS]
    slow = [m for m in resolved if m not in BATCHED_METHODS]
    out: dict[str, np.ndarray] = {}
    acc: dict[str, list[np.ndarray]] = {m: [] for m in fast}
    rows_valid = np.flatnonzero(targets.valid)
    done = 0
    for start in range(0, len(rows_valid), batch_size):
        rows = rows_valid[start : start + batch_size]
        sub = targets.take(rows)
        sums: dict[str, torch.Tensor] = {}
        for vi, variant in enumerate(variants):
            pair, emodel = pairs[variant.model], emodels[variant.model]
            x = torch.cat([variant_input(arr[r], variant, pair.card) for r in rows])
            fn = sub.bind(vi, emodel.classifier, emodel.device)
            tracker = Progress(1, None, None, lambda: RuntimeError("not cancellable"))
            order = "RGB" if pair.card is None else str(getattr(pair.card, "colour_order", "RGB"))
            ws = Workspace(emodel, x, (fn,), tracker, order)
            try:
                for m in fast:
                    layer = resolved[m].get("layer")
                    if layer is not None and layer != MAPS_LAYER:
                        ws.want_layer(layer)
                for m in fast:
                    raw = BATCHED_METHODS[m](ws, resolved[m]).detach().float().cpu()
                    grid = cell_grid(pair.backbone, tuple(raw.shape[-2:]))
                    placed = place_map(raw, grid, flip=variant.flip)
                    sums[m] = placed if m not in sums else sums[m] + placed
            finally:
                ws.release()
        for m in fast:
            acc[m].append((sums[m] / len(variants)).numpy())
        if slow:
            for m in slow:
                acc.setdefault(m, [])
            for r in rows:
                target = _single_target(targets, int(r))
                maps = explain(
                    [p for p in pairs],
                    arr[r],
                    target,
                    variants,
                    methods=slow,
                    params={m: resolved[m] for m in slow},
                )
                for m in slow:
                    acc[m].append(maps[m].values[None].astype(np.float32))
        done += len(rows)
        if progress is not None:
            progress(done, len(rows_valid))
    for m in resolved:
        parts = acc.get(m, [])
        if parts:
            stacked = np.concatenate(parts)
            full = np.full((n, *stacked.shape[1:]), np.nan, np.float32)
            full[rows_valid] = stacked
        else:
            full = np.full((n, TEMPLATE_SIZE, TEMPLATE_SIZE), np.nan, np.float32)
        out[m] = full
    return out


def _single_target(targets: RowTargets, row: int):
    if targets.class_index[row] >= 0:
        return LogitTarget(int(targets.class_index[row]))
    return SimilarityTarget(targets.reference[row])


__all__ = ["AUTO_BATCH", "BATCHED_METHODS", "RowReducer", "batch_maps"]
