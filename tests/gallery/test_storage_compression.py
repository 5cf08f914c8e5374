"""Gallery files: zlib-compressed arrays, PNG/WebP photos, schema-1 compatibility."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import sqlite3
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from gmx.errors import GalleryError
from gmx.gallery import (
    Gallery,
    GalleryImage,
    Syndrome,
    _photos,
    _storage,
    encode_photos,
    gallery_info,
    load_gallery,
    save_gallery,
    store_photos,
)
from gmx.variants import Variant

from ._gallery_fixtures import resign

N_PIX = 112 * 112


def _gallery(
    n: int,
    *,
    photos: np.ndarray | None = None,
    extras: dict[str, np.ndarray] | None = None,
    dim: int = 8,
    seed: int = 0,
    webp: int | None = None,
) -> Gallery:
    """A gallery; with ``webp`` its photos are held as WebP bytes of that quality (as built)."""
    rng = np.random.default_rng(seed)
    encoded = None if webp is None or photos is None else encode_photos(photos, "webp", webp)
    syndromes = (Syndrome("A", "Alpha"), Syndrome("B", "Beta", "100100", ("G1",)))
    images = tuple(GalleryImage(f"i{k}", f"s{k // 2}", "AB"[k % 2]) for k in range(n))
    return Gallery(
        name="comp",
        version="c1",
        images=images,
        syndromes=syndromes,
        embeddings=rng.standard_normal((n, 2, dim)).astype(np.float32),
        variants=(Variant(0, False, False), Variant(0, True, False)),
        model_fingerprint="c" * 64,
        photos=photos if encoded is None else None,
        photos_visible=photos is not None,
        extras=extras or {},
        encoded_photos=encoded,
    )


def _faces(n: int) -> np.ndarray:
    """``n`` real-photo 112x112 crops around the astronaut's face (different offsets and scales)."""
    img = Image.fromarray(skdata.astronaut())
    out = []
    for k in range(n):
        x0, y0, side = 150 + 7 * (k % 5), 20 + 5 * (k % 3), 180 + 10 * (k % 4)
        out.append(np.asarray(img.crop((x0, y0, x0 + side, y0 + side)).resize((112, 112))))
    return np.stack(out)


