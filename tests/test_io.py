"""gmx._io.atomic_write: all or nothing, no leftovers, unique temporary names, fsynced."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from gmx import _io
from gmx._io import atomic_write, atomic_write_bytes, atomic_write_text


def test_writes_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    with atomic_write(dest) as tmp:
        assert tmp.parent == tmp_path and tmp != dest and tmp.exists()
        assert not dest.exists()  # nothing visible until the block ends
        tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    atomic_write_text(dest, "old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(dest) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("boom")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failure_while_replacing_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(src: object, dst: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr(_io.os, "replace", refuse)
    with pytest.raises(OSError, match="rename refused"):
        atomic_write_bytes(tmp_path / "x", b"data")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_refused_without_side_effects(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "no" / "x", b"data")
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_are_unique_per_writer(tmp_path: Path) -> None:
    dest = tmp_path / "same.npz"
    with atomic_write(dest) as a, atomic_write(dest) as b:
        assert a != b
        a.write_bytes(b"first")
        b.write_bytes(b"second")
    assert dest.read_bytes() == b"first"  # the last to finish wins (a's block closes last)
    assert [p.name for p in tmp_path.iterdir()] == ["same.npz"]


def test_concurrent_writers_do_not_clash(tmp_path: Path) -> None:
    dest = tmp_path / "shared.bin"
    payloads = [bytes([k]) * (50_000 + k) for k in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(payloads))

    def writer(data: bytes) -> None:
        try:
            start.wait()
            for _ in range(10):
                atomic_write_bytes(dest, data)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert dest.read_bytes() in payloads  # one writer's complete file, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


def test_file_and_folder_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    monkeypatch.setattr(_io.os, "fsync", spy)
    atomic_write_bytes(tmp_path / "x", b"data")
    assert synced[0] == "file"
    if Path("/proc/self/fd").is_dir() and os.name == "posix":
        assert synced == ["file", "dir"]


def test_gmx_writers_share_it(tmp_path: Path) -> None:
    """The batch store's npz chunks and the encodings CSV leave no temporary files behind."""
    from gmx.aggregate.store import atomic_save_npz
    from gmx.gallery import EncodingTable, write_encodings
    from gmx.variants import Variant

    atomic_save_npz(tmp_path / "a.npz", {"x": np.arange(3)})
    table = EncodingTable(
        image_ids=("1", "2"),
        file_names=("1_a.jpg", "2_b.jpg"),
        variants=(Variant(0, False, False),),
        model_names=("m",),
        embeddings=np.ones((2, 1, 4), np.float32),
        class_conf=(np.zeros((2, 1), np.float32),),
    )
    write_encodings(table, tmp_path / "enc.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "enc.csv"]
    assert np.load(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]


def test_permissions_are_those_of_a_normal_write(tmp_path):
    """mkstemp makes 0600 files; an atomic write must not make artifacts private by accident."""
    import os

    from gmx._io import atomic_write_bytes

    mask = os.umask(0o022)
    try:
        new = atomic_write_bytes(tmp_path / "new.bin", b"x")
        assert new.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        atomic_write_bytes(kept, b"new")
        assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_bytes() == b"new"
    finally:
        os.umask(mask)


def test_exclusive_atomic_write_never_replaces(tmp_path: Path) -> None:
    dest = tmp_path / "manifest.json"
    with atomic_write(dest, exclusive=True) as tmp:
        tmp.write_text("first")
    with pytest.raises(FileExistsError), atomic_write(dest, exclusive=True) as tmp:
        tmp.write_text("second")
    assert dest.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
