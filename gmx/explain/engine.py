"""The explanation engine: many methods, targets and TTA variants of one face, with shared work.

``explain(models, face, target, variants)`` returns one :class:`~gmx.explain.result.AttributionMap`
per method. For every variant (model x flip x grey, GestaltMatcher-Arc's TTA) the face is transformed
like the encoder transforms it and explained against that variant's row of the target; its map is
placed on the face with its backbone's cell grid (:func:`gmx.encode.geometry.cell_grid`) in the frame
it was computed in, mirrored back at pixel level if it was flipped, and the placed maps are averaged.
For methods positively homogeneous in the target (signed gradient rules, DeepLIFT, IG, occlusion,
signed CAMs) that is the explanation of the mean similarity over variants, GestaltMatcher-Arc's score;
for the others (Saliency, FullGrad, ReLU'd CAMs) it is the mean of per-variant maps (docs/explain.md,
"Model/TTA variants"). Re-ranked occlusion sees all variants at once (``MethodSpec.joint``).

Methods that read the shared pass (Saliency, Deconvolution, Guided Backprop, DeepLIFT and the CAM
family) run first, variant by variant, from one forward pass; batched methods (Integrated Gradients,
Occlusion) follow. ``iter_explain`` yields maps as they finish so a UI can render fast results first;
``progress(done, total)`` and ``should_stop()`` are called between batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from gmx._typing import ImageU8
from gmx.constants import NORM_MEAN, NORM_STD, TEMPLATE_SIZE
from gmx.encode import preprocess, rgb_to_grey
from gmx.encode.geometry import cell_grid, place_map
from gmx.errors import GmxError
from gmx.explain.prepared import (
    EngineModel,
    check_backbone,
    device_of,
    engine_model,
    reference_model,
)
from gmx.explain.reference import ReferenceContext
from gmx.explain.registry import MethodSpec, get_method
from gmx.explain.result import AttributionMap
from gmx.explain.targets import Target
from gmx.explain.workspace import Progress, Workspace
from gmx.variants import Variant

#: The thesis panel (3.2 and 3.3): the nine methods of the benchmark, in display order. The thesis
#: uses *unfiltered* layer maps (3.3.1: "this work uses unfiltered heat maps, which consists of
#: negatively correlated regions as well"), so the panel shows signed Grad-CAM and HiResCAM; the
#: ReLU'd ``gradcam`` / ``hirescam`` stay available by name.
THESIS_PANEL: tuple[str, ...] = (
    "occlusion",
    "saliency",
    "deconvolution",
    "guided_backprop",
    "deeplift",
    "integrated_gradients",
    "gradcam_signed",
    "hirescam_signed",
    "fullgrad",
)

Backend = Literal["engine", "reference"]


class ExplanationCancelled(GmxError):
    """The caller's ``should_stop`` asked to stop; :attr:`completed` holds the maps already made.

    Attributes:
        completed: one dict per target (as ``explain_targets`` returns) of the finished methods.
    """

    def __init__(self, completed: Sequence[Mapping[str, AttributionMap]] = ()) -> None:
        super().__init__("explanation cancelled by the caller")
        self.completed = tuple(dict(c) for c in completed)


@dataclass(frozen=True)
class ExplainModel:
    """A backbone plus its optional classifier (for ``LogitTarget``) and input card.

    Attributes:
        backbone: ``nn.Module`` with ``forward_maps(x) -> (N, C, h, w)`` and ``head(maps) -> (N, D)``.
        classifier: ``nn.Module`` mapping ``(N, D)`` embeddings to logits, or ``None``.
        card: the model's :class:`gmx.encode.ModelCard` (channel order, normalisation); ``None``
            means the iResNet default (RGB, ``(x / 255 - 0.5) / 0.5``).
    """

    backbone: nn.Module
    classifier: nn.Module | None = None
    card: Any = None


def as_explain_model(model: Any, classifier: nn.Module | None = None) -> ExplainModel:
    """Accept a backbone, an :class:`ExplainModel`, a ``GestaltModel`` or a ``LoadedModel``.

    Raises:
        ValueError: if no usable backbone is found.
    """
    if isinstance(model, ExplainModel):
        if classifier is None:
            return model
        return ExplainModel(model.backbone, classifier, model.card)
    card = getattr(model, "card", None)
    if card is not None and getattr(model, "model", None) is not None:  # LoadedModel
        inner = as_explain_model(model.model, classifier)
        return ExplainModel(inner.backbone, inner.classifier, card)
    if isinstance(model, nn.Module) and callable(getattr(model, "forward_maps", None)):
        return ExplainModel(check_backbone(model), classifier)
    backbone = getattr(model, "backbone", None)
    if backbone is not None:
        own = getattr(model, "classifier", None)
        return ExplainModel(check_backbone(backbone), classifier if classifier is not None else own)
    raise ValueError(
        f"cannot explain {type(model).__name__}: pass a backbone with forward_maps/head, an "
        "ExplainModel, a GestaltModel or a LoadedModel"
    )


def _check_face(face: ImageU8) -> np.ndarray:
    arr = np.asarray(face)
    if arr.dtype != np.uint8 or arr.shape != (TEMPLATE_SIZE, TEMPLATE_SIZE, 3):
        raise ValueError(
            f"face must be a (112, 112, 3) uint8 RGB aligned face, got {arr.shape} {arr.dtype}"
        )
    return arr


def face_tensor(face: ImageU8) -> torch.Tensor:
    """``(112, 112, 3)`` uint8 RGB -> ``(1, 3, 112, 112)`` float32 in ``[-1, 1]`` (iResNet input).

    Raises:
        ValueError: for any other shape or dtype.
    """
    arr = _check_face(face)
    x = torch.from_numpy(np.array(arr, dtype=np.float32, copy=True)).permute(2, 0, 1)[None]
    return ((x / 255.0 - NORM_MEAN) / NORM_STD).contiguous()


def variant_input(face: ImageU8, variant: Variant, card: Any = None) -> torch.Tensor:
    """The encoder's input for one TTA variant of ``face``: ``(1, 3, 112, 112)`` float32.

    Exactly what :mod:`gmx.encode` feeds the model (:func:`gmx.encode.preprocess`): grey is
    OpenCV-exact BT.601 luma of the uint8 face on all three channels, then the mirror, then the
    card's channel order and normalisation.

    Args:
        face: ``(112, 112, 3)`` uint8 RGB aligned face; not modified.
        variant: which flip/grey (its ``model`` index is not used here).
        card: the model's ``ModelCard``; ``None`` for the iResNet default.

    Raises:
        ValueError: for a bad face, or a card the engine cannot explain (not 3x112x112).
    """
    arr = _check_face(face)
    if card is None:
        pixels = arr
        if variant.grey:
            pixels = np.repeat(rgb_to_grey(arr)[..., None], 3, axis=-1)
        if variant.flip:
            pixels = pixels[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).to(torch.float32)
        return ((x[None] / 255.0 - NORM_MEAN) / NORM_STD).contiguous()
    if getattr(card, "channels", 3) != 3 or getattr(card, "input_size", 112) != TEMPLATE_SIZE:
        raise ValueError(
            f"the engine explains 3x112x112 models; card {getattr(card, 'name', card)!r} has "
            f"{card.channels} channel(s) at {card.input_size}px"
        )
    return preprocess(arr[None], card, flip=variant.flip, grey=variant.grey)


def _colour_order(pair: ExplainModel) -> str:
    return "RGB" if pair.card is None else str(getattr(pair.card, "colour_order", "RGB"))


def _norm(pair: ExplainModel) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The model's ``(mean, std)`` in the input's channel order."""
    if pair.card is None:
        return (NORM_MEAN,) * 3, (NORM_STD,) * 3
    return tuple(pair.card.mean), tuple(pair.card.std)


