"""Registry of explanation methods: a dict and a decorator (timm-style ``list_*``/``get_*``).

Adding a method is one decorated function (~15 lines)::

    @register_method("inputxgrad", "Input x Gradient", family="input", signed=True,
                     citation="Shrikumar et al. 2016, arXiv:1605.01713")
    def _input_x_gradient(ws: Workspace, p: Mapping[str, Any]) -> torch.Tensor:
        return torch.stack([(ws.x * ws.gradients(t).input).sum(1)
                            for t in range(ws.n_targets)], dim=1)

A method receives a :class:`~gmx.explain.workspace.Workspace` (one variant of ``n`` input rows, its
model, its bound targets and the shared passes) and its parameters, and returns ``(n, T, h, w)`` raw
maps, one per input row and target. The rows are SmoothGrad's noisy copies of one face (the engine
averages them) or, for methods registered ``batchable=True``, ``n`` different faces explained at once
(:func:`gmx.explain.explain_batch` keeps them apart).

The built-in methods (:mod:`gmx.explain.methods`) register themselves when :mod:`gmx.explain` is
imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import torch

if TYPE_CHECKING:
    from gmx.explain.reference import ReferenceContext
    from gmx.explain.targets import Target
    from gmx.explain.workspace import Workspace

Family = Literal["input", "layer", "baseline"]
ComputeFn = Callable[["Workspace", Mapping[str, Any]], torch.Tensor]
ReferenceFn = Callable[["ReferenceContext", Mapping[str, Any]], torch.Tensor]
PlanFn = Callable[["Workspace", Mapping[str, Any]], None]
UnitsFn = Callable[[Mapping[str, Any], tuple[int, int], torch.device], int]
JointFn = Callable[
    [Sequence["Workspace"], Sequence["Target"], Sequence[bool], Mapping[str, Any]], torch.Tensor
]
"""All variants at once: ``(workspaces, targets, flips, params) -> (T, h, w)`` final maps (already
averaged over variants, in the face's orientation)."""
JointSelector = Callable[[Mapping[str, Any]], "JointFn | None"]

#: Parameters every gradient method accepts for SmoothGrad (Smilkov et al. 2017).
SMOOTHGRAD_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"smooth_samples": 0, "smooth_sigma": 0.15, "seed": 0}
)


@dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    Attributes:
        name: registry key.
        display_name: name for the UI.
        family: ``"input"`` (pixel attribution), ``"layer"`` (CAM family) or ``"baseline"``.
        signed: whether maps carry sign; a callable decides from the parameters.
        defaults: every accepted parameter with its default.
        compute: the engine implementation.
        reference: adapter over captum / pytorch-grad-cam (``None`` if no library has it).
        plan: optional hook declaring what the method needs from the shared pass (layers, biases).
        shared: the method reads the per-variant shared forward/backward pass (cheap once it exists).
        batchable: row ``i`` of the method's output depends only on input row ``i`` and target row
            ``i``, so a batch of different faces can share one workspace
            (:func:`gmx.explain.explain_batch`).
        smoothable: accepts the SmoothGrad parameters.
        citation: paper reference.
        units: progress units of one variant (batches), from parameters, input size and device.
        joint: for parameters whose score couples the variants (re-ranked occlusion), returns the
            implementation that sees every variant at once (``None``: per variant, then averaged).
    """

    name: str
    display_name: str
    family: Family
    signed: bool | Callable[[Mapping[str, Any]], bool]
    defaults: Mapping[str, Any]
    compute: ComputeFn
    reference: ReferenceFn | None = None
    plan: PlanFn | None = None
    shared: bool = False
    batchable: bool = False
    smoothable: bool = False
    citation: str = ""
    units: UnitsFn | None = None
    joint: JointSelector | None = None

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """Defaults merged with ``overrides``; unknown names raise ``ValueError``."""
        merged = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in merged:
                raise ValueError(
                    f"method {self.name!r} has no parameter {key!r}; known: {sorted(merged)}"
                )
            merged[key] = value
        return MappingProxyType(merged)

    def is_signed(self, params: Mapping[str, Any]) -> bool:
        """Whether maps made with ``params`` are signed."""
        return bool(self.signed(params)) if callable(self.signed) else bool(self.signed)

    def joint_fn(self, params: Mapping[str, Any]) -> JointFn | None:
        """The all-variants implementation for ``params``, or ``None`` (per variant)."""
        return None if self.joint is None else self.joint(params)


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    display_name: str,
    *,
    family: Family,
    signed: bool | Callable[[Mapping[str, Any]], bool],
    defaults: Mapping[str, Any] | None = None,
    reference: ReferenceFn | None = None,
    plan: PlanFn | None = None,
    shared: bool = False,
    batchable: bool = False,
    smoothable: bool = False,
    citation: str = "",
    units: UnitsFn | None = None,
    joint: JointSelector | None = None,
) -> Callable[[ComputeFn], ComputeFn]:
    """Decorator registering an engine implementation under ``name``.

    Raises:
        ValueError: if ``name`` is taken or ``family`` unknown.
    """
    if family not in ("input", "layer", "baseline"):
        raise ValueError(f"unknown family {family!r}")

    def decorate(fn: ComputeFn) -> ComputeFn:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is already registered")
        merged = dict(defaults or {})
        if smoothable:
            merged = {**merged, **SMOOTHGRAD_DEFAULTS}
        _REGISTRY[name] = MethodSpec(
            name=name,
            display_name=display_name,
            family=family,
            signed=signed,
            defaults=MappingProxyType(merged),
            compute=fn,
            reference=reference,
            plan=plan,
            shared=shared,
            batchable=batchable,
            smoothable=smoothable,
            citation=citation,
            units=units,
            joint=joint,
        )
        return fn

    return decorate


def unregister_method(name: str) -> None:
    """Remove a method (for plug-ins and tests). Raises ``ValueError`` if unknown."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}")
    del _REGISTRY[name]


def list_methods(family: Family | None = None) -> tuple[str, ...]:
    """Registered method names in registration order, optionally of one family."""
    return tuple(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` registered as ``name``.

    Raises:
        ValueError: if unknown (the message lists the known names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {list(_REGISTRY)}") from None


__all__ = [
    "SMOOTHGRAD_DEFAULTS",
    "JointFn",
    "MethodSpec",
    "get_method",
    "list_methods",
    "register_method",
    "unregister_method",
]
