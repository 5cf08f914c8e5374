"""Per-variant workspace: the shared forward/backward passes every gradient method reads.

One forward pass of a face variant (on the engine's private copy, with a context-scoped trace) serves
every target and every gradient method:

* ``gradients(t)``: one ordinary backward pass per target gives the gradient at the input, at any
  tapped layer (Grad-CAM family, default the ``forward_maps`` output) and at the output of every
  bias-carrying layer (FullGrad) at once.
* ``rule_gradient(rule, t)``: the same graph back-propagated with the guided-backprop or deconvnet
  rule (:mod:`gmx.explain.prelu`), one extra backward pass each, no extra forward.
* ``deeplift(baseline, t)``: one no-grad reference forward (shared by all targets, and by the
  variants of one model through ``reference_store``) and one backward
  pass with the rescale rule.

Passes run without hooks on any user model and without weight gradients (parameters of the private
copy never require grad), so a backward pass costs about one forward pass.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gmx.encode.model import IRESNET_NORM
from gmx.explain._trace import Trace, tracing
from gmx.explain.prepared import EngineModel
from gmx.explain.targets import TargetFn, is_rowwise

#: Name of the ``forward_maps`` output as a CAM layer (``bn2`` after ``layer4`` on iResNets).
MAPS_LAYER = "maps"

#: Modified backward rules :meth:`Workspace.rule_gradient` accepts.
RULE_GRADIENTS = ("guided", "deconv", "guided_relu", "deconv_relu")

#: Gauss-Legendre nodes used to integrate a target's gradient along the embedding path (DeepLIFT).
HEAD_PATH_STEPS = 64


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes in ``[0, 1]`` and weights (summing to 1) of ``n``-point Gauss-Legendre quadrature
    (solved once per ``n``: an eigenvalue problem, ~8 ms each time otherwise; copies returned)."""
    if n < 1:
        raise ValueError(f"need at least one step, got {n}")
    nodes, weights = _gauss_legendre(n)
    return nodes.copy(), weights.copy()


@functools.lru_cache(maxsize=32)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return 0.5 * (nodes + 1.0), 0.5 * weights


def path_gradient(
    target: TargetFn, start: torch.Tensor, end: torch.Tensor, steps: int = HEAD_PATH_STEPS
) -> torch.Tensor:
    """Average gradient of ``target`` on the straight line ``start -> end`` (per row).

    ``(path_gradient * (end - start)).sum(1) == target(end) - target(start)`` up to quadrature error,
    which makes it the exact DeepLIFT multiplier of a non-linear target head.

    Args:
        target: ``(n, D) -> (n,)``, called once per quadrature node with the ``n`` rows, or once
            on all ``steps * n`` rows if it is row-wise (:func:`gmx.explain.targets.rowwise`).
        start: ``(n, D)`` embeddings of the baseline.
        end: ``(n, D)`` embeddings of the input.
        steps: quadrature points.

    Returns:
        ``(n, D)`` float tensor.
    """
    alphas, weights = gauss_legendre(steps)
    a = torch.as_tensor(alphas, dtype=end.dtype, device=end.device)[:, None, None]
    w = torch.as_tensor(weights, dtype=end.dtype, device=end.device)[:, None, None]
    start = start.detach()
    end = end.detach()
    with torch.enable_grad():
        path = (start[None] + a * (end - start)[None]).requires_grad_(True)
        if is_rowwise(target):  # e.g. a cosine to one gallery row: all nodes in one call
            scores = target(path.reshape(-1, path.shape[-1])).reshape(path.shape[:2])
        else:
            # One call per quadrature node on the n rows, so a target that scores row i against
            # its own reference (gmx.explain.RowTarget) sees its rows in order.
            scores = torch.stack([target(p) for p in path])
        (grad,) = torch.autograd.grad(scores.sum(), path)
    return (grad * w).sum(0)


def _tile(t: torch.Tensor, groups: int) -> torch.Tensor:
    """``t`` repeated ``groups`` times along rows (a broadcast view for one row; ``t`` for one group)."""
    if groups == 1:
        return t
    if t.shape[0] == 1:
        return t.expand(groups, *t.shape[1:])
    return t.repeat(groups, *([1] * (t.dim() - 1)))


