"""Micro-batching: items submitted from many requests share one call of a batch function.

A :class:`MicroBatcher` owns one worker thread. The worker takes the oldest queued item, then
whatever else arrives within ``window_s`` (up to ``max_batch`` items, first come first served), calls
the batch function once and hands each caller its own result through a
:class:`concurrent.futures.Future`. Items whose caller gave up (a cancelled future, e.g. a request
that timed out) are skipped before the call.

:class:`EnsembleBatcher` puts one batcher in front of each model of an
:class:`~gmx.encode.Ensemble`, so that faces of concurrent requests share one forward pass per model
and the models run side by side. The embeddings are those of ``Ensemble.embed`` on each face alone:
every model and test-time variant treats each image of a batch independently (eval-mode BatchNorm,
no cross-sample operations); measured bit-identical on the 2-core CPU box (tests/serve).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from gmx.encode import Ensemble

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


@dataclass(frozen=True)
class BatchStats:
    """What a batcher has done so far.

    Attributes:
        batches: calls of the batch function.
        items: items computed (cancelled ones are not counted).
        largest: the largest batch.
    """

    batches: int
    items: int
    largest: int

    @property
    def mean_batch(self) -> float:
        """Mean items per call (0 before the first call)."""
        return self.items / self.batches if self.batches else 0.0


class MicroBatcher(Generic[T, R]):
    """One worker thread that groups submitted items into calls of ``fn``.

    Args:
        fn: batch function, ``items -> results`` (same length and order).
        max_batch: most items per call.
        window_s: after taking the first item, wait at most this long for more (0: take only what
            is already queued).
        name: thread name.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int,
        window_s: float = 0.0,
        name: str = "gmx-batcher",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        self._fn = fn
        self.max_batch = int(max_batch)
        self.window_s = float(window_s)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._batches = 0
        self._items = 0
        self._largest = 0
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Future[R]:
        """Queue one item; its result (or the batch function's exception) arrives in the future.

        Raises:
            RuntimeError: after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("the batcher is closed")
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future

    @property
    def stats(self) -> BatchStats:
        """Counts so far."""
        with self._lock:
            return BatchStats(self._batches, self._items, self._largest)

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish the queued items, then stop the worker."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _collect(self, first: Any) -> tuple[list[Any], bool]:
        """The first item plus what arrives within the window; and whether to stop afterwards."""
        batch = [first]
        deadline = time.monotonic() + self.window_s
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                nxt = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._collect(first)
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if live:
                self._run(live)
            if stop:
                return

    def _run(self, live: list[tuple[T, Future[R]]]) -> None:
        items = [item for item, _ in live]
        try:
            results = list(self._fn(items))
            if len(results) != len(items):
                raise RuntimeError(f"batch function gave {len(results)} results for {len(items)}")
        except Exception as exc:  # handed to the callers, never swallowed
            if len(live) == 1:
                live[0][1].set_exception(exc)
                return
            log.warning("a batch of %d failed (%s); retrying its items one by one", len(live), exc)
            for item, fut in live:
                try:
                    fut.set_result(self._fn([item])[0])
                except Exception as one:  # handed to its caller
                    fut.set_exception(one)
            return
        with self._lock:
            self._batches += 1
            self._items += len(items)
            self._largest = max(self._largest, len(items))
        for (_, fut), result in zip(live, results, strict=True):
            fut.set_result(result)


class EnsembleBatcher:
    """One :class:`MicroBatcher` per model of an ensemble: concurrent faces share forward passes.

    :meth:`submit` returns one future per model; :meth:`join` concatenates their results into the
    ``(V, D)`` embeddings ``ensemble.embed([face])[0]`` gives (model-major variant order).

    Args:
        ensemble: the models and TTA flags (never modified).
        max_batch: most faces per forward pass and model.
        window_s: see :class:`MicroBatcher`.
    """

    def __init__(self, ensemble: Ensemble, *, max_batch: int, window_s: float = 0.0) -> None:
        self.ensemble = ensemble
        self._parts = [
            Ensemble(
                [model],
                flip=ensemble.flip,
                grey=ensemble.grey,
                batch_size=ensemble.batch_size,
                precision=ensemble.precision,
            )
            for model in ensemble.models
        ]
        self._batchers: list[MicroBatcher[Any, np.ndarray]] = [
            MicroBatcher(
                _embedder(part),
                max_batch=max_batch,
                window_s=window_s,
                name=f"gmx-encode-m{i}",
            )
            for i, part in enumerate(self._parts)
        ]

    def submit(self, face: Any) -> list[Future[np.ndarray]]:
        """Queue one aligned face (``gmx.align.AlignedFace``, an object with ``.image``, or a
        ``(112, 112, 3)`` uint8 RGB array) with every model; one future of ``(v, D)`` float32
        per model."""
        return [b.submit(face) for b in self._batchers]

    @staticmethod
    def join(parts: Sequence[np.ndarray]) -> np.ndarray:
        """The per-model results of one face as ``(V, D)`` (model-major, as ``Ensemble.embed``)."""
        return np.concatenate(list(parts), axis=0)

    @property
    def stats(self) -> list[BatchStats]:
        """Per model."""
        return [b.stats for b in self._batchers]

    def close(self) -> None:
        """Stop every worker (after the queued faces)."""
        for b in self._batchers:
            b.close()


def _embedder(part: Ensemble) -> Callable[[list[Any]], Sequence[np.ndarray]]:
    """``part.embed`` on a list of faces (aligned faces, or arrays stacked into one)."""

    def embed(items: list[Any]) -> Sequence[np.ndarray]:
        if all(isinstance(f, np.ndarray) for f in items):
            return list(part.embed(np.stack(items)))
        return list(part.embed(items))

    return embed


__all__ = ["BatchStats", "EnsembleBatcher", "MicroBatcher"]
