"""Gallery files: one SQLite database, written atomically.

Schema (version 1)::

    meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)
        schema_version, gmx_version, created (ISO 8601 UTC), name, version, model_fingerprint,
        variants (JSON [[model, flip, grey], ...]), photos_visible ("0"/"1"), description, provenance
    syndromes(position INTEGER PRIMARY KEY, syndrome_id TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
              omim TEXT NULL, genes TEXT NOT NULL (JSON list), hpo TEXT NOT NULL (JSON list))
    images(position INTEGER PRIMARY KEY, image_id TEXT UNIQUE NOT NULL, subject_id TEXT NOT NULL,
           syndrome_id TEXT NOT NULL REFERENCES syndromes(syndrome_id), split TEXT NULL)
    arrays(name TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL (JSON), nbytes INTEGER,
           sha256 TEXT NOT NULL, n_chunks INTEGER NOT NULL)
    array_chunks(name TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(name, seq))

Arrays are stored as raw C-order little-endian bytes (no pickle, no ``np.save`` header) split into
chunks of at most 64 MiB (SQLite's default BLOB limit is 1 GB); ``arrays`` names them:
``embeddings`` (N, V, D) float32, ``photos`` (N, 112, 112, 3) uint8 when present, and
``extra/<name>`` for each of :attr:`Gallery.extras`. Every array is checked against its SHA-256 on
load, so a damaged file is refused instead of ranking on garbage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import gmx
from gmx.errors import GalleryError
from gmx.gallery._model import Gallery, GalleryImage, Syndrome
from gmx.variants import Variant

logger = logging.getLogger(__name__)

#: Version of the SQLite layout written by :func:`save_gallery`.
SCHEMA_VERSION = 1

#: Largest BLOB written in one row.
CHUNK_BYTES = 64 * 1024 * 1024

#: dtypes an array in a gallery file may have (never ``object``).
_ALLOWED_DTYPES = frozenset(
    np.dtype(t).str
    for t in ("<f2", "<f4", "<f8", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "|b1")
)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE syndromes (
    position INTEGER PRIMARY KEY,
    syndrome_id TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL,
    omim TEXT,
    genes TEXT NOT NULL,
    hpo TEXT NOT NULL
);
CREATE TABLE images (
    position INTEGER PRIMARY KEY,
    image_id TEXT UNIQUE NOT NULL,
    subject_id TEXT NOT NULL,
    syndrome_id TEXT NOT NULL REFERENCES syndromes(syndrome_id),
    split TEXT
);
CREATE TABLE arrays (
    name TEXT PRIMARY KEY,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    nbytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    n_chunks INTEGER NOT NULL
);
CREATE TABLE array_chunks (
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (name, seq)
);
"""


@dataclass(frozen=True)
class GalleryInfo:
    """What a gallery file holds, read without loading its arrays.

    Attributes:
        path: the file.
        name: gallery name.
        version: gallery version.
        model_fingerprint: fingerprint of the models that embedded it.
        variants: its model/TTA variants.
        n_images: number of images.
        n_syndromes: number of syndromes.
        n_subjects: number of distinct patients.
        embedding_dim: D.
        has_photos: whether aligned photos are stored.
        photos_visible: whether the photos may be shown.
        extras: names of the extra per-image arrays.
        created: ISO 8601 UTC time of writing.
        gmx_version: gmx version that wrote it.
        schema_version: file layout version.
        description: free text.
        provenance: where it came from.
        file_size: bytes on disk.
    """

    path: Path
    name: str
    version: str
    model_fingerprint: str
    variants: tuple[Variant, ...]
    n_images: int
    n_syndromes: int
    n_subjects: int
    embedding_dim: int
    has_photos: bool
    photos_visible: bool
    extras: tuple[str, ...]
    created: str
    gmx_version: str
    schema_version: int
    description: str
    provenance: str
    file_size: int


# --- writing --------------------------------------------------------------------------------------
def _variants_json(variants: tuple[Variant, ...]) -> str:
    return json.dumps([[v.model, v.flip, v.grey] for v in variants])


