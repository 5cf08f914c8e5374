"""Exceptions gmx raises for bad input the user can fix.

Expected *outcomes* (no face in a photo) are values, not exceptions; these errors are for input that
cannot be used at all (a corrupt file, an unreadable checkpoint). Each message says what was wrong and,
where possible, what to do.
"""

from __future__ import annotations


class GmxError(Exception):
    """Base class of every error gmx raises on purpose."""


class ImageLoadError(GmxError):
    """An uploaded file is not a usable image (corrupt, empty, too large, not an image)."""


class ImageTooLargeError(ImageLoadError):
    """An image declares more pixels than the configured limit (or a decompression bomb); a service
    answers it with 413 rather than 400."""


class ModelLoadError(GmxError):
    """A model file cannot be loaded safely or is not a format gmx knows."""


class ConfigError(GmxError, ValueError):
    """A configuration file is missing, unreadable, not valid TOML, or has a value of the wrong type.

    Also a :class:`ValueError`, which :func:`gmx.config.load_config` has always raised.
    """


class OutputError(GmxError):
    """A file or folder gmx was asked to write cannot be written (not a folder, no permission)."""


class GalleryError(GmxError):
    """A gallery is missing, inconsistent, or was built with another model."""


__all__ = [
    "ConfigError",
    "GalleryError",
    "GmxError",
    "ImageLoadError",
    "ImageTooLargeError",
    "ModelLoadError",
    "OutputError",
]
