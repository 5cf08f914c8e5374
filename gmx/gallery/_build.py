"""Making galleries: embed photos with any embedding function, or adopt upstream encodings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np

from gmx.constants import TEMPLATE_SIZE
from gmx.errors import GalleryError
from gmx.gallery._encodings import EncodingTable
from gmx.gallery._model import Gallery, GalleryImage, Syndrome
from gmx.gallery._photos import (
    DEFAULT_WEBP_QUALITY,
    PhotoCodec,
    check_photo_codec,
    store_photos,
)
from gmx.variants import Variant

logger = logging.getLogger(__name__)

EmbedFn = Callable[[np.ndarray], np.ndarray]
"""``(B, 112, 112, 3)`` uint8 RGB aligned faces -> ``(B, V, D)`` float embeddings."""


def build_gallery(
    name: str,
    version: str,
    images: Sequence[GalleryImage],
    syndromes: Mapping[str, Syndrome] | Sequence[Syndrome],
    embed_fn: EmbedFn,
    photos: np.ndarray,
    variants: Sequence[Variant],
    fingerprint: str,
    *,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    keep_photos: bool = True,
    photos_visible: bool = False,
    extras: Mapping[str, np.ndarray] | None = None,
    description: str = "",
    provenance: str = "",
    photo_codec: PhotoCodec = "raw",
    photo_quality: int = DEFAULT_WEBP_QUALITY,
) -> Gallery:
    """Encode the photos for storage, embed the decoded pixels in batches, assemble a :class:`Gallery`.

    Independent of any model: ``embed_fn`` is typically ``Ensemble.embed`` (whose ``variants`` and
    ``fingerprint`` are passed along), but any function with the right shapes works.

    The one path from photos to a gallery: the photos are encoded once with ``photo_codec``
    (:func:`~gmx.gallery.store_photos`), ``embed_fn`` receives the *decoded* pixels, and the gallery
    keeps the same bytes (:attr:`Gallery.encoded_photos`), which :func:`~gmx.gallery.save_gallery`
    writes verbatim. So every embedding is the embedding of exactly the stored pixels, even with
    lossy WebP.

    Args:
        name: gallery name.
        version: gallery version.
        images: the N images, in the order of ``photos``.
        syndromes: the syndromes the images refer to (mapping or sequence).
        embed_fn: ``(B, 112, 112, 3)`` uint8 RGB -> ``(B, V, D)`` float; it receives read-only batches.
        photos: ``(N, 112, 112, 3)`` uint8 RGB aligned faces (not modified; with a lossy codec the
            gallery stores, and ``embed_fn`` sees, their decoded WebP pixels instead).
        variants: the V variants ``embed_fn`` returns, in its order.
        fingerprint: the fingerprint of the models behind ``embed_fn``.
        batch_size: photos per ``embed_fn`` call.
        progress: called as ``progress(done, total)`` after each batch (and once with ``(0, N)``).
        keep_photos: store the photos in the gallery (for the UI and explanations).
        photos_visible: whether the stored photos may be shown.
        extras: optional per-image arrays (first axis N).
        description: free text.
        provenance: where the photos and labels came from.
        photo_codec: how the photos will be stored: ``"raw"``, ``"png"`` or ``"webp"``. Without
            ``keep_photos`` the photos are embedded as given.
        photo_quality: WebP quality 0-100 (100 = lossless); ignored by the other codecs.

    Returns:
        The gallery.

    Raises:
        ValueError: bad photo array, batch size, photo codec or quality, or ``embed_fn`` output of the
            wrong shape / non-finite.
        InvalidGalleryError: images, syndromes and embeddings do not fit together.
    """
    photos_arr = np.asarray(photos)
    n = len(images)
    want = (n, TEMPLATE_SIZE, TEMPLATE_SIZE, 3)
    if photos_arr.shape != want or photos_arr.dtype != np.uint8:
        raise ValueError(
            f"photos must be {want} uint8 RGB, got {photos_arr.shape} {photos_arr.dtype}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    variants_t = tuple(variants)
    if n == 0:
        raise ValueError("a gallery needs at least one image")
    if keep_photos:
        view, encoded = store_photos(photos_arr, photo_codec, photo_quality)
    else:
        check_photo_codec(photo_codec, photo_quality)
        view, encoded = photos_arr.view(), None
        view.setflags(
            write=False
        )  # a read-only view: embed_fn cannot write into the caller's photos
    if progress is not None:
        progress(0, n)
    chunks: list[np.ndarray] = []
    dim: int | None = None
    for start in range(0, n, batch_size):
        batch = view[start : start + batch_size]
        out = np.asarray(embed_fn(batch))
        if out.ndim != 3 or out.shape[0] != len(batch) or out.shape[1] != len(variants_t):
            raise ValueError(
                f"embed_fn returned shape {out.shape} for a batch of {len(batch)}; expected "
                f"({len(batch)}, {len(variants_t)}, D)"
            )
        if dim is None:
            dim = out.shape[2]
        elif out.shape[2] != dim:
            raise ValueError(f"embed_fn changed the embedding size from {dim} to {out.shape[2]}")
        if not np.isfinite(out).all():
            raise ValueError(
                f"embed_fn returned NaN/inf for photos {start}..{start + len(batch) - 1}"
            )
        chunks.append(out.astype(np.float32, copy=True))
        if progress is not None:
            progress(min(start + batch_size, n), n)
    embeddings = np.concatenate(chunks, axis=0)
    embeddings.setflags(write=False)
    return Gallery(
        name=name,
        version=version,
        images=tuple(images),
        syndromes=syndromes,  # type: ignore[arg-type]  # Gallery accepts a sequence too
        embeddings=embeddings,
        variants=variants_t,
        model_fingerprint=fingerprint,
        photos=view if keep_photos else None,
        photos_visible=photos_visible if keep_photos else False,
        extras=dict(extras or {}),
        description=description,
        provenance=provenance,
        encoded_photos=encoded,
    )


def gallery_from_encodings(
    name: str,
    version: str,
    images: Sequence[GalleryImage],
    syndromes: Mapping[str, Syndrome] | Sequence[Syndrome],
    encodings: EncodingTable,
    fingerprint: str,
    *,
    missing: Literal["error", "drop"] = "error",
    description: str = "",
    provenance: str = "",
) -> Gallery:
    """A gallery from upstream encodings (e.g. GMDB metadata + GestaltMatcher-Arc's ``all_encodings.csv``).

    Args:
        name: gallery name.
        version: gallery version.
        images: the gallery images (e.g. ``GmdbTables.images()``).
        syndromes: their syndromes.
        encodings: from :func:`read_encodings`; images are matched by id, extra encodings ignored.
        fingerprint: fingerprint of the models that made the encodings (the loaded gmx ensemble's,
            when it holds the same weights in the same order and TTA).
        missing: ``"error"`` refuses images without encodings; ``"drop"`` leaves them out (logged).
        description: free text.
        provenance: where the labels and encodings came from.

    Raises:
        GalleryError: images without encodings (with ``missing="error"``) or no image left.
    """
    if missing not in ("error", "drop"):
        raise ValueError(f"missing must be 'error' or 'drop', got {missing!r}")
    pos = {iid: k for k, iid in enumerate(encodings.image_ids)}
    absent = [im.image_id for im in images if im.image_id not in pos]
    if absent and missing == "error":
        raise GalleryError(
            f"{len(absent)} of {len(images)} gallery images have no encoding, e.g. {absent[:5]}; "
            "encode them or pass missing='drop'"
        )
    if absent:
        logger.warning(
            "dropping %d gallery images without encodings, e.g. %s", len(absent), absent[:5]
        )
    kept = [im for im in images if im.image_id in pos]
    if not kept:
        raise GalleryError("no gallery image has an encoding")
    idx = np.array([pos[im.image_id] for im in kept], dtype=np.int64)
    return Gallery(
        name=name,
        version=version,
        images=tuple(kept),
        syndromes=syndromes,  # type: ignore[arg-type]
        embeddings=encodings.embeddings[idx],
        variants=encodings.variants,
        model_fingerprint=fingerprint,
        description=description,
        provenance=provenance,
    )


__all__ = ["EmbedFn", "build_gallery", "gallery_from_encodings"]