class Progress:
    """Counts work units, reports them and raises when the caller asks to stop."""

    def __init__(
        self,
        total: int,
        callback: Callable[[int, int], None] | None,
        should_stop: Callable[[], bool] | None,
        on_stop: Callable[[], BaseException],
    ) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self._callback = callback
        self._should_stop = should_stop
        self._on_stop = on_stop

    def check(self) -> None:
        """Raise the cancellation exception if the caller asked to stop."""
        if self._should_stop is not None and self._should_stop():
            raise self._on_stop()

    def step(self, units: int = 1) -> None:
        """Record ``units`` of finished work, report it, then check for cancellation."""
        self.done = min(self.done + int(units), self.total)
        if self._callback is not None:
            self._callback(self.done, self.total)
        self.check()


@dataclass(frozen=True)
class Gradients:
    """Ordinary gradients of one target from the shared pass (all tensors detached).

    Attributes:
        input: ``(n, 3, H, W)`` gradient at the input.
        layers: layer name -> ``(activation, gradient)``, each ``(n, C, h, w)``.
        biases: bias-layer name -> gradient at that layer's output ``(n, C, h, w)``.
    """

    input: torch.Tensor
    layers: dict[str, tuple[torch.Tensor, torch.Tensor]]
    biases: dict[str, torch.Tensor]


