"""load_image: every colour mode and format, EXIF orientation, and fast refusal of bad input."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gmx.align import ALPHA_BACKGROUND, load_image
from gmx.errors import ImageLoadError, ImageTooLargeError


def _encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width x height`` RGB pixels, with one tiny IDAT chunk."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def small(astronaut: np.ndarray) -> np.ndarray:
    """128x128 astronaut (keeps encodings fast)."""
    return np.asarray(Image.fromarray(astronaut).resize((128, 128), Image.Resampling.BILINEAR))


@pytest.mark.parametrize(
    ("fmt", "kw", "tol"),
    [
        ("PNG", {}, 0.0),
        ("BMP", {}, 0.0),
        ("TIFF", {}, 0.0),
        ("WEBP", {"lossless": True}, 0.0),
        ("JPEG", {"quality": 95}, 4.0),
        ("GIF", {}, 12.0),
    ],
)
def test_formats_decode_to_rgb(small: np.ndarray, fmt: str, kw: dict, tol: float) -> None:
    out = load_image(_encode(Image.fromarray(small), fmt, **kw))
    assert out.shape == small.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.abs(out.astype(float) - small).mean() <= tol


def test_grey_modes(small: np.ndarray) -> None:
    grey = np.asarray(Image.fromarray(small).convert("L"))
    out = load_image(_encode(Image.fromarray(grey), "PNG"))
    assert out.shape == (*grey.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_16bit_grey_is_scaled(small: np.ndarray) -> None:
    grey = np.asarray(Image.fromarray(small).convert("L")).astype(np.uint16) * 257
    im = Image.fromarray(grey)  # mode I;16
    assert im.mode.startswith("I;16")
    out = load_image(_encode(im, "PNG"))
    np.testing.assert_array_equal(out[:, :, 0], (grey // 257).astype(np.uint8))


def test_32bit_int_and_float_modes(small: np.ndarray) -> None:
    grey = np.asarray(Image.fromarray(small).convert("L"))
    as_int = Image.fromarray(grey.astype(np.int32) * 257, mode="I")
    out = load_image(_encode(as_int, "TIFF"))
    np.testing.assert_array_equal(out[:, :, 1], grey)
    as_float = Image.fromarray(grey.astype(np.float32) / 255.0, mode="F")
    out = load_image(_encode(as_float, "TIFF"))
    assert np.abs(out[:, :, 2].astype(int) - grey).max() <= 1
    # floats outside [0, 1] are min-max scaled
    wide = Image.fromarray(grey.astype(np.float32) * 10.0 - 300.0, mode="F")
    out = load_image(_encode(wide, "TIFF"))
    lo, hi = grey.min(), grey.max()
    expect = np.rint((grey.astype(float) - lo) / (hi - lo) * 255)
    assert np.abs(out[:, :, 0] - expect).max() <= 1


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(small: np.ndarray, mode: str) -> None:
    im = Image.fromarray(small).convert(mode)
    alpha = np.full(small.shape[:2], 255, np.uint8)
    alpha[:, :40] = 0  # left band fully transparent
    im.putalpha(Image.fromarray(alpha))
    out = load_image(_encode(im, "PNG"))
    assert (out[:, :40] == np.array(ALPHA_BACKGROUND, np.uint8)).all()
    opaque = np.asarray(im.convert("RGB"))[:, 40:]
    np.testing.assert_array_equal(out[:, 40:], opaque)


def test_palette_with_transparency(small: np.ndarray) -> None:
    im = Image.fromarray(small).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal = np.asarray(im).copy()
    pal[:20, :] = 0
    im = Image.fromarray(pal, mode="P")
    im.putpalette(
        Image.fromarray(small).convert("P", palette=Image.Palette.ADAPTIVE, colors=64).getpalette()
    )
    im.info["transparency"] = 0
    data = _encode(im, "PNG", transparency=0)
    assert Image.open(io.BytesIO(data)).mode == "P"
    out = load_image(data)
    assert (out[:20] == 255).all()  # transparent index -> white background
    assert out[20:].std() > 20  # the photo is still there


def test_cmyk_jpeg_and_tiff(small: np.ndarray) -> None:
    cmyk = Image.fromarray(small).convert("CMYK")
    for fmt in ("JPEG", "TIFF"):
        out = load_image(_encode(cmyk, fmt))
        assert out.shape == small.shape
        assert np.abs(out.astype(float) - small).mean() < 6.0


def test_animation_first_frame() -> None:
    frames = [Image.new("RGB", (64, 64), c) for c in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    for fmt in ("GIF", "WEBP"):
        data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
        assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
        out = load_image(data)
        assert tuple(out[32, 32]) == pytest.approx((200, 30, 30), abs=8)


def test_exif_orientation_6_is_applied() -> None:
    # A non-square, asymmetric image: a bright block in the top-left corner.
    stored = np.zeros((60, 100, 3), np.uint8)
    stored[:20, :30] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = _encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    out = load_image(data)
    assert out.shape == (100, 60, 3)
    expected = np.rot90(stored, k=-1)  # clockwise
    assert np.abs(out.astype(float) - expected).mean() < 3.0
    assert out[:30, -20:].mean() > 200  # the block is now top-right


def test_paths_are_accepted(tmp_path: Path, small: np.ndarray) -> None:
    p = tmp_path / "face.png"
    Image.fromarray(small).save(p)
    np.testing.assert_array_equal(load_image(p), small)
    np.testing.assert_array_equal(load_image(str(p)), small)


def test_input_bytes_not_mutated(small: np.ndarray) -> None:
    raw = bytearray(_encode(Image.fromarray(small), "PNG"))
    before = bytes(raw)
    load_image(raw)
    assert bytes(raw) == before


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"", "empty"),
        (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n", "not an image"),
        (b"Hello, this is a text file, not a photo.\n" * 20, "not an image"),
        (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not an image"),
    ],
)
def test_unusable_bytes_raise(payload: bytes, match: str) -> None:
    with pytest.raises(ImageLoadError, match=match):
        load_image(payload)


def test_truncated_file_raises(small: np.ndarray) -> None:
    for fmt in ("JPEG", "PNG"):
        data = _encode(Image.fromarray(small), fmt)
        with pytest.raises(ImageLoadError, match="corrupt or truncated"):
            load_image(data[: len(data) // 2])


def test_bomb_refused_from_header_fast() -> None:
    bomb = _png_header(100_000, 100_000)  # 10 G pixels: Pillow's own bomb guard fires in open()
    assert len(bomb) < 200
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="too many pixels"):
        load_image(bomb)
    with pytest.raises(ImageTooLargeError, match="too many pixels"):
        load_image(bomb, max_pixels=10**12)
    # 50 MP is below Pillow's guard: our header check (40 MP default) refuses it before decoding
    with pytest.raises(ImageTooLargeError, match="more than the limit"):
        load_image(_png_header(10_000, 5_000))
    assert time.perf_counter() - t0 < 1.0


def test_max_pixels_is_honoured(small: np.ndarray) -> None:
    data = _encode(Image.fromarray(small), "PNG")
    with pytest.raises(ImageTooLargeError, match="16,384 pixels"):
        load_image(data, max_pixels=128 * 128 - 1)
    assert load_image(data, max_pixels=128 * 128).shape == (128, 128, 3)


def test_tiny_image_refused() -> None:
    with pytest.raises(ImageLoadError, match="only 20x40"):
        load_image(_encode(Image.new("RGB", (20, 40)), "PNG"))


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="No image file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ValueError, match="source must be bytes or a path"):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(b"x", max_pixels=0)


@pytest.mark.parametrize(
    "payload",
    [
        b"Hello, this is a text file, not a photo.\n" * 20,
        bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        _png_header(100_000, 100_000),
    ],
)
def test_unreadable_file_messages_are_plain_sentences(
    payload: bytes, plain_message: Callable[[BaseException | str], str]
) -> None:
    with pytest.raises(ImageLoadError) as info:
        load_image(payload)
    text = plain_message(info.value)
    assert text.endswith(".") and "please upload" in text.lower()
    assert info.value.__cause__ is not None  # the library's exception stays chained for logs


def test_truncated_file_message_is_a_plain_sentence(
    small: np.ndarray, plain_message: Callable[[BaseException | str], str]
) -> None:
    for fmt in ("JPEG", "PNG"):
        data = _encode(Image.fromarray(small), fmt)
        with pytest.raises(ImageLoadError) as info:
            load_image(data[: len(data) - 50])
        text = plain_message(info.value)
        assert fmt in text and "re-save" in text
        assert info.value.__cause__ is not None


def test_unreadable_path_is_an_image_load_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plain_message: Callable[[BaseException | str], str],
) -> None:
    photo = tmp_path / "locked.png"
    photo.write_bytes(b"x")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod 0 does not stop root
    with pytest.raises(ImageLoadError, match="cannot be read") as info:
        load_image(photo)
    assert "Permission denied" in plain_message(info.value)