def _stop_checker(should_stop: Any) -> Callable[[], bool] | None:
    if should_stop is None:
        return None
    if callable(getattr(should_stop, "is_set", None)):
        return should_stop.is_set
    if callable(should_stop):
        return should_stop
    raise ValueError(f"should_stop must be a callable or a threading.Event, got {should_stop!r}")


def _smooth_key(spec: MethodSpec, params: Mapping[str, Any]) -> tuple[int, float, int] | None:
    if not spec.smoothable:
        return None
    n = params["smooth_samples"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"smooth_samples must be an int >= 0, got {n!r}")
    if n == 0:
        return None
    sigma = params["smooth_sigma"]
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"smooth_sigma must be > 0, got {sigma!r}")
    return n, float(sigma), int(params["seed"])


def smoothgrad_rows(x: torch.Tensor, samples: int, sigma: float, seed: int) -> torch.Tensor:
    """SmoothGrad inputs (Smilkov et al. 2017): ``samples`` noisy copies of ``x`` ``(1, 3, H, W)``.

    ``sigma`` is the noise standard deviation as a fraction of the input range (``[-1, 1]``, width 2).
    The noise comes from a CPU generator seeded with ``seed`` (same on every device).
    """
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn((samples, *x.shape[1:]), generator=gen) * (2.0 * sigma)
    return x + noise.to(x.device)


