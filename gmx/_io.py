"""Atomic file writes, written once for gmx's artifacts (galleries, models and cards, encoding CSVs,
activation sidecars, batch chunks and syndrome results, demo metrics).

A file is written to a temporary file with a unique name in the destination's folder, flushed and
fsynced, moved over the destination with :func:`os.replace` (atomic on POSIX and Windows within one
file system), and the folder is fsynced so that the rename survives a crash. Readers therefore see
either the old file or the complete new one, never a partial file; on any error the temporary file is
removed and the destination is left as it was. Concurrent writers of the same destination each use
their own temporary file, so they never clash: the last one to finish wins.

Also the one clock of stored times, :func:`utc_now` (the audit log's and the study database's).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, exclusive: bool = False) -> Iterator[Path]:
    """Write a file atomically: yield a temporary path to write, then move it over ``path``.

    The caller writes the complete file to the yielded path (any way it likes: ``open``, SQLite,
    ``np.save``); when the ``with`` block ends normally the file is fsynced, renamed onto ``path``,
    and the folder is fsynced. If the block raises, the temporary file is deleted and ``path`` is
    untouched.

    Args:
        path: the destination; its folder must exist.
        exclusive: create ``path`` only if it does not exist (the complete file is hard-linked into
            place, which fails atomically when another writer got there first); for files that
            several processes may create at once and that must not be replaced (a run's manifest).

    Yields:
        The temporary file's path (an empty file, in the same folder as ``path``).

    Raises:
        FileNotFoundError: the destination's folder does not exist.
        FileExistsError: ``exclusive`` and ``path`` exists (checked when the block ends).
    """
    dest = Path(path)
    if not dest.parent.is_dir():
        raise FileNotFoundError(f"cannot write {dest}: folder {dest.parent} does not exist")
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; give it the mode the destination has, or a new file's.
        os.chmod(tmp, _mode_for(dest))
        if exclusive:
            _link_exclusive(tmp, dest)
        else:
            os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def _link_exclusive(tmp: Path, dest: Path) -> None:
    """Move the complete ``tmp`` to ``dest`` unless ``dest`` exists (then ``FileExistsError``)."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: a (racy) check, then an atomic rename
        if dest.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(dest)) from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


def _mode_for(dest: Path) -> int:
    """The destination's permission bits if it exists, else ``0o666`` less the process umask."""
    try:
        return dest.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`; returns ``path``."""
    dest = Path(path)
    with atomic_write(dest) as tmp:
        tmp.write_bytes(data)
    return dest


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` as UTF-8 to ``path`` with :func:`atomic_write`; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


#: Environment variable naming gmx's cache folder (default: :func:`user_cache_dir`'s platform folder).
CACHE_DIR_ENV = "GMX_CACHE_DIR"

#: Environment variable that turns gmx's disk caches off when set to ``1``/``true``/``yes``/``on``.
NO_CACHE_ENV = "GMX_NO_CACHE"


def user_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """gmx's folder for disk caches (not created here), or ``None`` when disk caches are off.

    ``$GMX_CACHE_DIR`` if set; else ``$XDG_CACHE_HOME/gmx``, ``~/Library/Caches/gmx`` (macOS),
    ``%LOCALAPPDATA%\\gmx\\Cache`` (Windows), ``~/.cache/gmx``. ``GMX_NO_CACHE=1`` turns them off.
    A cache only ever holds what gmx can recompute; deleting the folder is always safe.
    """
    env = os.environ if environ is None else environ
    if env.get(NO_CACHE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return None
    if env.get(CACHE_DIR_ENV):
        return Path(env[CACHE_DIR_ENV]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "gmx"
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "gmx" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "gmx"
    return Path.home() / ".cache" / "gmx"


def first_json_for_model(
    model_fingerprint: str, candidates: Sequence[str | os.PathLike[str]]
) -> Path | None:
    """The first readable JSON file among ``candidates`` whose ``model_fingerprint`` is this one
    (how a committed or cached result finds the model weights it was made with)."""
    import json

    for c in candidates:
        path = Path(c)
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("model_fingerprint") == model_fingerprint:
            return path
    return None


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename in ``directory`` durable where the OS allows opening folders (not Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on folders
        logger.debug("fsync of %s failed: %s", directory, exc)
    finally:
        os.close(fd)


#: Stored times, ISO 8601 in UTC (both sort as text): to the second (the audit log's ``at_utc``) ...
UTC_SECONDS = "%Y-%m-%dT%H:%M:%SZ"
#: ... and to the microsecond (the study database's ``answered_at``).
UTC_MICROSECONDS = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now(time_format: str = UTC_SECONDS) -> str:
    """The current UTC time in ``time_format`` (:data:`UTC_SECONDS` or :data:`UTC_MICROSECONDS`)."""
    return datetime.now(UTC).strftime(time_format)


__all__ = [
    "CACHE_DIR_ENV",
    "NO_CACHE_ENV",
    "UTC_MICROSECONDS",
    "UTC_SECONDS",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "first_json_for_model",
    "fsync_dir",
    "user_cache_dir",
    "utc_now",
]
