"""Per-call tracing state for the engine's private model copies (no hooks on user models).

The engine's private copy of a backbone carries permanent forward *taps* (see
:mod:`gmx.explain.prepared`) and :class:`~gmx.explain.prelu.DecomposedPReLU` modules. Both do nothing
unless a :class:`Trace` is active in the *current context* (a :class:`contextvars.ContextVar`, so each
thread sees only its own trace). That is what lets several sessions explain with one shared model at
the same time and get exactly the maps they would get alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import nn

#: Backward rules understood by :class:`gmx.explain.prelu._ModalPReLU`.
BACKWARD_RULES = ("gradient", "guided", "deconv", "guided_relu", "deconv_relu", "rescale")


@dataclass(eq=False)
class Trace:
    """Mutable state of one traced forward pass (private to one call of the engine).

    Attributes:
        taps: module names (of the private copy) whose outputs are recorded in :attr:`recorded`.
        record_bias: also record the output of every bias-carrying ``Conv2d``/``BatchNorm2d``
            (FullGrad) under its module name.
        rule: backward rule used by the modal PReLU during the next backward pass.
        record_refs: the current forward pass is the DeepLIFT *reference* pass; PReLU inputs are
            stored in :attr:`refs` by call index.
        recorded: name -> output tensor of the last traced forward pass.
        refs: call index -> PReLU input of the reference pass.
    """

    taps: frozenset[str] = frozenset()
    record_bias: bool = False
    rule: str = "gradient"
    record_refs: bool = False
    recorded: dict[str, torch.Tensor] = field(default_factory=dict)
    refs: dict[int, torch.Tensor] = field(default_factory=dict)
    call_index: int = 0

    def next_call(self) -> int:
        """Index of the next PReLU call in this forward pass (reset by :meth:`new_pass`)."""
        index = self.call_index
        self.call_index += 1
        return index

    def new_pass(self, *, record_refs: bool = False) -> None:
        """Start a new forward pass: reset the call counter (and recorded outputs)."""
        self.call_index = 0
        self.record_refs = record_refs
        if not record_refs:
            self.recorded = {}

    def on_output(self, name: str, module: nn.Module, output: torch.Tensor, has_bias: bool) -> None:
        """Record ``output`` of module ``name`` when this trace asked for it."""
        if self.record_refs:
            return
        if name in self.taps or (self.record_bias and has_bias):
            self.recorded[name] = output


_TRACE: ContextVar[Trace | None] = ContextVar("gmx_explain_trace", default=None)


def active_trace() -> Trace | None:
    """The trace of the current context, or ``None`` outside the engine."""
    return _TRACE.get()


@contextlib.contextmanager
def tracing(trace: Trace) -> Iterator[Trace]:
    """Make ``trace`` active in the current context for the duration of the block."""
    token = _TRACE.set(trace)
    try:
        yield trace
    finally:
        _TRACE.reset(token)


__all__ = ["BACKWARD_RULES", "Trace", "active_trace", "tracing"]
