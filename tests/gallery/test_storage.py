from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gmx.errors import GalleryError
from gmx.gallery import SCHEMA_VERSION, Gallery, _storage, gallery_info, load_gallery, save_gallery

from ._gallery_fixtures import make_tiny


def _same(a: Gallery, b: Gallery) -> None:
    assert (a.name, a.version, a.model_fingerprint, a.description, a.provenance) == (
        b.name,
        b.version,
        b.model_fingerprint,
        b.description,
        b.provenance,
    )
    assert a.images == b.images
    assert dict(a.syndromes) == dict(b.syndromes)
    assert a.variants == b.variants
    assert a.photos_visible == b.photos_visible
    assert (
        a.embeddings.dtype == b.embeddings.dtype
        and a.embeddings.tobytes() == b.embeddings.tobytes()
    )
    if a.photos is None:
        assert b.photos is None
    else:
        assert b.photos is not None and a.photos.tobytes() == b.photos.tobytes()
    assert set(a.extras) == set(b.extras)
    for k in a.extras:
        assert a.extras[k].dtype == b.extras[k].dtype and a.extras[k].shape == b.extras[k].shape
        assert a.extras[k].tobytes() == b.extras[k].tobytes()


def test_round_trip_bit_exact(tmp_path: Path, tiny_with_photos: Gallery) -> None:
    rng = np.random.default_rng(1)
    g = make_tiny(
        embeddings=rng.standard_normal((6, 2, 2)).astype(np.float32),
        photos=tiny_with_photos.photos,
        photos_visible=True,
        extras=dict(tiny_with_photos.extras),
    )
    path = save_gallery(g, tmp_path / "g.sqlite")
    back = load_gallery(path, expected_fingerprint=g.model_fingerprint)
    _same(g, back)
    assert not back.embeddings.flags.writeable and not back.photos.flags.writeable
    assert [p.name for p in tmp_path.iterdir()] == ["g.sqlite"]  # no temp file left


def test_round_trip_without_photos(tmp_path: Path, tiny: Gallery) -> None:
    save_gallery(tiny, tmp_path / "g.sqlite")
    _same(tiny, load_gallery(tmp_path / "g.sqlite"))


