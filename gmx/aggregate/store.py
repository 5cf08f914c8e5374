"""Resumable, shardable on-disk results of a batch run: a folder of atomically written npz chunks.

Layout of a run folder::

    manifest.json          what is computed: row keys, methods, parameters, target mode, model
    chunk_000000.npz       rows [0, chunk) ... one file per finished chunk
    chunk_000001.npz

Rows are cut into fixed chunks; chunk ``k`` belongs to shard ``k % n`` of ``--shard i/n``, so several
processes (or machines sharing or later merging the folder) never write the same file. A chunk file
is written atomically (:func:`gmx._io.atomic_write`: a unique temporary name in the same folder,
fsynced and renamed into place), so an interrupted run leaves only whole chunks; rerunning skips
them. The manifest pins the configuration: reopening a folder with different settings raises instead of mixing results.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmx._io import atomic_write_bytes
from gmx.errors import GmxError

MANIFEST = "manifest.json"
STORE_VERSION = 1


class BatchStoreError(GmxError):
    """A batch folder does not match the requested run, or its files are damaged."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based), parsed from ``"i/n"``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard must satisfy 0 <= i < n, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"`` -> ``Shard(2, 4)``.

        Raises:
            ValueError: for anything else.
        """
        try:
            i, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {text!r}") from None
        return cls(i, n)

    def owns(self, chunk: int) -> bool:
        """Whether chunk number ``chunk`` is this shard's work."""
        return chunk % self.count == self.index


def atomic_save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez_compressed`` to ``path`` atomically (:func:`gmx._io.atomic_write`)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


class BatchStore:
    """One run folder (see the module docstring).

    Args:
        root: the folder (created if missing).
        config: JSON-able description of the run (row keys, methods, params, target, model...).
            ``config["keys"]`` is the list of row keys; it and everything else must equal an
            existing manifest's.
        chunk: rows per chunk file.

    Raises:
        BatchStoreError: if the folder holds a different run.
    """

    def __init__(self, root: str | Path, config: Mapping[str, Any], chunk: int = 64) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = {"store_version": STORE_VERSION, "chunk": int(chunk), **dict(config)}
        manifest = json.loads(json.dumps(manifest))  # normalise (tuples -> lists)
        path = self.root / MANIFEST
        if path.exists():
            existing = json.loads(path.read_text())
            if existing != manifest:
                diff = sorted(
                    k for k in set(existing) | set(manifest) if existing.get(k) != manifest.get(k)
                )
                raise BatchStoreError(
                    f"{self.root} holds a different batch run (differs in {diff}); "
                    "use another folder or the same settings"
                )
        else:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:  # another shard created it meanwhile: check it
                BatchStore.__init__(self, root, config, chunk)
                return
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(manifest, indent=1))
        self.manifest = manifest
        self.keys: tuple[str, ...] = tuple(manifest["keys"])
        self.chunk = int(chunk)

    @property
    def n_chunks(self) -> int:
        """Number of chunks of the whole run."""
        return (len(self.keys) + self.chunk - 1) // self.chunk

    def chunk_rows(self, k: int) -> range:
        """Row indices of chunk ``k``."""
        return range(k * self.chunk, min((k + 1) * self.chunk, len(self.keys)))

    def chunk_path(self, k: int) -> Path:
        return self.root / f"chunk_{k:06d}.npz"

    def done(self, k: int) -> bool:
        """Whether chunk ``k`` is finished (its file exists)."""
        return self.chunk_path(k).exists()

    def pending(self, shard: Shard | None = None) -> list[int]:
        """Unfinished chunks of ``shard`` (default: all)."""
        shard = shard or Shard()
        return [k for k in range(self.n_chunks) if shard.owns(k) and not self.done(k)]

    def write(self, k: int, maps: Mapping[str, np.ndarray]) -> None:
        """Save chunk ``k``'s maps (method -> ``(rows, h, w)``) atomically."""
        rows = len(self.chunk_rows(k))
        for m, arr in maps.items():
            if arr.shape[0] != rows:
                raise ValueError(f"chunk {k} has {rows} rows, map {m!r} has {arr.shape[0]}")
        atomic_save_npz(self.chunk_path(k), {f"map__{m}": np.asarray(a) for m, a in maps.items()})

    def load(
        self, methods: Sequence[str] | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """All finished maps: method -> ``(N, h, w)`` float32 (NaN rows where unfinished), and
        ``(N,)`` bool of finished rows.

        Raises:
            BatchStoreError: if a chunk file is damaged.
        """
        methods = list(methods or self.manifest["methods"])
        n = len(self.keys)
        out: dict[str, np.ndarray] = {}
        finished = np.zeros(n, bool)
        for k in range(self.n_chunks):
            if not self.done(k):
                continue
            rows = self.chunk_rows(k)
            try:
                with np.load(self.chunk_path(k)) as z:
                    for m in methods:
                        arr = z[f"map__{m}"]
                        if m not in out:
                            out[m] = np.full((n, *arr.shape[1:]), np.nan, np.float32)
                        out[m][rows.start : rows.stop] = arr
            except (OSError, KeyError, ValueError) as exc:
                raise BatchStoreError(f"chunk {self.chunk_path(k)} is damaged: {exc}") from exc
            finished[rows.start : rows.stop] = True
        return out, finished


__all__ = ["BatchStore", "BatchStoreError", "Shard", "atomic_save_npz"]