@dataclass
class _Job:
    spec: MethodSpec
    params: Mapping[str, Any]
    acc: torch.Tensor | None = None
    placed: torch.Tensor | None = None
    frames: set[tuple[Any, bool]] | None = None
    elapsed: float = 0.0
    averaged: bool = False  # acc is already the variant average (a joint method)


def _resolve_jobs(
    methods: Sequence[str], params: Mapping[str, Mapping[str, Any]] | None
) -> list[_Job]:
    if isinstance(methods, str):
        methods = (methods,)
    if not methods:
        raise ValueError("no methods requested")
    params = params or {}
    for name in params:
        get_method(name)  # unknown names raise (typos); params of unrequested methods are ignored
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods listed twice: {list(methods)}")
    jobs = []
    for name in methods:
        spec = get_method(name)
        resolved = spec.resolve(params.get(name))
        _smooth_key(spec, resolved)  # validates
        jobs.append(_Job(spec, resolved))
    return jobs


def _units(job: _Job, hw: tuple[int, int], device: torch.device) -> int:
    return int(job.spec.units(job.params, hw, device)) if job.spec.units is not None else 1


def iter_explain(
    models: Any,
    face: ImageU8,
    targets: Sequence[Target],
    variants: Sequence[Variant] | None = None,
    *,
    methods: Sequence[str] = THESIS_PANEL,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
    backend: Backend = "engine",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | Any | None = None,
) -> Iterator[tuple[int, AttributionMap]]:
    """Yield ``(target_index, map)`` pairs as methods finish (shared-pass methods first).

    Arguments as :func:`explain_targets`; they are validated before the first item is requested
    (``ValueError`` at call time). Raises :class:`ExplanationCancelled` when stopped.
    """
    model_list = list(models) if isinstance(models, (list, tuple)) else [models]
    if not model_list:
        raise ValueError("need at least one model")
    if classifiers is not None and len(classifiers) != len(model_list):
        raise ValueError(f"{len(classifiers)} classifiers for {len(model_list)} models")
    pairs = [
        as_explain_model(m, None if classifiers is None else classifiers[i])
        for i, m in enumerate(model_list)
    ]
    targets = tuple(targets)
    if not targets or not all(isinstance(t, Target) for t in targets):
        raise ValueError(f"targets must be a non-empty sequence of Target, got {targets!r}")
    variants = tuple(variants) if variants is not None else (Variant(0),)
    if not variants:
        raise ValueError("variants must not be empty")
    for v in variants:
        if not isinstance(v, Variant) or not 0 <= v.model < len(pairs):
            raise ValueError(f"variant {v!r} names no model (have {len(pairs)})")
    if backend not in ("engine", "reference"):
        raise ValueError(f"backend must be 'engine' or 'reference', got {backend!r}")
    jobs = _resolve_jobs(methods, params)
    for job in jobs:
        if backend == "reference" and job.spec.reference is None:
            raise ValueError(f"method {job.spec.name!r} has no reference implementation")
        if backend == "reference" and job.spec.joint_fn(job.params) is not None:
            raise ValueError(
                f"method {job.spec.name!r} with {dict(job.params)} couples the variants and has "
                "no reference implementation: use backend='engine'"
            )
    face = _check_face(face)
    return _run(pairs, face, targets, variants, jobs, backend, progress, should_stop)