def precision_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``"bf16"``; a no-op for ``"fp32"``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` where this device runs bf16 natively, else ``"fp32"``."""
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        fast = (probe is not None and probe()) or (amx is not None and amx())
        return "bf16" if fast else "fp32"
    return "fp32"


@dataclass(eq=False)
class _Graph:
    """The retained shared forward pass of one workspace."""

    trace: Trace
    x: torch.Tensor
    maps: torch.Tensor
    emb: torch.Tensor
    scores: torch.Tensor
    bias: bool


@dataclass(eq=False)
class _Reference:
    """The DeepLIFT baseline pass (shared by all targets)."""

    key: str
    x0: torch.Tensor
    e0: torch.Tensor


@dataclass(frozen=True, eq=False)
class ReferencePass:
    """A DeepLIFT reference pass of one engine model: its input, embedding and the input of every
    PReLU call by call index (:attr:`gmx.explain._trace.Trace.refs`), all detached."""

    x0: torch.Tensor
    e0: torch.Tensor
    refs: dict[int, torch.Tensor]


class Workspace:
    """One face variant on one engine model, with its bound targets and shared passes.

    Args:
        model: the engine's private copy.
        x: ``(n, 3, H, W)`` float32 model input rows: SmoothGrad's noisy copies of one face, or
            ``n`` different faces for the batchable methods (:func:`gmx.explain.explain_batch`).
        targets: bound target functions, one per explained target.
        progress: progress/cancellation counter shared by the whole call.
        colour_order: channel order of ``x`` (``"RGB"`` or ``"BGR"``, from the model's card).
        norm: the model's input normalisation ``(mean, std)`` per channel (``x / 255`` units,
            :func:`gmx.encode.input_norm`).
        reference_store: DeepLIFT reference passes shared by the workspaces of one engine model in
            one call (the baseline does not depend on the variant: a flipped or grey copy of the
            face has the same reference pass); ``None``: each workspace runs its own.
        groups: ``x`` is this many equal blocks of rows (the TTA variants of one model stacked into
            one batch, each block bound to its own target rows by
            :func:`gmx.explain.targets.stacked`); the DeepLIFT reference pass runs on one block's
            rows and serves every block.
    """

    def __init__(
        self,
        model: EngineModel,
        x: torch.Tensor,
        targets: Sequence[TargetFn],
        progress: Progress,
        colour_order: str = "RGB",
        norm: tuple[Sequence[float], Sequence[float]] = IRESNET_NORM,
        reference_store: dict[tuple[str, tuple[int, ...]], ReferencePass] | None = None,
        groups: int = 1,
    ) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be (n, 3, H, W), got {tuple(x.shape)}")
        if not targets:
            raise ValueError("need at least one target")
        if groups < 1 or x.shape[0] % groups:
            raise ValueError(f"{x.shape[0]} rows do not split into {groups} equal groups")
        self.model = model
        self.device = model.device
        self.x = x.detach().to(self.device, torch.float32)
        self.targets = tuple(targets)
        self.progress = progress
        self.colour_order = colour_order
        self.norm = (tuple(norm[0]), tuple(norm[1]))
        self._layers: set[str] = {MAPS_LAYER}
        self._bias = False
        self._graph: _Graph | None = None
        self._grad_cache: dict[int, Gradients] = {}
        self._rule_cache: dict[tuple[str, int], torch.Tensor] = {}
        self._ref: _Reference | None = None
        self._reference_store = reference_store
        self.groups = groups
        self.shared_s = 0.0

    @property
    def n_targets(self) -> int:
        """Number of targets explained (maps returned per method)."""
        return len(self.targets)

    @property
    def backbone(self) -> torch.nn.Module:
        """The engine copy of the backbone."""
        return self.model.backbone

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.shared_s += time.perf_counter() - start

    # -- planning ---------------------------------------------------------------------------
    def want_layer(self, name: str) -> None:
        """Declare that a method needs activations/gradients at layer ``name``."""
        if name != MAPS_LAYER and name not in self.model.module_names:
            raise ValueError(
                f"unknown layer {name!r}: use {MAPS_LAYER!r} (the forward_maps output) or a module "
                f"name such as 'layer4' or 'layer3.5'"
            )
        self._layers.add(name)

    def want_bias(self) -> None:
        """Declare that a method needs gradients at every bias-carrying layer (FullGrad)."""
        self._bias = True

    # -- shared forward ---------------------------------------------------------------------
    def _ensure_graph(self) -> _Graph:
        graph = self._graph
        if graph is not None:
            have = set(graph.trace.recorded) | {MAPS_LAYER}
            if self._layers <= have and (not self._bias or graph.bias):
                return graph
            # A method asked for more than was planned: rebuild (correct, only slower).
            self.release()
        with self._timed():
            trace = Trace(taps=frozenset(self._layers - {MAPS_LAYER}), record_bias=self._bias)
            x = self.x.clone().requires_grad_(True)
            with torch.enable_grad(), tracing(trace):
                trace.new_pass()
                maps = self.backbone.forward_maps(x)
                emb = self.backbone.head(maps)
                scores = torch.stack([t(emb) for t in self.targets], dim=1)
            self._graph = _Graph(trace, x, maps, emb, scores, self._bias)
        return self._graph

    def scores(self) -> torch.Tensor:
        """``(n, T)`` target scores of the input rows (detached)."""
        return self._ensure_graph().scores.detach()

    def embedding(self) -> torch.Tensor:
        """``(n, D)`` embeddings of the input rows (detached)."""
        return self._ensure_graph().emb.detach()

    def activation(self, layer: str) -> torch.Tensor:
        """``(n, C, h, w)`` detached output of ``layer`` in the shared pass."""
        self.want_layer(layer)
        graph = self._ensure_graph()
        if layer == MAPS_LAYER:
            return graph.maps.detach()
        return graph.trace.recorded[layer].detach()

    def gradients(self, t: int) -> Gradients:
        """Ordinary gradients of target ``t`` at the input and at every planned layer."""
        cached = self._grad_cache.get(t)
        if (
            cached is not None
            and self._layers <= set(cached.layers)
            and (not self._bias or bool(cached.biases) or not self.model.biases)
        ):
            return cached
        graph = self._ensure_graph()
        with self._timed():
            trace = graph.trace
            layer_names = sorted(self._layers)
            bias_names = [n for n in self.model.biases if n in trace.recorded] if graph.bias else []
            tensors = [graph.x]
            for name in layer_names:
                tensors.append(graph.maps if name == MAPS_LAYER else trace.recorded[name])
            tensors += [trace.recorded[n] for n in bias_names]
            trace.rule = "gradient"
            grads = torch.autograd.grad(
                graph.scores[:, t].sum(), tensors, retain_graph=True, allow_unused=True
            )
            grads = [
                torch.zeros_like(ten) if g is None else g.detach()
                for ten, g in zip(tensors, grads, strict=True)
            ]
            layers = {
                name: (tensors[1 + i].detach(), grads[1 + i]) for i, name in enumerate(layer_names)
            }
            offset = 1 + len(layer_names)
            biases = {name: grads[offset + i] for i, name in enumerate(bias_names)}
            result = Gradients(input=grads[0], layers=layers, biases=biases)
        self._grad_cache[t] = result
        return result

    def rule_gradient(self, rule: str, t: int) -> torch.Tensor:
        """``(n, 3, H, W)`` input gradient of target ``t`` with a modified ReLU rule.

        Args:
            rule: ``"guided"`` (guided backprop), ``"deconv"`` (deconvnet), or ``"guided_relu"`` /
                ``"deconv_relu"`` (the same with PReLUs treated as ReLUs, see :mod:`~gmx.explain.prelu`).
        """
        if rule not in RULE_GRADIENTS:
            raise ValueError(f"rule must be one of {RULE_GRADIENTS}, got {rule!r}")
        key = (rule, t)
        cached = self._rule_cache.get(key)
        if cached is not None:
            return cached
        graph = self._ensure_graph()
        with self._timed():
            graph.trace.rule = rule
            try:
                (grad,) = torch.autograd.grad(graph.scores[:, t].sum(), graph.x, retain_graph=True)
            finally:
                graph.trace.rule = "gradient"
        self._rule_cache[key] = grad.detach()
        return self._rule_cache[key]

    def deeplift(self, baseline: torch.Tensor, baseline_key: str, t: int) -> torch.Tensor:
        """DeepLIFT (rescale rule) attributions ``(n, 3, H, W)`` of target ``t``.

        The target head (embedding -> score, e.g. a cosine) is treated as one non-linear unit
        whose multipliers are its gradient averaged along the embedding path from the baseline's
        embedding to the input's (:func:`path_gradient`), so summation-to-delta holds exactly for the
        whole model: ``attributions.sum() == f(x) - f(baseline)``.

        Args:
            baseline: ``(1, 3, H, W)`` or ``(n, 3, H, W)`` reference input.
            baseline_key: identifies the baseline (the reference pass is reused for equal keys).
        """
        if not self.model.rescale_ok:
            raise ValueError(
                "this backbone has non-linear modules other than ReLU/PReLU; the engine's DeepLIFT "
                "only implements the rescale rule for those: use backend='reference'"
            )
        graph = self._ensure_graph()
        trace = graph.trace
        with self._timed():
            if self._ref is None or self._ref.key != baseline_key:
                store = self._reference_store
                block = (self.x.shape[0] // self.groups, *self.x.shape[1:])
                store_key = (baseline_key, block)
                shared = store.get(store_key) if store is not None else None
                if shared is None:
                    x0 = baseline.to(self.device, torch.float32).expand(block).contiguous()
                    with torch.no_grad(), tracing(trace):
                        trace.new_pass(record_refs=True)
                        try:
                            e0 = self.backbone.head(self.backbone.forward_maps(x0))
                        finally:
                            trace.record_refs = False
                    shared = ReferencePass(x0, e0, dict(trace.refs))
                    if store is not None:
                        store[store_key] = shared
                # One block's reference serves every block: the same rows, repeated.
                trace.refs = {k: _tile(v, self.groups) for k, v in shared.refs.items()}
                self._ref = _Reference(
                    baseline_key, _tile(shared.x0, self.groups), _tile(shared.e0, self.groups)
                )
            ref = self._ref
            mult = path_gradient(self.targets[t], ref.e0, graph.emb)
            trace.rule = "rescale"
            try:
                # (emb * mult).sum() back-propagates exactly ``mult`` into emb (1 * m == m), and
                # a scalar output spares torch's first explicit ``grad_outputs`` of the process
                # importing sympy (1-2 s in the first Explain view).
                (grad,) = torch.autograd.grad((graph.emb * mult).sum(), graph.x, retain_graph=True)
            finally:
                trace.rule = "gradient"
        return ((self.x - ref.x0) * grad).detach()

    def baseline_scores(self, t: int) -> torch.Tensor:
        """``(n,)`` score of target ``t`` at the last DeepLIFT baseline."""
        if self._ref is None:
            raise ValueError("no DeepLIFT reference pass has run yet")
        with torch.no_grad():
            return self.targets[t](self._ref.e0).detach()

    def release(self) -> None:
        """Drop the retained graph and caches (frees memory early)."""
        self._graph = None
        self._grad_cache.clear()
        self._rule_cache.clear()
        self._ref = None


__all__ = [
    "HEAD_PATH_STEPS",
    "MAPS_LAYER",
    "Gradients",
    "Progress",
    "ReferencePass",
    "Workspace",
    "gauss_legendre",
    "path_gradient",
    "precision_context",
    "resolve_precision",
]
