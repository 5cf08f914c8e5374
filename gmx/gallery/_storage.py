"""Gallery files: one SQLite database, written atomically.

Schema (version 2; version 1 files, which lack ``arrays.codec`` and the photo codec, still load)::

    meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)
        schema_version, gmx_version, created (ISO 8601 UTC), name, version, model_fingerprint,
        variants (JSON [[model, flip, grey], ...]), photos_visible ("0"/"1"), description, provenance,
        photo_codec ("raw" / "png" / "webp", when there are photos), photo_quality (webp only),
        metadata_sha256 (see below; absent in files written before gmx recorded it)
    syndromes(position INTEGER PRIMARY KEY, syndrome_id TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
              omim TEXT NULL, genes TEXT NOT NULL (JSON list), hpo TEXT NOT NULL (JSON list))
    images(position INTEGER PRIMARY KEY, image_id TEXT UNIQUE NOT NULL, subject_id TEXT NOT NULL,
           syndrome_id TEXT NOT NULL REFERENCES syndromes(syndrome_id), split TEXT NULL)
    arrays(name TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL (JSON), nbytes INTEGER,
           sha256 TEXT NOT NULL, n_chunks INTEGER NOT NULL, codec TEXT NOT NULL DEFAULT 'raw')
    array_chunks(name TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(name, seq))

An array is its raw C-order little-endian bytes (no pickle, no ``np.save`` header) split into chunks of
at most 64 MiB (SQLite's default BLOB limit is 1 GB); with ``codec = 'zlib'`` each chunk is stored as
an independent zlib stream (level 6). ``nbytes`` and ``sha256`` always describe the *uncompressed*
bytes, and every array is checked against its SHA-256 on load, so a damaged file is refused instead of
ranking on garbage. The metadata is checked too: ``metadata_sha256`` is the SHA-256 of a canonical
JSON of every other ``meta`` entry and every row of ``syndromes``, ``images`` and ``arrays``
(:func:`metadata_digest`), so a flipped byte that renames a syndrome or moves an image to another
syndrome is refused on load. Files without it (written by an older gmx) still load;
``gmx gallery info`` reports ``metadata_checksum: "absent"`` for them, and loading and saving such a
file with :func:`load_gallery` / :func:`save_gallery` adds it. Arrays: ``embeddings`` (N, V, D) float32; photos, either ``photos``
(N, 112, 112, 3) uint8 (``photo_codec = 'raw'``) or, for ``png`` / ``webp``, one encoded image per
photo concatenated in ``photos/data`` (uint8) with ``photos/offsets`` (N + 1,) int64 (photo ``i`` is
``data[offsets[i]:offsets[i + 1]]``); and ``extra/<name>`` for each of :attr:`Gallery.extras`.

A calibrated gallery (:attr:`Gallery.calibration`, ``gmx gallery calibrate``) also holds the meta
entry ``calibration`` (JSON: ``format`` 1, ``gallery_name``, ``method``, ``n_images``,
``n_skipped_images``, ``skipped_syndromes``, ``model_fingerprint``, ``provenance``, ``arrays``) and the
float64 arrays ``calibration/own``, ``calibration/other``, ``calibration/nearest`` and, with an
unaffected cohort, ``calibration/unaffected`` (sorted distances). Both are ordinary ``meta`` and
``arrays`` rows, so the metadata checksum covers them (a changed count or distance is refused on
load). The schema version stays 2: a gmx that does not know the calibration loads such a file and
ignores it; a file without one loads with ``calibration=None``. A calibration ``format`` newer than
this gmx reads is ignored with a warning (the gallery still loads).

Photos are written exactly as the gallery holds them (:attr:`Gallery.encoded_photos` verbatim, or raw
pixels) and read back with their bytes, so the stored pixels are the ones that were embedded (see
:mod:`gmx.gallery._photos`); a lossy codec can only be chosen when the gallery is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import gmx
from gmx._io import atomic_write
from gmx.constants import TEMPLATE_SIZE
from gmx.errors import GalleryError
from gmx.gallery._calibration import Calibration
from gmx.gallery._model import Gallery, GalleryImage, Syndrome
from gmx.gallery._photos import (
    DEFAULT_WEBP_QUALITY,
    PHOTO_CODECS,
    EncodedPhotos,
    PhotoCodec,
    check_photo_codec,
    encode_photos,
    is_lossless,
)
from gmx.variants import Variant

logger = logging.getLogger(__name__)

#: Version of the SQLite layout written by :func:`save_gallery` (version 1 files are read too).
SCHEMA_VERSION = 2

#: Oldest layout :func:`load_gallery` reads.
_OLDEST_SCHEMA = 1

#: Largest BLOB written in one row.
CHUNK_BYTES = 64 * 1024 * 1024

#: dtypes an array in a gallery file may have (never ``object``).
_ALLOWED_DTYPES = frozenset(
    np.dtype(t).str
    for t in ("<f2", "<f4", "<f8", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "|b1")
)

#: Array codecs (``arrays.codec``): raw bytes, or each chunk an independent zlib stream.
_ARRAY_CODECS = frozenset({"raw", "zlib"})

#: zlib level used for compressed arrays.
ZLIB_LEVEL = 6

#: An array is stored compressed only if that takes at most this fraction of its raw size.
COMPRESS_MAX_RATIO = 0.9

#: Deflate cannot expand data more than ~1032x; a larger claimed ratio means a damaged file.
_ZLIB_MAX_EXPANSION = 1100

#: Compressibility is first estimated on this many evenly spaced pieces of this size.
_SAMPLE_PIECES, _SAMPLE_BYTES = 8, 128 * 1024

#: ``meta`` key of the metadata checksum (:func:`metadata_digest`).
METADATA_KEY = "metadata_sha256"

#: ``meta`` key of the stored calibration, its layout version and its arrays' name prefix.
CALIBRATION_KEY, CALIBRATION_FORMAT, CALIBRATION_PREFIX = "calibration", 1, "calibration/"

#: :attr:`GalleryInfo.metadata_checksum` values.
METADATA_VERIFIED, METADATA_ABSENT = "verified", "absent"

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
    n_chunks INTEGER NOT NULL,
    codec TEXT NOT NULL DEFAULT 'raw'
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
        photo_codec: how the photos are stored (``"raw"``, ``"png"``, ``"webp"``); ``None`` without
            photos.
        photo_quality: WebP quality (100 = lossless) for ``"webp"``, else ``None``.
        metadata_checksum: ``"verified"`` (the metadata matches its recorded SHA-256) or
            ``"absent"`` (a file written before gmx recorded one: not checked).
        calibration_method: ``"leave-one-patient-out"`` / ``"held-out"`` when the file stores a
            calibration, else ``None``.
        calibration_images: query images the calibration counted (``None``: not calibrated).
        calibration_unaffected: unaffected faces in it (``None``: none, or not calibrated).
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
    photo_codec: str | None = None
    photo_quality: int | None = None
    metadata_checksum: str = METADATA_ABSENT
    calibration_method: str | None = None
    calibration_images: int | None = None
    calibration_unaffected: int | None = None


# --- metadata checksum ----------------------------------------------------------------------------
def metadata_digest(con: sqlite3.Connection) -> str:
    """SHA-256 (hex) of a gallery file's metadata in canonical form.

    Canonical form: compact UTF-8 JSON of ``{"meta": [[key, value], ...] sorted by key without
    metadata_sha256, "syndromes": rows by position, "images": rows by position, "arrays": rows by
    name}`` (the ``arrays`` rows carry every array's dtype, shape, size and SHA-256, so they pin the
    array contents too; schema 1 files, which lack ``arrays.codec``, read it as ``"raw"``).
    """
    codec = "codec" if _has_codec_column(con) else "'raw'"
    canonical = {
        "meta": [
            list(r)
            for r in con.execute(
                "SELECT key, value FROM meta WHERE key != ? ORDER BY key", (METADATA_KEY,)
            )
        ],
        "syndromes": [
            list(r)
            for r in con.execute(
                "SELECT position, syndrome_id, name, omim, genes, hpo FROM syndromes ORDER BY position"
            )
        ],
        "images": [
            list(r)
            for r in con.execute(
                "SELECT position, image_id, subject_id, syndrome_id, split FROM images ORDER BY position"
            )
        ],
        "arrays": [
            list(r)
            for r in con.execute(
                f"SELECT name, dtype, shape, nbytes, sha256, n_chunks, {codec} FROM arrays ORDER BY name"
            )
        ],
    }
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_metadata(con: sqlite3.Connection, meta: dict[str, str], src: Path) -> str:
    """``"verified"`` or ``"absent"`` (an older file); raises if the metadata was changed.

    Raises:
        GalleryError: the recorded checksum does not match the metadata.
    """
    recorded = meta.get(METADATA_KEY)
    if recorded is None:
        logger.info("gallery %s has no metadata checksum (written by an older gmx)", src)
        return METADATA_ABSENT
    if metadata_digest(con) != recorded:
        raise GalleryError(
            f"gallery {src} is damaged: its metadata (syndrome names, image labels, settings) does "
            "not match its checksum; rebuild the gallery or restore the file"
        )
    return METADATA_VERIFIED


# --- writing --------------------------------------------------------------------------------------
def _variants_json(variants: tuple[Variant, ...]) -> str:
    return json.dumps([[v.model, v.flip, v.grey] for v in variants])


def _worth_compressing(buf: memoryview) -> bool:
    """Estimate on a few evenly spaced samples whether zlib saves more than 10 %."""
    n = len(buf)
    if n <= _SAMPLE_PIECES * _SAMPLE_BYTES:
        return True  # small: compress it all and decide on the real size
    step = (n - _SAMPLE_BYTES) // (_SAMPLE_PIECES - 1)
    packed = sum(
        len(zlib.compress(buf[k * step : k * step + _SAMPLE_BYTES], ZLIB_LEVEL))
        for k in range(_SAMPLE_PIECES)
    )
    return packed <= COMPRESS_MAX_RATIO * _SAMPLE_PIECES * _SAMPLE_BYTES


def _write_array(
    con: sqlite3.Connection, name: str, array: np.ndarray, *, compress: bool = False
) -> str:
    """Store one array; returns the codec used (``"raw"`` or ``"zlib"``)."""
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
    chunks: list[bytes | memoryview] = [
        buf[i : i + CHUNK_BYTES] for i in range(0, len(buf), CHUNK_BYTES)
    ] or [buf[:0]]
    codec = "raw"
    if compress and len(buf) > 0 and _worth_compressing(buf):
        packed = [zlib.compress(c, ZLIB_LEVEL) for c in chunks]
        if sum(len(c) for c in packed) <= COMPRESS_MAX_RATIO * len(buf):
            chunks, codec = list(packed), "zlib"
    con.execute(
        "INSERT INTO arrays(name, dtype, shape, nbytes, sha256, n_chunks, codec) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (name, dtype, json.dumps(list(arr.shape)), len(buf), digest, len(chunks), codec),
    )
    con.executemany(
        "INSERT INTO array_chunks(name, seq, data) VALUES (?, ?, ?)",
        ((name, seq, sqlite3.Binary(c)) for seq, c in enumerate(chunks)),
    )
    return codec


def _write_database(
    con: sqlite3.Connection,
    gallery: Gallery,
    *,
    compress: bool,
    encoded: EncodedPhotos | None,
) -> None:
    """Write everything; photos as ``encoded`` (verbatim) or, when ``None``, as raw pixels."""
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
    if gallery.photos is not None:
        meta["photo_codec"] = "raw" if encoded is None else encoded.codec
        if encoded is not None and encoded.quality is not None:
            meta["photo_quality"] = str(int(encoded.quality))
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
    _write_array(con, "embeddings", gallery.embeddings, compress=compress)
    if gallery.photos is not None:
        if encoded is None:
            _write_array(con, "photos", gallery.photos, compress=compress)
        else:
            _write_array(con, "photos/offsets", encoded.offsets, compress=compress)
            _write_array(con, "photos/data", encoded.data, compress=compress)
    for key, arr in gallery.extras.items():
        _write_array(con, f"extra/{key}", arr, compress=compress)
    if gallery.calibration is not None:
        _write_calibration(con, gallery.calibration, compress=compress)
    # Last: the digest of everything written above, read back the way load_gallery reads it.
    con.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (METADATA_KEY, metadata_digest(con)))


def _calibration_arrays(cal: Calibration) -> dict[str, np.ndarray]:
    arrays = {"own": cal.own_distances, "other": cal.other_distances}
    if cal.nearest_distances is not None:
        arrays["nearest"] = cal.nearest_distances
    if cal.unaffected_distances is not None:
        arrays["unaffected"] = cal.unaffected_distances
    return arrays


def _write_calibration(con: sqlite3.Connection, cal: Calibration, *, compress: bool) -> None:
    """The ``calibration`` meta entry and its ``calibration/*`` arrays (float64)."""
    arrays = _calibration_arrays(cal)
    record = {
        "format": CALIBRATION_FORMAT,
        "gallery_name": cal.gallery_name,
        "method": cal.method,
        "n_images": cal.n_images,
        "n_skipped_images": cal.n_skipped_images,
        "skipped_syndromes": list(cal.skipped_syndromes),
        "model_fingerprint": cal.model_fingerprint,
        "provenance": cal.provenance,
        "arrays": sorted(arrays),
    }
    con.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?)",
        (CALIBRATION_KEY, json.dumps(record, ensure_ascii=False, sort_keys=True)),
    )
    for key, arr in arrays.items():
        _write_array(con, CALIBRATION_PREFIX + key, arr.astype("<f8"), compress=compress)


def _calibration_record(meta: dict[str, str], src: Path) -> dict[str, object] | None:
    """The parsed ``calibration`` meta entry; ``None`` without one or in a newer format (warned).

    Raises:
        GalleryError: the entry is not a JSON object.
    """
    text = meta.get(CALIBRATION_KEY)
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise GalleryError(f"gallery {src}: its calibration record is unreadable: {exc}") from exc
    if not isinstance(record, dict):
        raise GalleryError(f"gallery {src}: its calibration record is not a JSON object")
    fmt = record.get("format")
    if not isinstance(fmt, int) or fmt > CALIBRATION_FORMAT:
        logger.warning(
            "gallery %s stores a calibration in format %r, which this gmx does not read; "
            "loading it without calibration (upgrade gmx, or run `gmx gallery calibrate`)",
            src,
            fmt,
        )
        return None
    return record


def _read_calibration(
    con: sqlite3.Connection, meta: dict[str, str], src: Path, *, has_codec: bool
) -> Calibration | None:
    """The stored calibration, or ``None``.

    Raises:
        GalleryError: the record and its arrays do not fit together.
    """
    record = _calibration_record(meta, src)
    if record is None:
        return None
    try:
        names = [str(n) for n in record["arrays"]]  # type: ignore[union-attr]
        arrays = {
            n: _read_array(con, CALIBRATION_PREFIX + n, src, has_codec=has_codec) for n in names
        }
        return Calibration(
            gallery_name=str(record["gallery_name"]),
            own_distances=arrays["own"],
            other_distances=arrays["other"],
            unaffected_distances=arrays.get("unaffected"),
            n_images=int(record["n_images"]),  # type: ignore[call-overload]
            n_skipped_images=int(record["n_skipped_images"]),  # type: ignore[call-overload]
            skipped_syndromes=tuple(str(x) for x in record["skipped_syndromes"]),  # type: ignore[union-attr]
            method=str(record["method"]),
            nearest_distances=arrays.get("nearest"),
            model_fingerprint=str(record.get("model_fingerprint", "")),
            provenance=str(record.get("provenance", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GalleryError(f"gallery {src}: its stored calibration is inconsistent: {exc}") from exc


def _photos_to_write(
    gallery: Gallery, codec: str | None, quality: int | None
) -> EncodedPhotos | None:
    """The bytes to store: the gallery's own when the codec is kept, else a lossless re-encoding.

    Raises:
        ValueError: a bad codec or quality, or a lossy codec the photos are not already stored in.
    """
    if gallery.photos is None or codec is None:
        return gallery.encoded_photos
    if quality is None:
        quality = gallery.photo_quality if codec == gallery.photo_codec else None
        quality = DEFAULT_WEBP_QUALITY if quality is None else quality
    check_photo_codec(codec, quality)
    own = gallery.encoded_photos
    if own is not None and own.codec == codec and (codec != "webp" or own.quality == quality):
        return own
    if not is_lossless(codec, quality):
        raise ValueError(
            f"photo_codec={codec!r} at quality {quality} is lossy: saving would store pixels other "
            f"than the ones gallery {gallery.name!r} embedded (its photos are "
            f"{gallery.photo_codec}). Choose the codec when building (build_gallery(..., "
            f"photo_codec={codec!r}, photo_quality={quality})) or save losslessly (raw, png, "
            "webp at quality 100)"
        )
    return None if codec == "raw" else encode_photos(gallery.photos, codec, quality)


def save_gallery(
    gallery: Gallery,
    path: str | os.PathLike[str],
    *,
    compress: bool = True,
    photo_codec: PhotoCodec | None = None,
    photo_quality: int | None = None,
) -> Path:
    """Write a gallery to a SQLite file, atomically (:func:`gmx._io.atomic_write`).

    The database is written to a temporary file in the same directory and moved over ``path`` only
    once complete, so a crash or error mid-write leaves any previous file intact.

    The stored photos are exactly :attr:`Gallery.photos`, the pixels that were embedded: by default
    they are written as the gallery holds them (its :attr:`Gallery.encoded_photos` bytes verbatim, or
    raw pixels). Another codec is accepted only if it is lossless; a lossy codec is chosen when the
    gallery is built (:func:`~gmx.gallery.build_gallery`'s ``photo_codec``), so that the embeddings
    are computed from the decoded pixels.

    Args:
        gallery: the gallery.
        path: destination file (conventionally ``*.sqlite``); its directory must exist.
        compress: zlib-compress (level 6) every array whose compressed size is at most 90 % of its raw
            size (masks, sparse maps, raw photos; float embeddings usually stay raw). Lossless.
        photo_codec: ``None`` (keep the gallery's), ``"raw"``, ``"png"``, or ``"webp"`` (only at
            quality 100 or the quality the photos are already stored in).
        photo_quality: WebP quality (default: the gallery's, else 95); ignored by raw and png.

    Returns:
        The path written.

    Raises:
        GalleryError: the directory does not exist or an array cannot be stored.
        ValueError: unknown ``photo_codec``, ``photo_quality`` outside [0, 100], or a lossy codec
            the photos are not stored in.
    """
    encoded = _photos_to_write(gallery, photo_codec, photo_quality)
    dest = Path(path)
    if not dest.parent.is_dir():
        raise GalleryError(f"cannot write gallery {dest}: directory {dest.parent} does not exist")
    with atomic_write(dest) as tmp:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=OFF")
            con.execute("PRAGMA synchronous=OFF")
            con.execute("BEGIN")
            _write_database(con, gallery, compress=compress, encoded=encoded)
            con.execute("COMMIT")
        finally:
            con.close()
    logger.info(
        "wrote gallery %r (%d images, photos %s) to %s (%d bytes)",
        gallery.name,
        len(gallery),
        "none" if gallery.photos is None else ("raw" if encoded is None else encoded.codec),
        dest,
        dest.stat().st_size,
    )
    return dest


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
    if schema < _OLDEST_SCHEMA:
        raise GalleryError(f"gallery {src} has an unknown schema_version {schema}")
    columns = {r[1] for r in con.execute("PRAGMA table_info(arrays)")}
    if schema >= 2 and "codec" not in columns:
        raise GalleryError(f"gallery {src} (schema {schema}) lacks the arrays.codec column")
    return meta


def _has_codec_column(con: sqlite3.Connection) -> bool:
    """Schema 1 files have no ``arrays.codec``: all their arrays are raw."""
    return "codec" in {r[1] for r in con.execute("PRAGMA table_info(arrays)")}


def _photo_codec(meta: dict[str, str], src: Path) -> tuple[str, int | None]:
    """The file's photo codec and WebP quality (schema 1 files: raw)."""
    codec = meta.get("photo_codec", "raw")
    if codec not in PHOTO_CODECS:
        raise GalleryError(
            f"gallery {src} stores photos as {codec!r}, which this gmx cannot read "
            f"(known: {', '.join(PHOTO_CODECS)}); upgrade gmx"
        )
    if codec != "webp":
        return codec, None
    try:
        return codec, int(meta.get("photo_quality", ""))
    except ValueError:
        raise GalleryError(
            f"gallery {src} has a bad photo_quality {meta.get('photo_quality')!r}"
        ) from None


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


def _inflate(chunks: list[bytes], nbytes: int, name: str, src: Path) -> bytes:
    """Decompress independent zlib streams into at most ``nbytes`` bytes (never more: no bombs)."""
    damaged = f"gallery {src}: array {name!r} is damaged (bad compressed data)"
    if nbytes > _ZLIB_MAX_EXPANSION * sum(len(c) for c in chunks) + 1024:
        raise GalleryError(f"{damaged}: {nbytes} bytes cannot come from so little data")
    parts: list[bytes] = []
    remaining = nbytes
    for chunk in chunks:
        inflater = zlib.decompressobj()
        try:
            part = inflater.decompress(chunk, remaining + 1)
        except zlib.error as exc:
            raise GalleryError(f"{damaged}: {exc}") from exc
        if len(part) > remaining or not inflater.eof or inflater.unused_data:
            raise GalleryError(f"{damaged}: a chunk does not hold one complete zlib stream")
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _read_array(
    con: sqlite3.Connection, name: str, src: Path, *, has_codec: bool = True
) -> np.ndarray:
    codec_column = "codec" if has_codec else "'raw'"
    row = con.execute(
        f"SELECT dtype, shape, nbytes, sha256, n_chunks, {codec_column} FROM arrays WHERE name = ?",
        (name,),
    ).fetchone()
    if row is None:
        raise GalleryError(f"gallery {src} has no array {name!r}")
    dtype, shape_json, nbytes, digest, n_chunks, codec = row
    if dtype not in _ALLOWED_DTYPES:
        raise GalleryError(f"gallery {src}: array {name!r} has a disallowed dtype {dtype!r}")
    if codec not in _ARRAY_CODECS:
        raise GalleryError(
            f"gallery {src}: array {name!r} uses codec {codec!r}, which this gmx cannot read "
            f"(known: {', '.join(sorted(_ARRAY_CODECS))}); upgrade gmx"
        )
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
    if codec == "zlib":
        data = _inflate([bytes(c[1]) for c in chunks], int(nbytes), name, src)
    else:
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


def _read_photos(
    con: sqlite3.Connection,
    names: list[str],
    codec: str,
    quality: int | None,
    src: Path,
    *,
    has_codec: bool,
) -> tuple[np.ndarray | None, EncodedPhotos | None]:
    """The stored photos, decoded to ``(N, 112, 112, 3)`` uint8 read-only, and their bytes."""
    encoded = [n for n in ("photos/offsets", "photos/data") if n in names]
    if codec == "raw":
        if encoded:
            raise GalleryError(f"gallery {src} has encoded photo arrays but photo_codec 'raw'")
        if "photos" not in names:
            return None, None
        return _read_array(con, "photos", src, has_codec=has_codec), None
    if "photos" in names or len(encoded) != 2:
        raise GalleryError(
            f"gallery {src} has photo_codec {codec!r} but not exactly the arrays "
            f"photos/offsets and photos/data (found {sorted(n for n in names if n.startswith('photos'))})"
        )
    offsets = _read_array(con, "photos/offsets", src, has_codec=has_codec)
    data = _read_array(con, "photos/data", src, has_codec=has_codec)
    if offsets.dtype != np.int64 or data.dtype != np.uint8 or data.ndim != 1:
        raise GalleryError(
            f"gallery {src}: photo arrays have dtypes {offsets.dtype}/{data.dtype}, expected int64/uint8"
        )
    try:
        stored = EncodedPhotos(codec, quality, offsets, data, (TEMPLATE_SIZE, TEMPLATE_SIZE))
        return stored.decode(), stored
    except ValueError as exc:
        raise GalleryError(f"gallery {src}: stored photos are damaged: {exc}") from exc


def load_gallery(
    path: str | os.PathLike[str], *, expected_fingerprint: str | None = None
) -> Gallery:
    """Load a gallery file written by :func:`save_gallery`.

    Args:
        path: the SQLite file.
        expected_fingerprint: the fingerprint of the loaded models (``Ensemble.fingerprint``); when
            given, a gallery embedded with other models is refused before its arrays are read.

    Returns:
        The gallery; its arrays are read-only and bit-identical to what was saved. PNG/WebP photos
        are decoded, and their bytes are kept (:attr:`Gallery.encoded_photos`), so saving the gallery
        again writes the same bytes.

    Raises:
        GalleryError: missing, corrupt (arrays or metadata not matching their checksums), not a
            gallery, newer schema, or embedded with other models. A file without a metadata
            checksum (older gmx) loads.
    """
    with _open_readonly(path) as (src, con):
        meta = _read_meta(con, src)
        _check_metadata(con, meta, src)
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
        has_codec = _has_codec_column(con)
        photo_codec, photo_quality = _photo_codec(meta, src)
        embeddings = _read_array(con, "embeddings", src, has_codec=has_codec)
        photos, encoded = _read_photos(
            con, names, photo_codec, photo_quality, src, has_codec=has_codec
        )
        extras = {
            n.split("/", 1)[1]: _read_array(con, n, src, has_codec=has_codec)
            for n in names
            if n.startswith("extra/")
        }
        calibration = _read_calibration(con, meta, src, has_codec=has_codec)
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
            encoded_photos=encoded,
            calibration=calibration,
        )
    except GalleryError as exc:
        raise GalleryError(f"gallery {src} is inconsistent: {exc}") from exc


def gallery_info(path: str | os.PathLike[str]) -> GalleryInfo:
    """Read a gallery file's metadata and counts, without loading any array or decoding photos.

    The metadata checksum is verified (``metadata_checksum``: ``"verified"``, or ``"absent"`` for
    files written before gmx recorded one).

    Raises:
        GalleryError: missing, corrupt, not a gallery, or metadata that does not match its checksum.
    """
    with _open_readonly(path) as (src, con):
        meta = _read_meta(con, src)
        checksum = _check_metadata(con, meta, src)
        n_images, n_subjects = con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT subject_id) FROM images"
        ).fetchone()
        (n_syndromes,) = con.execute("SELECT COUNT(*) FROM syndromes").fetchone()
        arrays = dict(con.execute("SELECT name, shape FROM arrays").fetchall())
    if "embeddings" not in arrays:
        raise GalleryError(f"gallery {src} has no embeddings")
    shape = json.loads(arrays["embeddings"])
    cal = _calibration_record(meta, src)
    cal_unaffected = None
    if cal is not None and "unaffected" in cal.get("arrays", ()):  # type: ignore[operator]
        cal_unaffected = int(json.loads(arrays.get(CALIBRATION_PREFIX + "unaffected", "[0]"))[0])
    has_photos = "photos" in arrays or "photos/data" in arrays
    photo_codec, photo_quality = _photo_codec(meta, src) if has_photos else (None, None)
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
        has_photos=has_photos,
        photos_visible=meta.get("photos_visible", "0") == "1",
        extras=tuple(sorted(n.split("/", 1)[1] for n in arrays if n.startswith("extra/"))),
        created=meta.get("created", ""),
        gmx_version=meta.get("gmx_version", ""),
        schema_version=int(meta["schema_version"]),
        description=meta.get("description", ""),
        provenance=meta.get("provenance", ""),
        file_size=src.stat().st_size,
        photo_codec=photo_codec,
        photo_quality=photo_quality,
        metadata_checksum=checksum,
        calibration_method=None if cal is None else str(cal.get("method")),
        calibration_images=None if cal is None else int(cal.get("n_images", 0)),  # type: ignore[call-overload]
        calibration_unaffected=cal_unaffected,
    )


__all__ = [
    "CALIBRATION_KEY",
    "METADATA_ABSENT",
    "METADATA_KEY",
    "METADATA_VERIFIED",
    "SCHEMA_VERSION",
    "GalleryInfo",
    "gallery_info",
    "load_gallery",
    "metadata_digest",
    "save_gallery",
]