def _run(
    pairs: list[ExplainModel],
    face: np.ndarray,
    targets: tuple[Target, ...],
    variants: tuple[Variant, ...],
    jobs: list[_Job],
    backend: Backend,
    progress: Callable[[int, int], None] | None,
    should_stop: Any,
) -> Iterator[tuple[int, AttributionMap]]:
    hw = (TEMPLATE_SIZE, TEMPLATE_SIZE)
    devices = [device_of(p.backbone) for p in pairs]

    completed: list[dict[str, AttributionMap]] = [{} for _ in targets]
    tracker = Progress(
        total=sum(_units(j, hw, devices[v.model]) for j in jobs for v in variants),
        callback=progress,
        should_stop=_stop_checker(should_stop),
        on_stop=lambda: ExplanationCancelled(completed),
    )
    tracker.check()

    def finish(job: _Job) -> Iterator[tuple[int, AttributionMap]]:
        assert job.acc is not None
        if job.averaged:
            # A joint method: already the variant average, in the face's own orientation.
            if tuple(job.acc.shape[-2:]) != hw:
                raise RuntimeError(f"joint method {job.spec.name!r} must return {hw} pixel maps")
            raw = values = job.acc
        else:
            assert job.placed is not None and job.frames is not None
            values = job.placed / len(variants)
            # ``raw`` stays at native resolution only where one cell grid holds every variant: all
            # unflipped on one grid (or pixel maps, whose mirror is exact); otherwise ``values``.
            (grid, flipped), *others = job.frames
            one_frame = not others and (not flipped or grid.shape == hw)
            raw = job.acc / len(variants) if one_frame else values
        for ti, target in enumerate(targets):
            amap = AttributionMap(
                method=job.spec.name,
                display_name=job.spec.display_name,
                target_description=target.description,
                values=values[ti].detach().cpu().numpy(),
                raw=raw[ti].detach().cpu().numpy(),
                signed=job.spec.is_signed(job.params),
                params=job.params,
                elapsed_s=job.elapsed,
                variants=variants,
                backend=backend,
            )
            completed[ti][job.spec.name] = amap
            yield ti, amap

    def accumulate(job: _Job, raw: torch.Tensor, variant: Variant, elapsed: float) -> None:
        if raw.dim() != 3 or raw.shape[0] != len(targets):
            raise RuntimeError(
                f"method {job.spec.name!r} returned shape {tuple(raw.shape)}, expected (T, h, w)"
            )
        raw = raw.detach().float().cpu()
        # Place in the variant's own frame with its backbone's grid, then mirror the pixels.
        grid = cell_grid(pairs[variant.model].backbone, tuple(raw.shape[-2:]))
        placed = place_map(raw, grid, flip=variant.flip)
        if raw.shape[-2:] == hw and variant.flip:
            raw = placed  # pixel maps: the mirror is exact
        job.acc = raw if job.acc is None else job.acc + raw
        job.placed = placed if job.placed is None else job.placed + placed
        job.frames = (job.frames or set()) | {(grid, variant.flip)}
        job.elapsed += elapsed

    if backend == "reference":
        for job in jobs:
            for vi, variant in enumerate(variants):
                pair = pairs[variant.model]
                rmodel = reference_model(pair.backbone, pair.classifier)
                start = time.perf_counter()
                with rmodel.lock:
                    ctx = ReferenceContext(
                        model=rmodel,
                        x=_rows(job, variant_input(face, variant, pair.card)).to(rmodel.device),
                        targets=tuple(t.bind(vi, rmodel.classifier) for t in targets),
                        colour_order=_colour_order(pair),
                        norm=_norm(pair),
                    )
                    raw = job.spec.reference(ctx, job.params)  # type: ignore[misc]
                accumulate(job, raw, variant, time.perf_counter() - start)
                tracker.step(_units(job, hw, devices[variant.model]))
            yield from finish(job)
        return

    emodels: dict[int, EngineModel] = {}

    def workspace(vi: int, variant: Variant, job: _Job) -> Workspace:
        """A fresh workspace for one variant, with the job's SmoothGrad rows if it has them."""
        pair = pairs[variant.model]
        if variant.model not in emodels:
            emodels[variant.model] = engine_model(pair.backbone, pair.classifier)
        emodel = emodels[variant.model]
        return Workspace(
            emodel,
            _rows(job, variant_input(face, variant, pair.card)),
            tuple(t.bind(vi, emodel.classifier) for t in targets),
            tracker,
            _colour_order(pair),
            _norm(pair),
        )

    shared = [j for j in jobs if j.spec.shared or j.spec.family == "baseline"]
    others = [j for j in jobs if not (j.spec.shared or j.spec.family == "baseline")]

    if shared:
        for vi, variant in enumerate(variants):
            # One workspace (one shared forward pass) per variant and SmoothGrad setting.
            spaces: dict[tuple[int, float, int] | None, Workspace] = {}
            for job in shared:
                key = _smooth_key(job.spec, job.params)
                if key not in spaces:
                    spaces[key] = workspace(vi, variant, job)
                if job.spec.plan is not None:
                    job.spec.plan(spaces[key], job.params)
            try:
                for job in shared:
                    start = time.perf_counter()
                    raw = job.spec.compute(spaces[_smooth_key(job.spec, job.params)], job.params)
                    accumulate(job, raw, variant, time.perf_counter() - start)
                    tracker.step(_units(job, hw, devices[variant.model]))
            finally:
                for space in spaces.values():
                    space.release()
        for job in shared:
            yield from finish(job)

    for job in others:
        joint = job.spec.joint_fn(job.params)
        if joint is not None:  # the score couples the variants: one call sees them all
            spaces = [workspace(vi, variant, job) for vi, variant in enumerate(variants)]
            start = time.perf_counter()
            try:
                raw = joint(spaces, targets, [v.flip for v in variants], job.params)
            finally:
                for space in spaces:
                    space.release()
            job.acc, job.averaged = raw.detach().float().cpu(), True
            job.elapsed += time.perf_counter() - start
            yield from finish(job)
            continue
        for vi, variant in enumerate(variants):
            space = workspace(vi, variant, job)
            start = time.perf_counter()
            try:
                raw = job.spec.compute(space, job.params)
            finally:
                space.release()
            accumulate(job, raw, variant, time.perf_counter() - start)
            if job.spec.units is None:  # methods without batches count one unit per variant
                tracker.step()
        yield from finish(job)


