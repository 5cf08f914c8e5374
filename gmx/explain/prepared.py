"""Private, cached copies of the user's models (the engine never hooks or mutates a user's model).

Two kinds of copy per model, each built once under a lock and rebuilt when the model's parameters or
buffers change (tracked by tensor identity and autograd version counters):

* the **engine copy**: PReLU/ReLU rewritten as :class:`~gmx.explain.prelu.DecomposedPReLU`, eval
  mode, ``requires_grad=False`` everywhere, channels-last weights, and *permanent* forward taps that only act when a
  :class:`~gmx.explain._trace.Trace` is active in the calling thread. It is read-only after
  construction, so any number of threads may run it at once.
* the **reference copy** for captum / pytorch-grad-cam: PReLU rewritten with ``nn.ReLU`` modules
  (captum's rules need them), eval mode, parameters requiring grad (pytorch-grad-cam calls
  ``backward()``). Those libraries add hooks and write ``.grad``, so every use holds its lock.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Hashable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from gmx.explain._trace import active_trace
from gmx.explain.prelu import DecomposedPReLU, decompose_prelu

#: Activation modules whose DeepLIFT rule the engine implements (others need the reference backend).
_RESCALE_OK = (DecomposedPReLU, nn.ReLU, nn.PReLU)
_OTHER_NONLINEAR = (
    nn.ELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softmax,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.ReLU6,
)


def check_backbone(backbone: Any) -> nn.Module:
    """Return ``backbone`` if it is an ``nn.Module`` with ``forward_maps`` and ``head``.

    Raises:
        ValueError: otherwise, naming what is missing.
    """
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"expected an nn.Module backbone, got {type(backbone).__name__}")
    missing = [n for n in ("forward_maps", "head") if not callable(getattr(backbone, n, None))]
    if missing:
        raise ValueError(
            f"{type(backbone).__name__} lacks {missing}: the engine needs forward_maps(x) -> "
            "(N, C, h, w) and head(maps) -> (N, D)"
        )
    return backbone


def state_signature(module: nn.Module) -> tuple[Hashable, ...]:
    """Cheap fingerprint of a module's tensors: identity, storage and in-place version of each."""
    sig: list[Hashable] = []
    for t in (*module.parameters(), *module.buffers()):
        sig.append((id(t), t.data_ptr(), t._version, str(t.device), str(t.dtype), tuple(t.shape)))
    return tuple(sig)


def effective_bias(module: nn.Module) -> torch.Tensor | None:
    """FullGrad's bias of a ``Conv2d`` / eval ``BatchNorm2d`` (Srinivas & Fleuret 2019), else None.

    For BatchNorm the implicit bias is ``beta - running_mean * gamma / sqrt(running_var + eps)``.
    Like pytorch-grad-cam, only modules whose type is exactly ``Conv2d``/``BatchNorm2d`` and that
    have a bias count.
    """
    if type(module) is nn.Conv2d and module.bias is not None:
        return module.bias.detach()
    if type(module) is nn.BatchNorm2d and module.bias is not None:
        if module.running_mean is None or module.running_var is None or module.weight is None:
            return None
        scale = module.weight.detach() / torch.sqrt(module.running_var + module.eps)
        return module.bias.detach() - module.running_mean * scale
    return None


def _make_tap(name: str, has_bias: bool):
    def tap(module: nn.Module, inputs: Any, output: Any) -> None:
        trace = active_trace()
        if trace is not None and isinstance(output, torch.Tensor):
            trace.on_output(name, module, output, has_bias)

    return tap


@dataclass(eq=False)
class EngineModel:
    """The engine's private copy of one backbone (+ classifier).

    Attributes:
        backbone: rewritten copy (eval, no grad, permanent context-scoped taps).
        classifier: copy of the classifier or ``None``.
        biases: module name -> FullGrad effective bias ``(C,)`` for every bias-carrying layer.
        module_names: names of the copy's modules (valid CAM layers).
        rescale_ok: every non-linear module has an engine DeepLIFT rule.
        device: device of the parameters.
        tap_count: number of permanent taps (for hook-release tests).
    """

    backbone: nn.Module
    classifier: nn.Module | None
    biases: MappingProxyType
    module_names: frozenset[str]
    rescale_ok: bool
    device: torch.device
    tap_count: int