def _sparse_masks(n: int, seed: int = 0) -> np.ndarray:
    """Mostly-empty (N, 112, 112) bool masks: one small disc per image (~2 % of the pixels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:112, :112]
    cy, cx = rng.integers(20, 92, size=(2, n))
    r = rng.integers(6, 12, size=n)
    return (yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2 < (
        r[:, None, None] ** 2
    )


def _codecs(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as con:
        rows = dict(con.execute("SELECT name, codec FROM arrays").fetchall())
    con.close()
    return rows


def _same_arrays(a: Gallery, b: Gallery) -> None:
    assert a.images == b.images and dict(a.syndromes) == dict(b.syndromes)
    assert a.embeddings.dtype == b.embeddings.dtype
    assert a.embeddings.tobytes() == b.embeddings.tobytes()
    assert set(a.extras) == set(b.extras)
    for k in a.extras:
        assert a.extras[k].dtype == b.extras[k].dtype and a.extras[k].shape == b.extras[k].shape
        assert a.extras[k].tobytes() == b.extras[k].tobytes()


def _rewrite_array(con: sqlite3.Connection, name: str, arr: np.ndarray) -> None:
    """Replace a stored array by ``arr`` (raw, one chunk, correct checksum): a consistent hand edit."""
    raw = np.ascontiguousarray(arr).tobytes()
    con.execute(
        "UPDATE arrays SET dtype=?, shape=?, nbytes=?, sha256=?, n_chunks=1, codec='raw' WHERE name=?",
        (
            arr.dtype.str,
            json.dumps(list(arr.shape)),
            len(raw),
            hashlib.sha256(raw).hexdigest(),
            name,
        ),
    )
    con.execute("DELETE FROM array_chunks WHERE name=?", (name,))
    con.execute("INSERT INTO array_chunks(name, seq, data) VALUES (?, 0, ?)", (name, raw))


# --- lossless round trips ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("photo_codec", "quality", "compress"),
    [("raw", 95, True), ("raw", 95, False), ("png", 95, True), ("webp", 100, True)],
)
def test_lossless_round_trip_bit_exact(
    tmp_path: Path, tiny_with_photos: Gallery, photo_codec: str, quality: int, compress: bool
) -> None:
    path = save_gallery(
        tiny_with_photos,
        tmp_path / "g.sqlite",
        compress=compress,
        photo_codec=photo_codec,  # type: ignore[arg-type]
        photo_quality=quality,
    )
    back = load_gallery(path)
    _same_arrays(tiny_with_photos, back)
    assert back.photos is not None and tiny_with_photos.photos is not None
    assert back.photos.dtype == np.uint8 and back.photos.shape == (6, 112, 112, 3)
    assert back.photos.tobytes() == tiny_with_photos.photos.tobytes()
    assert not back.photos.flags.writeable and not back.extras["masks"].flags.writeable
    assert back.photos_visible
    info = gallery_info(path)
    assert (info.photo_codec, info.photo_quality, info.has_photos) == (
        photo_codec,
        quality if photo_codec == "webp" else None,
        True,
    )
    assert [p.name for p in tmp_path.iterdir()] == ["g.sqlite"]


def test_compress_picks_arrays_where_it_helps(tmp_path: Path) -> None:
    masks = _sparse_masks(40)
    g = _gallery(40, extras={"masks": masks, "noise": np.random.default_rng(3).random((40, 64))})
    p = save_gallery(g, tmp_path / "c.sqlite")
    # float noise and random float32 embeddings do not compress by 10 %: kept raw
    assert _codecs(p) == {"embeddings": "raw", "extra/masks": "zlib", "extra/noise": "raw"}
    _same_arrays(g, load_gallery(p))
    q = save_gallery(g, tmp_path / "r.sqlite", compress=False)
    assert set(_codecs(q).values()) == {"raw"}
    _same_arrays(g, load_gallery(q))


def test_sparse_masks_are_much_smaller(tmp_path: Path) -> None:
    masks = _sparse_masks(200)
    assert masks.nbytes == 200 * N_PIX and 0.005 < masks.mean() < 0.05
    g = _gallery(200, extras={"masks": masks})
    small = save_gallery(g, tmp_path / "small.sqlite")
    big = save_gallery(g, tmp_path / "big.sqlite", compress=False)
    assert big.stat().st_size > masks.nbytes  # the raw file holds every byte
    assert small.stat().st_size < 0.2 * masks.nbytes
    back = load_gallery(small)
    assert back.extras["masks"].dtype == np.bool_
    assert np.array_equal(back.extras["masks"], masks)


def test_compressed_chunks(
    tmp_path: Path, tiny_with_photos: Gallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_storage, "CHUNK_BYTES", 10_000)
    masks = _sparse_masks(6)
    g = _gallery(6, photos=tiny_with_photos.photos, extras={"masks": masks})
    p = save_gallery(g, tmp_path / "g.sqlite")
    with sqlite3.connect(p) as con:
        n_chunks, codec = con.execute(
            "SELECT n_chunks, codec FROM arrays WHERE name='extra/masks'"
        ).fetchone()
    con.close()
    assert (n_chunks, codec) == (-(-masks.nbytes // 10_000), "zlib")
    back = load_gallery(p)
    assert np.array_equal(back.extras["masks"], masks)
    assert back.photos is not None and np.array_equal(back.photos, g.photos)


# --- WebP ----------------------------------------------------------------------------------------
def _photo_bytes(path: Path) -> bytes:
    with sqlite3.connect(path) as con:
        rows = con.execute(
            "SELECT data FROM array_chunks WHERE name='photos/data' ORDER BY seq"
        ).fetchall()
    con.close()
    return b"".join(bytes(r[0]) for r in rows)


def test_webp_bytes_are_stored_and_reloaded_verbatim(tmp_path: Path) -> None:
    faces = _faces(6)
    g = _gallery(6, photos=faces, webp=90)
    assert g.photo_codec == "webp" and g.photo_quality == 90 and g.encoded_photos is not None
    err = np.abs(g.photos.astype(np.int16) - faces).mean()  # type: ignore[union-attr]
    assert 0 < err < 3  # lossy, but close on a real photo
    p = save_gallery(g, tmp_path / "w.sqlite")
    assert _photo_bytes(p) == g.encoded_photos.data.tobytes()  # no second encoding
    back = load_gallery(p)
    assert back.photos is not None and back.photos.dtype == np.uint8
    assert np.array_equal(back.photos, g.photos)
    assert not back.photos.flags.writeable
    _same_arrays(g, back)
    info = gallery_info(p)
    assert (info.photo_codec, info.photo_quality) == ("webp", 90)
    # saving the loaded gallery again writes the same bytes: no generation loss, ever
    again = save_gallery(back, tmp_path / "again.sqlite", photo_codec="webp", photo_quality=90)
    assert _photo_bytes(again) == _photo_bytes(p)
    assert np.array_equal(load_gallery(again).photos, g.photos)  # type: ignore[arg-type]
    raw = save_gallery(g, tmp_path / "r.sqlite", photo_codec="raw", compress=False)
    assert np.array_equal(load_gallery(raw).photos, g.photos)  # type: ignore[arg-type]
    assert p.stat().st_size < raw.stat().st_size / 4


def test_lossy_codec_at_save_time_is_refused(tmp_path: Path) -> None:
    """A lossy codec would store pixels other than the embedded ones: choose it at build time."""
    raw = _gallery(3, photos=_faces(3))
    with pytest.raises(ValueError, match="lossy"):
        save_gallery(raw, tmp_path / "g.sqlite", photo_codec="webp", photo_quality=90)
    webp = _gallery(3, photos=_faces(3), webp=90)
    with pytest.raises(ValueError, match="lossy"):
        save_gallery(webp, tmp_path / "g.sqlite", photo_codec="webp", photo_quality=80)
    assert list(tmp_path.iterdir()) == []
    # lossless targets keep the pixels exactly
    for codec, quality in (("png", None), ("webp", 100)):
        p = save_gallery(
            webp, tmp_path / f"{codec}.sqlite", photo_codec=codec, photo_quality=quality
        )
        assert np.array_equal(load_gallery(p).photos, webp.photos)  # type: ignore[arg-type]


def test_webp_many_photos_threads_match_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    n = _photos._PARALLEL_MIN_PHOTOS + 6
    faces = np.concatenate([_faces(10)] * (n // 10 + 1))[:n]
    encoded = encode_photos(faces, "webp", 80)
    threaded = encoded.decode()
    monkeypatch.setattr(_photos, "_PARALLEL_MIN_PHOTOS", 10**9)
    serial = encoded.decode()
    assert np.array_equal(threaded, serial)
    assert encode_photos(faces, "webp", 80).data.tobytes() == encoded.data.tobytes()
    assert np.array_equal(encoded.take(np.array([n - 1, 0])).decode(), serial[[n - 1, 0]])


@pytest.mark.parametrize(("codec", "quality"), [("png", 95), ("webp", 100), ("raw", 5)])
def test_store_photos_lossless_codecs_and_purity(codec: str, quality: int) -> None:
    faces = _faces(3)
    before = faces.copy()
    out, encoded = store_photos(faces, codec, quality)
    assert np.array_equal(out, faces) and out.dtype == np.uint8
    assert out is not faces and not np.shares_memory(out, faces) and not out.flags.writeable
    assert np.array_equal(faces, before) and faces.flags.writeable
    assert (encoded is None) == (codec == "raw")


def test_store_photos_lossy_is_pure_and_deterministic() -> None:
    faces = _faces(2)
    faces.setflags(write=False)
    a, ea = store_photos(faces, "webp", 60)
    b, eb = store_photos(faces, "webp", 60)
    assert np.array_equal(a, b) and not np.array_equal(a, faces)
    assert ea is not None and eb is not None and ea.data.tobytes() == eb.data.tobytes()
    assert np.array_equal(ea.decode(), a)
    assert not faces.flags.writeable and np.array_equal(faces, _faces(2))


@pytest.mark.parametrize(
    ("codec", "quality", "match"),
    [
        ("jpeg", 95, "photo_codec"),
        ("webp", 101, "photo_quality"),
        ("webp", -1, "photo_quality"),
        ("webp", 95.0, "photo_quality"),
        ("webp", True, "photo_quality"),
    ],
)
def test_bad_codec_or_quality_refused(
    tmp_path: Path, tiny_with_photos: Gallery, codec: str, quality: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store_photos(_faces(1), codec, quality)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        save_gallery(
            tiny_with_photos, tmp_path / "g.sqlite", photo_codec=codec, photo_quality=quality
        )  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_store_photos_bad_shape_refused() -> None:
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        store_photos(np.zeros((2, 112, 112), np.uint8), "png")
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        store_photos(np.zeros((1, 112, 112, 3), np.float32), "webp")


def test_photos_that_are_not_the_decoded_bytes_are_refused() -> None:
    g = _gallery(2, photos=_faces(2), webp=70)
    with pytest.raises(ValueError, match="not the decoding of encoded_photos"):
        dataclasses.replace(g, photos=_faces(2))
    sub = g.subset([1])
    assert sub.encoded_photos is not None and np.array_equal(sub.photos, g.photos[1:])  # type: ignore[index]


def test_save_does_not_change_the_gallery(tmp_path: Path) -> None:
    faces = _faces(4)
    g = _gallery(4, photos=faces, extras={"masks": _sparse_masks(4)}, webp=70)
    snapshot = (g.embeddings.copy(), g.photos.copy(), g.extras["masks"].copy())  # type: ignore[union-attr]
    data = g.encoded_photos.data.copy()  # type: ignore[union-attr]
    save_gallery(g, tmp_path / "g.sqlite")
    save_gallery(g, tmp_path / "p.sqlite", photo_codec="png")
    assert np.array_equal(g.embeddings, snapshot[0])
    assert np.array_equal(g.photos, snapshot[1])
    assert np.array_equal(g.extras["masks"], snapshot[2])
    assert np.array_equal(g.encoded_photos.data, data) and g.photo_codec == "webp"  # type: ignore[union-attr]


def test_info_does_not_decode_photos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = save_gallery(_gallery(3, photos=_faces(3), webp=95), tmp_path / "g.sqlite")

    def no_decoding(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("decoded a photo")

    monkeypatch.setattr(_photos, "_decode_photo", no_decoding)
    info = gallery_info(p)
    assert info.has_photos and info.photo_codec == "webp" and info.n_images == 3
    with pytest.raises(AssertionError, match="decoded a photo"):  # the patch is what load uses
        load_gallery(p)


# --- damaged files -------------------------------------------------------------------------------
def _masks_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    masks = _sparse_masks(20)
    p = save_gallery(_gallery(20, extras={"masks": masks}), tmp_path / "g.sqlite")
    assert _codecs(p)["extra/masks"] == "zlib"
    return p, masks


def _set_chunk(p: Path, name: str, data: bytes) -> None:
    with sqlite3.connect(p) as con:
        con.execute("UPDATE array_chunks SET data=? WHERE name=? AND seq=0", (data, name))
    con.close()


def test_tampered_compressed_chunk_fails_checksum(tmp_path: Path) -> None:
    p, masks = _masks_file(tmp_path)
    edited = masks.copy()
    edited[3, 50, 50] = not edited[3, 50, 50]  # same size, valid zlib, other content
    _set_chunk(p, "extra/masks", zlib.compress(edited.tobytes(), 6))
    with pytest.raises(GalleryError, match="'extra/masks' is damaged \\(checksum mismatch\\)"):
        load_gallery(p)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda raw, packed: packed[:10] + bytes([packed[10] ^ 0xFF]) + packed[11:],  # bit rot
        lambda raw, packed: packed[: len(packed) // 2],  # truncated stream
        lambda raw, packed: zlib.compress(raw + b"\x00" * 100, 6),  # more bytes than declared
        lambda raw, packed: zlib.compress(raw[:-100], 6),  # fewer bytes than declared
        lambda raw, packed: packed + b"trailing",  # data after the stream
    ],
    ids=["bit-rot", "truncated", "too-long", "too-short", "trailing-data"],
)
def test_broken_compressed_chunk_refused(tmp_path: Path, mangle: object) -> None:
    p, masks = _masks_file(tmp_path)
    with sqlite3.connect(p) as con:
        (packed,) = con.execute("SELECT data FROM array_chunks WHERE name='extra/masks'").fetchone()
    con.close()
    _set_chunk(p, "extra/masks", mangle(masks.tobytes(), bytes(packed)))  # type: ignore[operator]
    with pytest.raises(GalleryError, match="extra/masks"):
        load_gallery(p)


def test_impossible_size_refused_before_inflating(tmp_path: Path) -> None:
    p, _ = _masks_file(tmp_path)
    with sqlite3.connect(p) as con:
        con.execute(
            "UPDATE arrays SET nbytes=?, shape=? WHERE name='extra/masks'",
            (20 * 10**9, json.dumps([20, 10**9])),
        )
        resign(con)  # a crafted file with a valid metadata checksum
    con.close()
    with pytest.raises(GalleryError, match="cannot come from so little data"):
        load_gallery(p)


def test_damaged_webp_data_refused(tmp_path: Path) -> None:
    p = save_gallery(_gallery(3, photos=_faces(3), webp=95), tmp_path / "g.sqlite")
    with sqlite3.connect(p) as con:
        (blob,) = con.execute("SELECT data FROM array_chunks WHERE name='photos/data'").fetchone()
    con.close()
    _set_chunk(p, "photos/data", bytes(blob[:100]) + bytes([blob[100] ^ 1]) + bytes(blob[101:]))
    with pytest.raises(GalleryError, match="checksum"):
        load_gallery(p)


def _edit_photos(p: Path, offsets: np.ndarray, data: np.ndarray) -> None:
    with sqlite3.connect(p) as con:
        _rewrite_array(con, "photos/offsets", offsets)
        _rewrite_array(con, "photos/data", data)
        resign(con)  # consistent but wrong: the metadata checksum matches
    con.close()


def test_consistent_but_wrong_photo_arrays_refused(tmp_path: Path) -> None:
    faces = _faces(2)
    p = save_gallery(_gallery(2, photos=faces), tmp_path / "g.sqlite", photo_codec="png")
    good = [io.BytesIO(), io.BytesIO()]
    Image.fromarray(faces[0]).save(good[0], format="PNG")
    Image.fromarray(faces[1]).resize((64, 64)).save(good[1], format="PNG")  # wrong size
    blobs = [b.getvalue() for b in good]
    data = np.frombuffer(b"".join(blobs), np.uint8)
    offsets = np.array([0, len(blobs[0]), len(data)], np.int64)
    _edit_photos(p, offsets, data)
    with pytest.raises(GalleryError, match="64x64 RGB image, expected 112x112"):
        load_gallery(p)
    _edit_photos(p, np.array([0, len(data) + 5, len(data)], np.int64), data)
    with pytest.raises(GalleryError, match="offsets do not cut"):
        load_gallery(p)
    jpeg = io.BytesIO()
    Image.fromarray(faces[0]).save(jpeg, format="JPEG")
    j = np.frombuffer(jpeg.getvalue() * 2, np.uint8)
    _edit_photos(p, np.array([0, len(j) // 2, len(j)], np.int64), j)
    with pytest.raises(GalleryError, match="not a readable PNG"):
        load_gallery(p)


def test_unknown_codecs_refused(tmp_path: Path) -> None:
    p, _ = _masks_file(tmp_path)
    with sqlite3.connect(p) as con:
        con.execute("UPDATE arrays SET codec='zstd' WHERE name='extra/masks'")
        resign(con)  # as a newer gmx would write it
    con.close()
    with pytest.raises(GalleryError, match=r"codec 'zstd'.*upgrade gmx"):
        load_gallery(p)
    q = save_gallery(_gallery(2, photos=_faces(2), webp=95), tmp_path / "q.sqlite")
    with sqlite3.connect(q) as con:
        con.execute("UPDATE meta SET value='avif' WHERE key='photo_codec'")
        resign(con)
    con.close()
    with pytest.raises(GalleryError, match=r"'avif'.*upgrade gmx"):
        load_gallery(q)
    with pytest.raises(GalleryError, match="'avif'"):
        gallery_info(q)


# --- schema 1 ------------------------------------------------------------------------------------
_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE syndromes (position INTEGER PRIMARY KEY, syndrome_id TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL, omim TEXT, genes TEXT NOT NULL, hpo TEXT NOT NULL);
CREATE TABLE images (position INTEGER PRIMARY KEY, image_id TEXT UNIQUE NOT NULL,
    subject_id TEXT NOT NULL, syndrome_id TEXT NOT NULL REFERENCES syndromes(syndrome_id), split TEXT);
CREATE TABLE arrays (name TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL,
    nbytes INTEGER NOT NULL, sha256 TEXT NOT NULL, n_chunks INTEGER NOT NULL);
CREATE TABLE array_chunks (name TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (name, seq));
"""


