"""How a gallery stores its aligned photos, and why its embeddings are of exactly those pixels.

A gallery's photos are stored ``raw`` (the pixels), ``png`` (lossless) or ``webp`` (lossy below
quality 100, lossless at 100). Lossy WebP changes pixels and is not idempotent (encoding the decoded
pixels again changes them again), so there is one code path from photos to a gallery:

    encode once -> decode -> embed the decoded pixels -> keep the same encoded bytes

:func:`store_photos` does the first two steps; :func:`~gmx.gallery.build_gallery` embeds its output
and keeps the :class:`EncodedPhotos` on the gallery (:attr:`Gallery.encoded_photos`);
:func:`~gmx.gallery.save_gallery` writes those bytes verbatim and :func:`~gmx.gallery.load_gallery`
reads them back verbatim. Every stored embedding is therefore the embedding of exactly the stored
pixels, for every codec. Conventions: photos are ``(N, 112, 112, 3)`` uint8 RGB, ArcFace-aligned.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from PIL import Image

PhotoCodec = Literal["raw", "png", "webp"]
"""How photos are stored: ``raw`` pixels, ``png`` (lossless) or ``webp`` (lossy; lossless at quality 100)."""

#: Photo codecs :func:`~gmx.gallery.save_gallery` writes and :func:`~gmx.gallery.load_gallery` reads.
PHOTO_CODECS: tuple[str, ...] = ("raw", "png", "webp")

#: WebP quality used when none is given.
DEFAULT_WEBP_QUALITY = 95

#: WebP encoder effort (libwebp ``method``, 0-6) and lossless effort (Pillow ``quality`` when lossless).
_WEBP_METHOD, _WEBP_LOSSLESS_EFFORT = 4, 50

#: Photos are encoded/decoded on a thread pool (Pillow releases the GIL) once there are this many.
_PARALLEL_MIN_PHOTOS = 64

_PIL_FORMAT = {"png": "PNG", "webp": "WEBP"}

_T = TypeVar("_T")
_R = TypeVar("_R")


def _map(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``[fn(x) for x in items]``, in contiguous batches on a small thread pool when there are many."""
    workers = min(4, os.cpu_count() or 1)
    if workers < 2 or len(items) < _PARALLEL_MIN_PHOTOS:
        return [fn(x) for x in items]
    step = -(-len(items) // (2 * workers))
    batches = [items[i : i + step] for i in range(0, len(items), step)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = pool.map(lambda batch: [fn(x) for x in batch], batches)
        return [y for batch in done for y in batch]


def check_photo_codec(codec: object, quality: object) -> None:
    """Refuse an unknown codec or a quality that is not an integer in [0, 100].

    Raises:
        ValueError: naming the bad value.
    """
    if codec not in PHOTO_CODECS:
        raise ValueError(f"photo_codec must be one of {PHOTO_CODECS}, got {codec!r}")
    if (
        isinstance(quality, bool)
        or not isinstance(quality, int | np.integer)
        or not 0 <= quality <= 100
    ):
        raise ValueError(f"photo_quality must be an integer in [0, 100], got {quality!r}")


def is_lossless(codec: str, quality: int) -> bool:
    """Whether ``codec`` at ``quality`` gives back exactly the pixels it was given."""
    return codec in ("raw", "png") or (codec == "webp" and quality >= 100)


def _encode_photo(photo: np.ndarray, codec: str, quality: int) -> bytes:
    """One ``(H, W, 3)`` uint8 RGB photo -> PNG / WebP bytes (no metadata)."""
    buf = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(photo), mode="RGB")
    if codec == "png":
        image.save(buf, format="PNG", compress_level=6)
    elif quality >= 100:
        image.save(
            buf, format="WEBP", lossless=True, quality=_WEBP_LOSSLESS_EFFORT, method=_WEBP_METHOD
        )
    else:
        image.save(buf, format="WEBP", quality=int(quality), method=_WEBP_METHOD)
    return buf.getvalue()


def _decode_photo(data: bytes, codec: str, size: tuple[int, int]) -> np.ndarray:
    """PNG / WebP bytes -> ``(H, W, 3)`` uint8 RGB; anything but an RGB image of ``size`` is refused.

    Raises:
        ValueError: not a ``codec`` image, another size (checked before decoding), or not RGB.
    """
    fmt = _PIL_FORMAT[codec]
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            if image.size != size or image.mode != "RGB":
                raise ValueError(
                    f"a stored photo is a {image.size[0]}x{image.size[1]} {image.mode} image, "
                    f"expected {size[0]}x{size[1]} RGB"
                )
            image.load()
            out = np.asarray(image)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # Pillow: undecodable data
        raise ValueError(f"a stored photo is not a readable {fmt} image: {exc}") from exc
    if out.shape != (size[1], size[0], 3) or out.dtype != np.uint8:
        raise ValueError(f"a stored photo decoded to {out.shape} {out.dtype}")
    return out


def _frozen(array: np.ndarray, dtype: type) -> np.ndarray:
    arr = np.array(array, dtype=dtype, copy=True, order="C")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class EncodedPhotos:
    """N photos encoded one by one as PNG or WebP, exactly as a gallery file stores them.

    Attributes:
        codec: ``"png"`` or ``"webp"``.
        quality: WebP quality 0-100 (100 = lossless); ``None`` for PNG.
        offsets: ``(N + 1,)`` int64, read-only; photo ``i`` is ``data[offsets[i]:offsets[i + 1]]``.
        data: ``(total,)`` uint8, read-only: the encoded photos, concatenated.
        size: ``(width, height)`` of every photo.

    Raises:
        ValueError: an unknown codec or quality, or offsets that do not cut ``data`` into N >= 1
            non-empty pieces.
    """

    codec: str
    quality: int | None
    offsets: np.ndarray
    data: np.ndarray
    size: tuple[int, int] = (112, 112)

    def __post_init__(self) -> None:
        if self.codec not in _PIL_FORMAT:
            raise ValueError(f"encoded photos must be png or webp, got {self.codec!r}")
        if self.codec == "webp":
            check_photo_codec(self.codec, self.quality)
        elif self.quality is not None:
            raise ValueError(f"PNG photos have no quality, got {self.quality!r}")
        offsets = np.asarray(self.offsets)
        data = np.asarray(self.data)
        if offsets.ndim != 1 or len(offsets) < 2 or offsets.dtype.kind not in "iu":
            raise ValueError(
                f"photo offsets must be (N + 1,) integers with N >= 1, got {offsets.shape} {offsets.dtype}"
            )
        if data.ndim != 1 or data.dtype != np.uint8:
            raise ValueError(f"photo data must be (total,) uint8, got {data.shape} {data.dtype}")
        if offsets[0] != 0 or offsets[-1] != len(data) or bool(np.any(np.diff(offsets) <= 0)):
            raise ValueError(
                f"photo offsets do not cut {len(data)} bytes into non-empty pieces "
                f"(first {int(offsets[0])}, last {int(offsets[-1])})"
            )
        object.__setattr__(self, "offsets", _frozen(offsets, np.int64))
        object.__setattr__(self, "data", _frozen(data, np.uint8))
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def photo_bytes(self, index: int) -> bytes:
        """The encoded bytes of photo ``index``."""
        return self.data[int(self.offsets[index]) : int(self.offsets[index + 1])].tobytes()

    def decode(self) -> np.ndarray:
        """The stored pixels: a new read-only ``(N, H, W, 3)`` uint8 RGB array.

        Raises:
            ValueError: a photo that is not a readable RGB image of :attr:`size`.
        """
        width, height = self.size
        out = np.empty((len(self), height, width, 3), dtype=np.uint8)
        raw = self.data.tobytes()
        bounds = self.offsets.tolist()

        def decode_into(i: int) -> None:
            out[i] = _decode_photo(raw[bounds[i] : bounds[i + 1]], self.codec, self.size)

        _map(decode_into, range(len(out)))
        out.setflags(write=False)
        return out

    def take(self, indices: np.ndarray) -> EncodedPhotos:
        """The photos at ``indices`` (int array, in that order), their bytes copied verbatim."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("cannot take no photos")
        pieces = [self.photo_bytes(int(i)) for i in idx]
        offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in pieces], out=offsets[1:])
        data = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        return EncodedPhotos(self.codec, self.quality, offsets, data, self.size)


def _check_photos(photos: np.ndarray) -> np.ndarray:
    arr = np.asarray(photos)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
        raise ValueError(f"photos must be (N, H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}")
    return arr


def encode_photos(
    photos: np.ndarray, codec: str, quality: int = DEFAULT_WEBP_QUALITY
) -> EncodedPhotos:
    """Encode each photo as PNG or WebP, as a gallery file stores them (deterministic for one
    Pillow/libwebp build).

    Args:
        photos: ``(N, H, W, 3)`` uint8 RGB (not modified).
        codec: ``"png"`` or ``"webp"``.
        quality: WebP quality 0-100 (100 = lossless WebP); ignored for PNG.

    Raises:
        ValueError: another codec, a bad quality, or photos not ``(N, H, W, 3)`` uint8.
    """
    check_photo_codec(codec, quality)
    if codec == "raw":
        raise ValueError("raw photos are not encoded; use store_photos for any codec")
    arr = _check_photos(photos)
    blobs = _map(lambda p: _encode_photo(p, codec, quality), list(arr))
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    return EncodedPhotos(
        codec,
        int(quality) if codec == "webp" else None,
        offsets,
        data,
        (arr.shape[2], arr.shape[1]),
    )


def store_photos(
    photos: np.ndarray, codec: PhotoCodec | str, quality: int = DEFAULT_WEBP_QUALITY
) -> tuple[np.ndarray, EncodedPhotos | None]:
    """The pixels a gallery stores for ``photos`` with ``codec``, and the bytes that hold them.

    This is the first half of the one path from photos to a gallery (encode once, decode, embed the
    decoded pixels, keep the same bytes): embed the returned pixels and store the returned bytes.

    Args:
        photos: ``(N, H, W, 3)`` uint8 RGB (not modified).
        codec: ``"raw"``, ``"png"`` or ``"webp"``.
        quality: WebP quality 0-100 (100 = lossless); ignored by the other codecs.

    Returns:
        ``(pixels, encoded)``: ``pixels`` a new read-only ``(N, H, W, 3)`` uint8 array (a copy for
        ``raw``, else ``encoded.decode()``); ``encoded`` ``None`` for ``raw``.

    Raises:
        ValueError: an unknown codec, a bad quality, or photos not ``(N, H, W, 3)`` uint8.
    """
    check_photo_codec(codec, quality)
    arr = _check_photos(photos)
    if codec == "raw":
        return _frozen(arr, np.uint8), None
    encoded = encode_photos(arr, codec, quality)
    return encoded.decode(), encoded


__all__ = [
    "DEFAULT_WEBP_QUALITY",
    "PHOTO_CODECS",
    "EncodedPhotos",
    "PhotoCodec",
    "check_photo_codec",
    "encode_photos",
    "is_lossless",
    "store_photos",
]
