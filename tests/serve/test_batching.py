"""MicroBatcher and EnsembleBatcher without HTTP."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest

from gmx.serve.batching import EnsembleBatcher, MicroBatcher


def test_items_arriving_together_share_one_call() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def double(items: list[int]) -> list[int]:
        gate.wait(5)
        calls.append(list(items))
        return [2 * i for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(double, max_batch=3, window_s=0.0)
    try:
        first = batcher.submit(0)  # the worker takes it and blocks on the gate
        time.sleep(0.1)
        rest = [batcher.submit(i) for i in range(1, 6)]  # queued meanwhile
        gate.set()
        assert [f.result(5) for f in [first, *rest]] == [0, 2, 4, 6, 8, 10]
    finally:
        batcher.close()
    assert calls == [[0], [1, 2, 3], [4, 5]]  # first come first served, max_batch respected
    stats = batcher.stats
    assert (stats.batches, stats.items, stats.largest) == (3, 6, 3)


def test_window_collects_items_that_arrive_later() -> None:
    calls: list[list[int]] = []

    def record(items: list[int]) -> list[int]:
        calls.append(list(items))
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(record, max_batch=8, window_s=0.5)
    try:
        futures = []
        for i in range(3):
            futures.append(batcher.submit(i))
            time.sleep(0.05)
        assert [f.result(5) for f in futures] == [0, 1, 2]
    finally:
        batcher.close()
    assert calls == [[0, 1, 2]]


def test_cancelled_items_are_skipped() -> None:
    seen: list[int] = []
    gate = threading.Event()

    def record(items: list[int]) -> list[int]:
        gate.wait(5)
        seen.extend(items)
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(record, max_batch=4)
    try:
        busy = batcher.submit(0)
        time.sleep(0.1)
        dropped = batcher.submit(1)
        kept = batcher.submit(2)
        assert dropped.cancel()
        gate.set()
        assert busy.result(5) == 0 and kept.result(5) == 2
    finally:
        batcher.close()
    assert seen == [0, 2]


def test_a_failing_item_fails_alone() -> None:
    def picky(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("13 is unlucky")
        return items

    gate = threading.Event()

    def gated(items: list[int]) -> list[int]:
        gate.wait(5)
        return picky(items)

    batcher: MicroBatcher[int, int] = MicroBatcher(gated, max_batch=4)
    try:
        futures: list[Future[int]] = [batcher.submit(0)]
        time.sleep(0.1)
        futures += [batcher.submit(i) for i in (12, 13, 14)]
        gate.set()
        assert futures[0].result(5) == 0
        assert futures[1].result(5) == 12 and futures[3].result(5) == 14
        with pytest.raises(ValueError, match="unlucky"):
            futures[2].result(5)
    finally:
        batcher.close()


def test_closed_batcher_refuses() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda xs: xs, max_batch=1)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(1)
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda xs: xs, max_batch=0)


def test_ensemble_batcher_equals_ensemble_embed(tiny_setup) -> None:
    """Two models (the tiny one twice, one copy perturbed): per-model batches joined in
    model-major order are the ensemble's own embeddings, bit for bit."""
    import torch

    from gmx.encode import Ensemble, load_model

    a = load_model(tiny_setup.model_path, device="cpu")
    b = load_model(tiny_setup.model_path, device="cpu")
    with torch.no_grad():
        for p in b.model.parameters():
            p.mul_(1.01)
    ensemble = Ensemble([a, b], flip=True, grey=True)
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    expected = np.stack([ensemble.embed(faces[i : i + 1])[0] for i in range(5)])
    batcher = EnsembleBatcher(ensemble, max_batch=8, window_s=0.2)
    try:
        futures = [batcher.submit(f) for f in faces]
        got = np.stack([batcher.join([f.result(30) for f in fs]) for fs in futures])
    finally:
        batcher.close()
    np.testing.assert_array_equal(got, expected)
    assert max(s.largest for s in batcher.stats) > 1