def test_arrays_chunked(
    tmp_path: Path, tiny_with_photos: Gallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_storage, "CHUNK_BYTES", 1000)
    save_gallery(tiny_with_photos, tmp_path / "g.sqlite")
    with sqlite3.connect(tmp_path / "g.sqlite") as con:
        (n,) = con.execute("SELECT n_chunks FROM arrays WHERE name='photos'").fetchone()
    assert n == -(-tiny_with_photos.photos.nbytes // 1000)
    _same(tiny_with_photos, load_gallery(tmp_path / "g.sqlite"))


def test_info_reads_meta_and_counts(tmp_path: Path, tiny_with_photos: Gallery) -> None:
    save_gallery(tiny_with_photos, tmp_path / "g.sqlite")
    info = gallery_info(tmp_path / "g.sqlite")
    assert (info.name, info.version, info.n_images, info.n_syndromes, info.n_subjects) == (
        "tiny",
        "t1",
        6,
        3,
        5,
    )
    assert info.embedding_dim == 2 and info.variants == tiny_with_photos.variants
    assert info.has_photos and info.photos_visible and info.extras == ("act.layer4", "masks")
    assert info.schema_version == SCHEMA_VERSION and info.created.endswith("+00:00")
    assert info.file_size == (tmp_path / "g.sqlite").stat().st_size


def test_atomic_write_keeps_old_file(
    tmp_path: Path, tiny: Gallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "g.sqlite"
    save_gallery(tiny, path)
    real = _storage._write_array

    def failing(con: sqlite3.Connection, name: str, array: np.ndarray, **kwargs: object) -> str:
        if name == "embeddings":
            raise RuntimeError("disk full (simulated)")
        return real(con, name, array, **kwargs)

    monkeypatch.setattr(_storage, "_write_array", failing)
    newer = make_tiny(name="newer")
    with pytest.raises(RuntimeError, match="simulated"):
        save_gallery(newer, path)
    assert [p.name for p in tmp_path.iterdir()] == ["g.sqlite"]
    _same(tiny, load_gallery(path))


def test_fingerprint_mismatch_refused(tmp_path: Path, tiny: Gallery) -> None:
    save_gallery(tiny, tmp_path / "g.sqlite")
    with pytest.raises(
        GalleryError, match=r"embedded with model ffff.*you loaded model abcd.*gmx gallery build"
    ):
        load_gallery(tmp_path / "g.sqlite", expected_fingerprint="abcd" * 16)


@pytest.mark.parametrize(
    "content", [b"", b"not a database at all" * 100, b"SQLite format 3\x00" + b"\x00" * 50]
)
def test_corrupt_file_refused(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.sqlite"
    p.write_bytes(content)
    with pytest.raises(GalleryError):
        load_gallery(p)
    with pytest.raises(GalleryError):
        gallery_info(p)


def test_truncated_file_refused(tmp_path: Path, tiny_with_photos: Gallery) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(tiny_with_photos, p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(GalleryError):
        load_gallery(p)


def test_damaged_array_refused(tmp_path: Path, tiny: Gallery) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(tiny, p, compress=False)  # raw bytes; compressed chunks: test_storage_compression
    with sqlite3.connect(p) as con:
        (blob,) = con.execute("SELECT data FROM array_chunks WHERE name='embeddings'").fetchone()
        damaged = bytes([blob[0] ^ 1]) + bytes(blob[1:])
        con.execute("UPDATE array_chunks SET data=? WHERE name='embeddings'", (damaged,))
    con.close()
    with pytest.raises(GalleryError, match="checksum"):
        load_gallery(p)


def test_other_sqlite_and_missing_file_refused(tmp_path: Path) -> None:
    p = tmp_path / "other.sqlite"
    with sqlite3.connect(p) as con:
        con.execute("CREATE TABLE t (x)")
    con.close()
    with pytest.raises(GalleryError, match="not a gmx gallery"):
        load_gallery(p)
    with pytest.raises(GalleryError, match="does not exist"):
        load_gallery(tmp_path / "nope.sqlite")
    assert not (tmp_path / "nope.sqlite").exists()  # loading never creates files


def test_newer_schema_refused(tmp_path: Path, tiny: Gallery) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(tiny, p)
    with sqlite3.connect(p) as con:
        con.execute(
            "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    con.close()
    with pytest.raises(GalleryError, match="newer"):
        load_gallery(p)


def test_hand_edited_inconsistency_refused(tmp_path: Path, tiny: Gallery) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(tiny, p)
    with sqlite3.connect(p) as con:  # a file without a metadata checksum, edited by hand
        con.execute("DELETE FROM images WHERE image_id='c2'")
        con.execute("DELETE FROM meta WHERE key='metadata_sha256'")
    con.close()
    with pytest.raises(GalleryError, match="inconsistent"):
        load_gallery(p)


def test_save_into_missing_directory(tmp_path: Path, tiny: Gallery) -> None:
    with pytest.raises(GalleryError, match="does not exist"):
        save_gallery(tiny, tmp_path / "no" / "g.sqlite")


# --- metadata checksum (issue 10, item 16) --------------------------------------------------------
def test_flipped_byte_in_a_syndrome_name_is_refused(tmp_path: Path, tiny: Gallery) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(tiny, p)
    name = next(iter(tiny.syndromes.values())).name.encode()
    data = bytearray(p.read_bytes())
    at = data.find(name)
    assert at >= 0
    data[at] ^= 0x01  # a one-bit flip in the stored name, SQLite's structure untouched
    p.write_bytes(bytes(data))
    with pytest.raises(GalleryError, match=rf"{p.name}.*metadata.*checksum"):
        load_gallery(p)
    with pytest.raises(GalleryError, match=rf"{p.name}.*metadata.*checksum"):
        gallery_info(p)


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE images SET syndrome_id=(SELECT MAX(syndrome_id) FROM syndromes) WHERE position=0",
        "UPDATE meta SET value='edited' WHERE key='description'",
        "UPDATE arrays SET shape='[1]' WHERE name='embeddings'",
    ],
)
def test_edited_metadata_is_refused(tmp_path: Path, tiny_with_photos: Gallery, edit: str) -> None:
    p = tmp_path / "g.sqlite"
    save_gallery(tiny_with_photos, p)
    assert gallery_info(p).metadata_checksum == "verified"
    with sqlite3.connect(p) as con:
        con.execute(edit)
    con.close()
    with pytest.raises(GalleryError, match="checksum"):
        load_gallery(p)


def test_file_without_metadata_checksum_loads_and_says_so(
    tmp_path: Path, tiny_with_photos: Gallery
) -> None:
    p = tmp_path / "old.sqlite"
    save_gallery(tiny_with_photos, p)
    with sqlite3.connect(p) as con:  # as written by an older gmx
        con.execute("DELETE FROM meta WHERE key='metadata_sha256'")
    con.close()
    assert gallery_info(p).metadata_checksum == "absent"
    old = load_gallery(p)
    _same(tiny_with_photos, old)
    save_gallery(old, p)  # the library's own path adds it
    assert gallery_info(p).metadata_checksum == "verified"
    _same(tiny_with_photos, load_gallery(p))
