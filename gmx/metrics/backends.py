"""Where the shards of a run folder are computed: in this process, or as Ray tasks.

A run folder (:class:`gmx.aggregate.store.BatchStore`) is cut into chunks; ``--shard i/n`` computes
every n-th chunk from ``i``, and each chunk is written atomically with its checksum, so shards that
write the same folder at the same time never collide. :func:`run_shards` runs ``task(Shard(i, n))``
for every ``i``: one after the other (``"local"``), or as ``n`` Ray tasks (``"ray"``, the optional
``gmx[ray]`` extra) on a running cluster (``address``) or a local instance started for the call and
stopped after it. The result is the same folder either way; only the wall time differs.

Ray is imported only when the Ray backend is asked for. The task must be picklable by cloudpickle
(a closure over the model and gallery is: Ray ships them to the workers once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from gmx.aggregate.store import Shard

T = TypeVar("T")
Backend = Literal["local", "ray"]
#: The backends :func:`run_shards` knows.
BACKENDS: tuple[str, ...] = ("local", "ray")


def _ray() -> Any:  # the ray module
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the Ray backend needs Ray: pip install 'gmx[ray]' (or pip install 'ray>=2.9')"
        ) from exc
    return ray


def run_shards(
    task: Callable[[Shard], T],
    n_shards: int,
    backend: Backend = "local",
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_task: float = 1.0,
    on_done: Callable[[int, T], None] | None = None,
) -> list[T]:
    """``task(Shard(i, n_shards))`` for every shard ``i``; results in shard order.

    Args:
        task: computes one shard into the run folder and returns a summary of what it did.
        n_shards: shards (Ray tasks); 1 = the whole run in one task.
        backend: ``"local"`` (in this process, in order) or ``"ray"``.
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None``: start a
            local Ray instance for this call (``num_cpus`` CPUs) and shut it down afterwards.
            A Ray instance already initialised in this process is used as it is.
        cpus_per_task: Ray CPUs reserved per task.
        on_done: called with ``(shard index, result)`` as each shard finishes (progress).

    Raises:
        ValueError: for an unknown backend or ``n_shards < 1``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    shards = [Shard(i, n_shards) for i in range(n_shards)]
    if backend == "local":
        out = []
        for i, s in enumerate(shards):
            out.append(task(s))
            if on_done is not None:
                on_done(i, out[-1])
        return out
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
            configure_logging=False,
        )  # fmt: skip
    try:
        remote = ray.remote(num_cpus=cpus_per_task, max_retries=0)(task)
        refs = [remote.remote(s) for s in shards]
        index = {r: i for i, r in enumerate(refs)}
        results: dict[int, T] = {}
        pending: Sequence = list(refs)
        while pending:
            ready, pending = ray.wait(list(pending), num_returns=1)
            for r in ready:
                results[index[r]] = ray.get(r)
                if on_done is not None:
                    on_done(index[r], results[index[r]])
        return [results[i] for i in range(n_shards)]
    finally:
        if started:
            ray.shutdown()


__all__ = ["BACKENDS", "Backend", "run_shards"]