@dataclass(eq=False)
class ReferenceModel:
    """The reference copy for captum / pytorch-grad-cam; hold :attr:`lock` while using it."""

    backbone: nn.Module
    classifier: nn.Module | None
    device: torch.device
    lock: threading.RLock = field(default_factory=threading.RLock)


def device_of(module: nn.Module) -> torch.device:
    """Device of a module's first parameter or buffer (CPU if it has none)."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def _copy_classifier(classifier: nn.Module | None, *, grad: bool) -> nn.Module | None:
    if classifier is None:
        return None
    if not isinstance(classifier, nn.Module):
        raise ValueError(
            f"classifier must be an nn.Module or None, got {type(classifier).__name__}"
        )
    clone = copy.deepcopy(classifier).eval()
    for p in clone.parameters():
        p.requires_grad_(grad)
    return clone


def _build_engine(backbone: nn.Module, classifier: nn.Module | None) -> EngineModel:
    clone = decompose_prelu(backbone, include_relu=True).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    if device_of(clone).type in ("cpu", "cuda"):
        # NHWC convolutions are faster for the batched methods (oneDNN / cuDNN) and neutral for
        # single images; results agree with NCHW to float rounding.
        clone = clone.to(memory_format=torch.channels_last)
    biases: dict[str, torch.Tensor] = {}
    names: list[str] = []
    taps = 0
    rescale_ok = True
    for name, module in clone.named_modules():
        if not name:
            continue
        names.append(name)
        if isinstance(module, _OTHER_NONLINEAR) and not isinstance(module, _RESCALE_OK):
            rescale_ok = False
        bias = effective_bias(module)
        if bias is not None:
            biases[name] = bias
        module.register_forward_hook(_make_tap(name, bias is not None))
        taps += 1
    return EngineModel(
        backbone=clone,
        classifier=_copy_classifier(classifier, grad=False),
        biases=MappingProxyType(biases),
        module_names=frozenset(names),
        rescale_ok=rescale_ok,
        device=device_of(clone),
        tap_count=taps,
    )


def _build_reference(backbone: nn.Module, classifier: nn.Module | None) -> ReferenceModel:
    clone = decompose_prelu(backbone).eval()
    for p in clone.parameters():
        p.requires_grad_(True)
    return ReferenceModel(
        backbone=clone,
        classifier=_copy_classifier(classifier, grad=True),
        device=device_of(clone),
    )


class _Cache:
    """Weak per-model cache of private copies, rebuilt when the model's tensors change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: weakref.WeakKeyDictionary[nn.Module, dict[Hashable, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, kind: str, backbone: nn.Module, classifier: nn.Module | None, build) -> Any:
        sig = (state_signature(backbone), None if classifier is None else id(classifier))
        if classifier is not None:
            sig = (*sig, state_signature(classifier))
        with self._lock:
            slot = self._entries.setdefault(backbone, {})
            entry = slot.get((kind, None if classifier is None else id(classifier)))
            if entry is not None and entry[0] == sig:
                return entry[1]
            value = build(backbone, classifier)
            slot[(kind, None if classifier is None else id(classifier))] = (sig, value)
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries = weakref.WeakKeyDictionary()


_CACHE = _Cache()


def engine_model(backbone: nn.Module, classifier: nn.Module | None = None) -> EngineModel:
    """The cached engine copy of ``backbone`` (built on first use or after the weights changed)."""
    return _CACHE.get("engine", check_backbone(backbone), classifier, _build_engine)


def reference_model(backbone: nn.Module, classifier: nn.Module | None = None) -> ReferenceModel:
    """The cached reference copy of ``backbone`` for captum / pytorch-grad-cam."""
    return _CACHE.get("reference", check_backbone(backbone), classifier, _build_reference)


def clear_cache() -> None:
    """Drop every cached private copy (frees memory; the next call rebuilds them)."""
    _CACHE.clear()


__all__ = [
    "EngineModel",
    "ReferenceModel",
    "check_backbone",
    "clear_cache",
    "device_of",
    "effective_bias",
    "engine_model",
    "reference_model",
    "state_signature",
]