def _write_schema_1(g: Gallery, path: Path) -> None:
    """A gallery file as gmx schema 1 wrote it (written here by hand, independent of _storage)."""
    con = sqlite3.connect(path)
    con.executescript(_SCHEMA_1)
    meta = {
        "schema_version": "1",
        "gmx_version": "0.1.0",
        "created": "2025-01-01T00:00:00+00:00",
        "name": g.name,
        "version": g.version,
        "model_fingerprint": g.model_fingerprint,
        "variants": json.dumps([[v.model, v.flip, v.grey] for v in g.variants]),
        "photos_visible": "1" if g.photos_visible else "0",
        "description": "",
        "provenance": "",
    }
    con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    con.executemany(
        "INSERT INTO syndromes VALUES (?, ?, ?, ?, ?, ?)",
        [
            (k, s.syndrome_id, s.name, s.omim, json.dumps(s.genes), json.dumps(s.hpo))
            for k, s in enumerate(g.syndromes.values())
        ],
    )
    con.executemany(
        "INSERT INTO images VALUES (?, ?, ?, ?, ?)",
        [(k, i.image_id, i.subject_id, i.syndrome_id, i.split) for k, i in enumerate(g.images)],
    )
    arrays = {"embeddings": g.embeddings, "photos": g.photos}
    arrays.update({f"extra/{k}": v for k, v in g.extras.items()})
    for name, arr in arrays.items():
        if arr is None:
            continue
        raw = arr.tobytes()
        con.execute(
            "INSERT INTO arrays VALUES (?, ?, ?, ?, ?, 1)",
            (
                name,
                arr.dtype.str,
                json.dumps(list(arr.shape)),
                len(raw),
                hashlib.sha256(raw).hexdigest(),
            ),
        )
        con.execute("INSERT INTO array_chunks VALUES (?, 0, ?)", (name, raw))
    con.commit()
    con.close()


