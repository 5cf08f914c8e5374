"""Decoding uploaded photos safely into ``(H, W, 3)`` uint8 RGB arrays."""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gmx._typing import ImageU8
from gmx.errors import ImageLoadError, ImageTooLargeError

logger = logging.getLogger(__name__)

#: Default ceiling on ``width * height`` (40 MP), checked from the header before any decoding.
DEFAULT_MAX_PIXELS: int = 40_000_000

#: Smallest accepted image side, in pixels.
MIN_IMAGE_SIDE: int = 32

#: Colour that transparent pixels are composited onto (white, like a studio backdrop; black would
#: blend into the black border of the aligned template).
ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)

# Errors Pillow raises for files it cannot identify or decode (SyntaxError: some broken headers;
# struct.error: truncated TIFF/EXIF blocks).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    Image.DecompressionBombError,
    struct.error,
)


def _read_source(source: bytes | bytearray | memoryview | str | os.PathLike[str]) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"No image file at {str(path)!r}.")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageLoadError(
                f"The file {str(path)!r} cannot be read ({exc.strerror or 'input/output error'}); "
                "check that it exists and that you may read it."
            ) from exc
    raise ValueError(
        f"source must be bytes or a path (str / pathlib.Path), got {type(source).__name__}"
    )


def _to_uint8_grey(im: Image.Image) -> np.ndarray:
    """Scale a single-channel high-bit-depth image (``I;16*``, ``I``, ``F``) to ``(H, W)`` uint8.

    16-bit modes are divided by 257 (65535 -> 255). ``I`` (32-bit int) is treated as 16-bit when its
    values lie in ``[0, 65535]`` (that is how Pillow opens 16-bit PNGs), otherwise min-max scaled.
    ``F`` (float) is taken as ``[0, 1]`` when it lies there, otherwise min-max scaled.
    """
    if im.mode.startswith("I;16"):
        arr = np.asarray(im.convert("I"), dtype=np.float64)
        return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    arr = np.asarray(im, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        raise ImageLoadError("The image has no finite pixel values.")
    arr = np.where(finite, arr, 0.0)
    lo, hi = float(arr.min()), float(arr.max())
    if im.mode == "I" and lo >= 0 and hi <= 65535:
        out = arr / 257.0
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        out = arr * 255.0
    elif hi > lo:
        out = (arr - lo) / (hi - lo) * 255.0
    else:
        out = np.zeros_like(arr)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to ``RGB``, compositing transparency onto :data:`ALPHA_BACKGROUND`."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I", "F") or mode.startswith("I;16"):
        grey = _to_uint8_grey(im)
        return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2), mode="RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in im.info
    )
    if mode == "L" and "transparency" in im.info:
        has_alpha = True
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def load_image(
    source: bytes | bytearray | memoryview | str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImageU8:
    """Decode a photo into an RGB array, honouring its EXIF orientation.

    Accepts every format Pillow reads (JPEG, PNG, WebP, BMP, TIFF, GIF, ...) and every colour mode:
    grey, palette (with transparency), LA / RGBA (composited onto white, :data:`ALPHA_BACKGROUND`),
    CMYK (Pillow's conversion, no ICC colour management), 16-bit and float (scaled to 8 bits, see
    :func:`_to_uint8_grey`). Animations and multi-page files give their first frame.

    The declared size is checked from the header before any pixel is decoded, so a decompression
    bomb (a tiny file declaring billions of pixels) is refused in milliseconds.

    Args:
        source: the encoded file as bytes, or a path to it.
        max_pixels: largest accepted ``width * height`` (after EXIF rotation it is the same).

    Returns:
        ``(H, W, 3)`` uint8 RGB array (a fresh, writable array owned by the caller).

    Raises:
        ImageLoadError: empty, missing, corrupt or truncated file, not an image, or a side
            shorter than :data:`MIN_IMAGE_SIDE`; :class:`~gmx.errors.ImageTooLargeError` (a
            subclass) for more than ``max_pixels`` pixels or a decompression bomb.
        ValueError: ``source`` is of another type, or ``max_pixels`` is not positive.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
    data = _read_source(source)
    if not data:
        raise ImageLoadError("The file is empty (0 bytes); please upload a photo.")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below is the authority; Pillow's warning threshold (89 MP)
            # only matters when a caller raises max_pixels above it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))  # lazy: reads the header only
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            "The image declares far too many pixels to decode safely (a possible decompression "
            "bomb); please upload a smaller photo."
        ) from exc
    except _DECODE_ERRORS as exc:
        raise ImageLoadError(
            "This file is not an image that can be read. Please upload a photo saved as JPEG, "
            "PNG, WebP, BMP, TIFF or GIF."
        ) from exc
    with im:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"The image is {width}x{height} = {width * height:,} pixels, more than the limit "
                f"of {max_pixels:,}; please upload a smaller photo."
            )
        if min(width, height) < MIN_IMAGE_SIDE:
            raise ImageLoadError(
                f"The image is only {width}x{height} pixels; a side of at least {MIN_IMAGE_SIDE} "
                "pixels is needed to find a face."
            )
        try:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            oriented = _exif_transpose(im)
            rgb = _to_rgb(oriented)
            arr = np.array(rgb, dtype=np.uint8)
        except ImageLoadError:
            raise
        except MemoryError as exc:
            raise ImageLoadError(
                f"Not enough memory to decode this {width}x{height} image; please upload a "
                "smaller photo."
            ) from exc
        except _DECODE_ERRORS as exc:
            raise ImageLoadError(
                f"The {_format_name(im)}image file is corrupt or truncated and cannot be decoded. "
                "Please upload it again, or open and re-save it in an image editor."
            ) from exc
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - _to_rgb always gives RGB
        raise ImageLoadError(f"Decoding gave an unexpected array of shape {arr.shape}.")
    return np.ascontiguousarray(arr)


def _format_name(im: Image.Image) -> str:
    """``"JPEG "`` etc. for messages (empty when Pillow did not name the format)."""
    fmt = im.format
    return f"{fmt} " if isinstance(fmt, str) and fmt.isalnum() else ""


def _exif_transpose(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag; a malformed EXIF block is logged and ignored."""
    try:
        out = ImageOps.exif_transpose(im)
    except _DECODE_ERRORS as exc:
        logger.warning("Ignoring unreadable EXIF orientation (%s: %s)", type(exc).__name__, exc)
        return im
    return im if out is None else out


__all__ = ["ALPHA_BACKGROUND", "DEFAULT_MAX_PIXELS", "MIN_IMAGE_SIDE", "load_image"]