def _write_array(con: sqlite3.Connection, name: str, array: np.ndarray) -> None:
    arr = np.ascontiguousarray(array)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not np.little_endian):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    dtype = arr.dtype.str
    if dtype not in _ALLOWED_DTYPES:
        raise GalleryError(
            f"array {name!r} has dtype {arr.dtype}, which a gallery file cannot hold"
        )
    buf = memoryview(arr.reshape(-1).view(np.uint8))
    digest = hashlib.sha256(buf).hexdigest()
    chunks = [buf[i : i + CHUNK_BYTES] for i in range(0, len(buf), CHUNK_BYTES)] or [buf[:0]]
    con.execute(
        "INSERT INTO arrays(name, dtype, shape, nbytes, sha256, n_chunks) VALUES (?, ?, ?, ?, ?, ?)",
        (name, dtype, json.dumps(list(arr.shape)), len(buf), digest, len(chunks)),
    )
    con.executemany(
        "INSERT INTO array_chunks(name, seq, data) VALUES (?, ?, ?)",
        ((name, seq, sqlite3.Binary(c)) for seq, c in enumerate(chunks)),
    )


def _write_database(con: sqlite3.Connection, gallery: Gallery) -> None:
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            con.execute(statement)
    meta = {
        "schema_version": str(SCHEMA_VERSION),
        "gmx_version": gmx.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "name": gallery.name,
        "version": gallery.version,
        "model_fingerprint": gallery.model_fingerprint,
        "variants": _variants_json(gallery.variants),
        "photos_visible": "1" if gallery.photos_visible else "0",
        "description": gallery.description,
        "provenance": gallery.provenance,
    }
    con.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", meta.items())
    con.executemany(
        "INSERT INTO syndromes(position, syndrome_id, name, omim, genes, hpo) VALUES (?, ?, ?, ?, ?, ?)",
        (
            (k, s.syndrome_id, s.name, s.omim, json.dumps(list(s.genes)), json.dumps(list(s.hpo)))
            for k, s in enumerate(gallery.syndromes.values())
        ),
    )
    con.executemany(
        "INSERT INTO images(position, image_id, subject_id, syndrome_id, split) VALUES (?, ?, ?, ?, ?)",
        (
            (k, im.image_id, im.subject_id, im.syndrome_id, im.split)
            for k, im in enumerate(gallery.images)
        ),
    )
    _write_array(con, "embeddings", gallery.embeddings)
    if gallery.photos is not None:
        _write_array(con, "photos", gallery.photos)
    for key, arr in gallery.extras.items():
        _write_array(con, f"extra/{key}", arr)