def test_schema_1_file_still_loads(tmp_path: Path) -> None:
    g = _gallery(4, photos=_faces(4), extras={"masks": _sparse_masks(4)})
    p = tmp_path / "v1.sqlite"
    _write_schema_1(g, p)
    back = load_gallery(p, expected_fingerprint=g.model_fingerprint)
    _same_arrays(g, back)
    assert back.photos is not None and np.array_equal(back.photos, g.photos)
    info = gallery_info(p)
    assert (info.schema_version, info.photo_codec, info.photo_quality) == (1, "raw", None)
    assert info.extras == ("masks",) and info.has_photos
    assert info.metadata_checksum == "absent"  # older files load; info says so
    # re-saving upgrades it to the current schema, compressed
    q = save_gallery(back, tmp_path / "v2.sqlite")
    assert gallery_info(q).schema_version == _storage.SCHEMA_VERSION == 2
    assert gallery_info(q).metadata_checksum == "verified"
    assert _codecs(q)["extra/masks"] == "zlib" and q.stat().st_size < p.stat().st_size


def test_schema_2_without_codec_column_refused(tmp_path: Path) -> None:
    g = _gallery(2)
    p = tmp_path / "bad.sqlite"
    _write_schema_1(g, p)
    with sqlite3.connect(p) as con:
        con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.close()
    with pytest.raises(GalleryError, match=r"schema 2\) lacks the arrays.codec column"):
        load_gallery(p)