def _rows(job: _Job, x_v: torch.Tensor) -> torch.Tensor:
    key = _smooth_key(job.spec, job.params)
    return x_v if key is None else smoothgrad_rows(x_v, *key)


def explain_targets(
    models: Any,
    face: ImageU8,
    targets: Sequence[Target],
    variants: Sequence[Variant] | None = None,
    *,
    methods: Sequence[str] = THESIS_PANEL,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
    backend: Backend = "engine",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | Any | None = None,
) -> tuple[dict[str, AttributionMap], ...]:
    """Explain several targets (e.g. the top-5 syndromes) of one face, sharing every forward pass.

    Args:
        models: one backbone / :class:`ExplainModel` / ``GestaltModel``, or a sequence (an
            ensemble); never modified (the engine works on private cached copies).
        face: ``(112, 112, 3)`` uint8 RGB aligned face.
        targets: what to explain; a ``SimilarityTarget`` holds one gallery row per variant.
        variants: model/TTA variants to average (default: model 0, no flip, colour).
        methods: registry names (see :func:`~gmx.explain.registry.list_methods`).
        params: per-method parameter overrides, e.g. ``{"occlusion": {"stride": 8}}``.
        classifiers: per-model classifiers, overriding those found on ``models``.
        backend: ``"engine"`` (batched, shared passes) or ``"reference"`` (captum/grad-cam).
        progress: called as ``progress(done, total)`` after each batch.
        should_stop: callable or ``threading.Event``; checked between batches.

    Returns:
        One dict per target, method name -> :class:`AttributionMap`, in the requested order.

    Raises:
        ExplanationCancelled: if ``should_stop`` fired (finished maps attached).
        ValueError: for an unknown method/parameter, a bad face, or a target that does not fit.
    """
    out: list[dict[str, AttributionMap]] = [{} for _ in targets]
    for ti, amap in iter_explain(
        models,
        face,
        targets,
        variants,
        methods=methods,
        params=params,
        classifiers=classifiers,
        backend=backend,
        progress=progress,
        should_stop=should_stop,
    ):
        out[ti][amap.method] = amap
    names = [methods] if isinstance(methods, str) else list(methods)
    return tuple({n: d[n] for n in names} for d in out)


def explain(
    models: Any,
    face: ImageU8,
    target: Target,
    variants: Sequence[Variant] | None = None,
    *,
    methods: Sequence[str] = THESIS_PANEL,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    classifiers: Sequence[nn.Module | None] | None = None,
    backend: Backend = "engine",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | Any | None = None,
) -> dict[str, AttributionMap]:
    """Explain one target of one face with several methods, averaged over ``variants``.

    See :func:`explain_targets` for the arguments. Returns method name -> :class:`AttributionMap`.
    """
    return explain_targets(
        models,
        face,
        (target,),
        variants,
        methods=methods,
        params=params,
        classifiers=classifiers,
        backend=backend,
        progress=progress,
        should_stop=should_stop,
    )[0]


__all__ = [
    "THESIS_PANEL",
    "ExplainModel",
    "ExplanationCancelled",
    "as_explain_model",
    "explain",
    "explain_targets",
    "face_tensor",
    "iter_explain",
    "smoothgrad_rows",
    "variant_input",
]