def save_gallery(gallery: Gallery, path: str | os.PathLike[str]) -> Path:
    """Write a gallery to a SQLite file, atomically.

    The database is written to a temporary file in the same directory and moved over ``path`` with
    :func:`os.replace` only once complete, so a crash or error mid-write leaves any previous file intact.

    Args:
        gallery: the gallery.
        path: destination file (conventionally ``*.sqlite``); its directory must exist.

    Returns:
        The path written.

    Raises:
        GalleryError: the directory does not exist or an array cannot be stored.
    """
    dest = Path(path)
    if not dest.parent.is_dir():
        raise GalleryError(f"cannot write gallery {dest}: directory {dest.parent} does not exist")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("BEGIN")
            _write_database(con, gallery)
            con.execute("COMMIT")
        finally:
            con.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)
    logger.info("wrote gallery %r (%d images) to %s", gallery.name, len(gallery), dest)
    return dest


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable where the OS allows opening directories (not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        logger.debug("fsync of %s failed: %s", directory, exc)
    finally:
        os.close(fd)


# --- reading --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _open_readonly(path: str | os.PathLike[str]) -> Iterator[tuple[Path, sqlite3.Connection]]:
    src = Path(path)
    if not src.is_file():
        raise GalleryError(f"gallery file {src} does not exist; build one with `gmx gallery build`")
    uri = src.resolve().as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise GalleryError(f"cannot open gallery file {src}: {exc}") from exc
    try:
        yield src, con
    except sqlite3.DatabaseError as exc:
        raise GalleryError(
            f"{src} is not a readable gmx gallery (corrupt or another kind of file): {exc}"
        ) from exc
    finally:
        con.close()


def _read_meta(con: sqlite3.Connection, src: Path) -> dict[str, str]:
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    need = {"meta", "syndromes", "images", "arrays", "array_chunks"}
    if not need <= tables:
        raise GalleryError(
            f"{src} is a SQLite file but not a gmx gallery (missing tables {sorted(need - tables)})"
        )
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    missing = {"schema_version", "name", "version", "model_fingerprint", "variants"} - meta.keys()
    if missing:
        raise GalleryError(f"gallery {src} lacks metadata {sorted(missing)}")
    try:
        schema = int(meta["schema_version"])
    except ValueError:
        raise GalleryError(
            f"gallery {src} has a bad schema_version {meta['schema_version']!r}"
        ) from None
    if schema > SCHEMA_VERSION:
        raise GalleryError(
            f"gallery {src} uses file schema {schema}, newer than this gmx reads ({SCHEMA_VERSION}); upgrade gmx"
        )
    if schema < 1:
        raise GalleryError(f"gallery {src} has an unknown schema_version {schema}")
    return meta


def _parse_variants(text: str, src: Path) -> tuple[Variant, ...]:
    try:
        raw = json.loads(text)
        return tuple(Variant(int(m), bool(f), bool(g)) for m, f, g in raw)
    except (ValueError, TypeError) as exc:
        raise GalleryError(f"gallery {src} has unreadable variants {text!r}: {exc}") from exc


def _check_fingerprint(found: str, expected: str | None, src: Path) -> None:
    if expected is not None and found != expected:
        raise GalleryError(
            f"this gallery ({src.name}) was embedded with model {found[:16]}; you loaded model "
            f"{expected[:16]} — rebuild with `gmx gallery build`"
        )


def _read_array(con: sqlite3.Connection, name: str, src: Path) -> np.ndarray:
    row = con.execute(
        "SELECT dtype, shape, nbytes, sha256, n_chunks FROM arrays WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        raise GalleryError(f"gallery {src} has no array {name!r}")
    dtype, shape_json, nbytes, digest, n_chunks = row
    if dtype not in _ALLOWED_DTYPES:
        raise GalleryError(f"gallery {src}: array {name!r} has a disallowed dtype {dtype!r}")
    try:
        shape = tuple(int(x) for x in json.loads(shape_json))
    except (ValueError, TypeError) as exc:
        raise GalleryError(f"gallery {src}: array {name!r} has a bad shape {shape_json!r}") from exc
    chunks = con.execute(
        "SELECT seq, data FROM array_chunks WHERE name = ? ORDER BY seq", (name,)
    ).fetchall()
    if [c[0] for c in chunks] != list(range(n_chunks)):
        raise GalleryError(
            f"gallery {src}: array {name!r} is incomplete ({len(chunks)} of {n_chunks} chunks)"
        )
    data = b"".join(bytes(c[1]) for c in chunks)
    dt = np.dtype(dtype)
    if len(data) != nbytes or nbytes != int(np.prod(shape, dtype=np.int64)) * dt.itemsize:
        raise GalleryError(
            f"gallery {src}: array {name!r} has {len(data)} bytes, expected {nbytes} for {shape} {dtype}"
        )
    if hashlib.sha256(data).hexdigest() != digest:
        raise GalleryError(
            f"gallery {src}: array {name!r} is damaged (checksum mismatch); rebuild or restore the file"
        )
    arr = np.frombuffer(data, dtype=dt).reshape(shape)
    if dt.byteorder == "<" and not np.little_endian:  # pragma: no cover - big-endian hosts
        arr = arr.astype(dt.newbyteorder("="))
        arr.setflags(write=False)
    return arr


def load_gallery(
    path: str | os.PathLike[str], *, expected_fingerprint: str | None = None
) -> Gallery:
    """Load a gallery file written by :func:`save_gallery`.

    Args:
        path: the SQLite file.
        expected_fingerprint: the fingerprint of the loaded models (``Ensemble.fingerprint``); when
            given, a gallery embedded with other models is refused before its arrays are read.

    Returns:
        The gallery; its arrays are read-only and bit-identical to what was saved.

    Raises:
        GalleryError: missing, corrupt, not a gallery, newer schema, or embedded with other models.
    """
    with _open_readonly(path) as (src, con):
        meta = _read_meta(con, src)
        _check_fingerprint(meta["model_fingerprint"], expected_fingerprint, src)
        variants = _parse_variants(meta["variants"], src)
        syndromes = []
        for sid, name, omim, genes, hpo in con.execute(
            "SELECT syndrome_id, name, omim, genes, hpo FROM syndromes ORDER BY position"
        ):
            try:
                syndromes.append(
                    Syndrome(sid, name, omim, tuple(json.loads(genes)), tuple(json.loads(hpo)))
                )
            except (ValueError, TypeError) as exc:
                raise GalleryError(f"gallery {src}: syndrome {sid!r} is unreadable: {exc}") from exc
        images = tuple(
            GalleryImage(iid, sub, sid, split)
            for iid, sub, sid, split in con.execute(
                "SELECT image_id, subject_id, syndrome_id, split FROM images ORDER BY position"
            )
        )
        names = [r[0] for r in con.execute("SELECT name FROM arrays ORDER BY name")]
        embeddings = _read_array(con, "embeddings", src)
        photos = _read_array(con, "photos", src) if "photos" in names else None
        extras = {
            n.split("/", 1)[1]: _read_array(con, n, src) for n in names if n.startswith("extra/")
        }
    try:
        return Gallery(
            name=meta["name"],
            version=meta["version"],
            images=images,
            syndromes=syndromes,
            embeddings=embeddings,
            variants=variants,
            model_fingerprint=meta["model_fingerprint"],
            photos=photos,
            photos_visible=meta.get("photos_visible", "0") == "1",
            extras=extras,
            description=meta.get("description", ""),
            provenance=meta.get("provenance", ""),
        )
    except GalleryError as exc:
        raise GalleryError(f"gallery {src} is inconsistent: {exc}") from exc


def gallery_info(path: str | os.PathLike[str]) -> GalleryInfo:
    """Read a gallery file's metadata and counts, without loading any array.

    Raises:
        GalleryError: missing, corrupt or not a gallery.
    """
    with _open_readonly(path) as (src, con):
        meta = _read_meta(con, src)
        n_images, n_subjects = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT subject_id) FROM images"
        ).fetchone()
        (n_syndromes,) = con.execute("SELECT COUNT(*) FROM syndromes").fetchone()
        arrays = dict(con.execute("SELECT name, shape FROM arrays").fetchall())
    if "embeddings" not in arrays:
        raise GalleryError(f"gallery {src} has no embeddings")
    shape = json.loads(arrays["embeddings"])
    return GalleryInfo(
        path=src,
        name=meta["name"],
        version=meta["version"],
        model_fingerprint=meta["model_fingerprint"],
        variants=_parse_variants(meta["variants"], src),
        n_images=int(n_images),
        n_syndromes=int(n_syndromes),
        n_subjects=int(n_subjects),
        embedding_dim=int(shape[-1]),
        has_photos="photos" in arrays,
        photos_visible=meta.get("photos_visible", "0") == "1",
        extras=tuple(sorted(n.split("/", 1)[1] for n in arrays if n.startswith("extra/"))),
        created=meta.get("created", ""),
        gmx_version=meta.get("gmx_version", ""),
        schema_version=int(meta["schema_version"]),
        description=meta.get("description", ""),
        provenance=meta.get("provenance", ""),
        file_size=src.stat().st_size,
    )


__all__ = ["SCHEMA_VERSION", "GalleryInfo", "gallery_info", "load_gallery", "save_gallery"]
