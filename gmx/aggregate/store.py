"""Resumable, shardable on-disk results of a batch run: a folder of atomically written npz chunks.

Layout of a run folder::

    manifest.json          what is computed: row keys, methods, parameters, target mode, model
    chunk_000000.npz       rows [0, chunk) ... one file per finished chunk
    chunk_000000.sha256    SHA-256 of chunk_000000.npz, recorded when it was written
    chunk_000001.npz
    chunk_000001.sha256

Rows are cut into fixed chunks; chunk ``k`` belongs to shard ``k % n`` of ``--shard i/n``, so several
processes (or machines sharing or later merging the folder) never write the same file. Every file is
written atomically (:func:`gmx._io.atomic_write`: a unique temporary name in the same folder, fsynced
and renamed into place; the manifest is created exclusively, so two shards starting at once agree on
one), so an interrupted run leaves only whole files; rerunning skips finished chunks. A chunk counts
as finished only if it checks out: its SHA-256 matches the recorded one (a chunk without a recorded
checksum, from an older gmx or a crash between the two writes, must load completely). A damaged
chunk (truncated, a flipped byte) is recomputed by the next run and named by :meth:`BatchStore.load`.
The manifest pins the configuration: reopening a folder with different settings raises instead of
mixing results.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmx._io import atomic_write, atomic_write_bytes, atomic_write_text
from gmx.errors import GmxError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STORE_VERSION = 1

#: Suffix of the file holding a chunk's SHA-256 (hex), next to the chunk.
CHECKSUM_SUFFIX = ".sha256"

#: What reading a damaged ``.npz`` can raise (zip structure, CRC, deflate stream, npy header).
_DAMAGED_NPZ = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


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


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of ``np.savez_compressed(**arrays)``."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def atomic_save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez_compressed`` to ``path`` atomically (:func:`gmx._io.atomic_write`)."""
    atomic_write_bytes(path, npz_bytes(arrays))


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of run folder ``root``.

    Raises:
        BatchStoreError: no manifest, or one that is not a batch manifest (JSON object with
            ``keys``, ``methods`` and ``chunk``).
    """
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BatchStoreError(f"{root} is not a batch folder (no {MANIFEST})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BatchStoreError(f"{path} is damaged ({exc}); use another folder") from exc
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("keys"), list)
        or not isinstance(manifest.get("methods"), list)
        or not isinstance(manifest.get("chunk"), int)
    ):
        raise BatchStoreError(f"{path} is damaged (not a batch manifest); use another folder")
    return manifest


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
        if not path.exists():
            text = json.dumps(manifest, indent=1)
            try:
                with atomic_write(path, exclusive=True) as tmp:
                    tmp.write_text(text, encoding="utf-8")
            except FileExistsError:  # another shard created it meanwhile: check it below
                pass
        existing = read_manifest(self.root)
        if existing != manifest:
            diff = sorted(
                k for k in set(existing) | set(manifest) if existing.get(k) != manifest.get(k)
            )
            raise BatchStoreError(
                f"{self.root} holds a different batch run (differs in {diff}); "
                "use another folder or the same settings"
            )
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

    def checksum_path(self, k: int) -> Path:
        """Where chunk ``k``'s SHA-256 is recorded."""
        return self.root / f"chunk_{k:06d}{CHECKSUM_SUFFIX}"

    def damage(self, k: int) -> str | None:
        """Why the existing chunk ``k`` cannot be used (``None``: it checks out).

        With a recorded checksum the file's SHA-256 must match it; without one (a chunk from an
        older gmx, or a crash between writing the chunk and its checksum) the chunk must load
        completely, every map with the chunk's row count.
        """
        path = self.chunk_path(k)
        try:
            recorded = self.checksum_path(k).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            recorded = None
        except (OSError, UnicodeDecodeError) as exc:
            return f"its checksum file cannot be read ({exc})"
        try:
            if recorded is not None:
                found = hashlib.sha256(path.read_bytes()).hexdigest()
                return None if found == recorded else "checksum mismatch"
            rows = len(self.chunk_rows(k))
            with np.load(path, allow_pickle=False) as z:
                for name in z.files:
                    if z[name].shape[:1] != (rows,):
                        return f"map {name!r} has {z[name].shape[0]} rows, expected {rows}"
        except _DAMAGED_NPZ as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def done(self, k: int) -> bool:
        """Whether chunk ``k`` is finished: its file exists and checks out (:meth:`damage`)."""
        return self.chunk_path(k).exists() and self.damage(k) is None

    def pending(self, shard: Shard | None = None) -> list[int]:
        """Unfinished chunks of ``shard`` (default: all): missing or damaged (logged, redone)."""
        shard = shard or Shard()
        todo = []
        for k in range(self.n_chunks):
            if not shard.owns(k):
                continue
            if not self.chunk_path(k).exists():
                todo.append(k)
            elif (reason := self.damage(k)) is not None:
                logger.warning(
                    "chunk %s is damaged (%s): computing it again", self.chunk_path(k), reason
                )
                todo.append(k)
        return todo

    def write(self, k: int, maps: Mapping[str, np.ndarray]) -> None:
        """Save chunk ``k``'s maps (method -> ``(rows, h, w)``) and its checksum, atomically."""
        rows = len(self.chunk_rows(k))
        for m, arr in maps.items():
            if arr.shape[0] != rows:
                raise ValueError(f"chunk {k} has {rows} rows, map {m!r} has {arr.shape[0]}")
        data = npz_bytes({f"map__{m}": np.asarray(a) for m, a in maps.items()})
        # An old checksum must not outlive the chunk it describes (a crash between the writes
        # then leaves a chunk without one, which is checked by loading it).
        self.checksum_path(k).unlink(missing_ok=True)
        atomic_write_bytes(self.chunk_path(k), data)
        atomic_write_text(self.checksum_path(k), hashlib.sha256(data).hexdigest() + "\n")

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
        damaged: list[str] = []
        for k in range(self.n_chunks):
            path = self.chunk_path(k)
            if not path.exists():
                continue
            rows = self.chunk_rows(k)
            reason = self.damage(k)
            if reason is None:
                try:
                    with np.load(path, allow_pickle=False) as z:
                        chunk_maps = {m: z[f"map__{m}"] for m in methods}
                except _DAMAGED_NPZ as exc:
                    reason = f"{type(exc).__name__}: {exc}"
            if reason is not None:
                damaged.append(f"{path.name} ({reason})")
                continue
            for m, arr in chunk_maps.items():
                if m not in out:
                    out[m] = np.full((n, *arr.shape[1:]), np.nan, np.float32)
                out[m][rows.start : rows.stop] = arr
            finished[rows.start : rows.stop] = True
        if damaged:
            raise BatchStoreError(
                f"{len(damaged)} chunk(s) of {self.root} are damaged: {'; '.join(damaged)}. "
                "Run `gmx batch run` again with the same arguments to recompute them"
            )
        return out, finished


__all__ = [
    "BatchStore",
    "BatchStoreError",
    "Shard",
    "atomic_save_npz",
    "npz_bytes",
    "read_manifest",
]
