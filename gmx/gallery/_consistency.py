"""Whether a gallery fits the loaded models, and whether its embeddings are of its stored pixels.

* :func:`check_compatible`: the one model/gallery compatibility check (fingerprint and TTA variants),
  used by the diagnoser, the similarity maps and batch runs.
* :func:`verify_embeddings`: re-embed (a sample of) the stored photos and compare with the stored
  embeddings; a gallery built by :func:`~gmx.gallery.build_gallery` and stored with any photo codec
  gives cosines of 1 up to float rounding (``gmx gallery info --verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gmx.errors import GalleryError
from gmx.gallery._model import Gallery
from gmx.variants import Variant

#: Smallest re-embedding cosine of a consistent gallery (the stored embeddings are of the stored
#: pixels; what remains is float rounding and batch-size effects of the forward pass).
CONSISTENT_COSINE = 0.99999


class EmbeddingModels(Protocol):
    """What :func:`check_compatible` needs of the loaded models (``gmx.encode.Ensemble``)."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def variants(self) -> Sequence[Variant]: ...


def check_compatible(models: EmbeddingModels, gallery: Gallery) -> None:
    """Refuse a gallery whose embeddings were made by other models or other TTA variants.

    Args:
        models: the loaded models, e.g. a ``gmx.encode.Ensemble`` (``fingerprint``, ``variants``).
        gallery: the gallery to use with them.

    Raises:
        GalleryError: with what differs and how to fix it.
    """
    if models.fingerprint != gallery.model_fingerprint:
        raise GalleryError(
            f"gallery {gallery.name!r} was embedded with model fingerprint "
            f"{gallery.model_fingerprint[:12]}..., but the loaded models have "
            f"{models.fingerprint[:12]}...; rebuild it with `gmx gallery build` using these models"
        )
    if tuple(models.variants) != tuple(gallery.variants):
        raise GalleryError(
            f"gallery variants {[v.label for v in gallery.variants]} differ from the models' "
            f"{[v.label for v in models.variants]}"
        )


@dataclass(frozen=True)
class EmbeddingCheck:
    """How well the stored embeddings match a re-embedding of the stored photos.

    Attributes:
        indices: the gallery images checked (sorted).
        variants: the variant positions compared.
        cosines: ``(len(indices), len(variants))`` float64 cosine of each stored embedding with the
            re-embedding of its stored photo (read-only).
        worst_cosine: the smallest of :attr:`cosines`.
        worst_image_id: the image with it.
    """

    indices: tuple[int, ...]
    variants: tuple[int, ...]
    cosines: np.ndarray
    worst_cosine: float
    worst_image_id: str

    def consistent(self, threshold: float = CONSISTENT_COSINE) -> bool:
        """Whether every checked cosine is at least ``threshold``."""
        return self.worst_cosine >= threshold


def sample_indices(n: int, sample: int | None, seed: int = 0) -> np.ndarray:
    """Sorted ``(k,)`` int64 positions: all ``n`` when ``sample`` is ``None`` or >= ``n``, else a
    seeded random sample of ``sample`` distinct positions.

    Raises:
        ValueError: ``sample`` < 1.
    """
    if sample is None or sample >= n:
        return np.arange(n, dtype=np.int64)
    if sample < 1:
        raise ValueError(f"sample must be >= 1 (or None for all), got {sample}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=sample, replace=False)).astype(np.int64)


def verify_embeddings(
    gallery: Gallery,
    embed_fn: Callable[[np.ndarray], np.ndarray],
    *,
    sample: int | None = None,
    seed: int = 0,
    variants: Sequence[int] | None = None,
    batch_size: int = 64,
) -> EmbeddingCheck:
    """Re-embed stored photos and compare them with the stored embeddings.

    Args:
        gallery: a gallery with photos.
        embed_fn: ``(B, 112, 112, 3)`` uint8 RGB -> ``(B, V, D)``, the models that embedded the
            gallery (check them first with :func:`check_compatible`).
        sample: how many images to check (seeded random sample); ``None`` checks all.
        seed: of the sample.
        variants: variant positions to compare (default all).
        batch_size: photos per ``embed_fn`` call.

    Raises:
        GalleryError: the gallery stores no photos.
        ValueError: bad ``sample``/``variants``/``batch_size``, or ``embed_fn`` output of the wrong shape.
    """
    if gallery.photos is None:
        raise GalleryError(f"gallery {gallery.name!r} stores no photos to re-embed")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    idx = sample_indices(len(gallery), sample, seed)
    vids = list(range(gallery.n_variants)) if variants is None else [int(v) for v in variants]
    if not vids or any(not 0 <= v < gallery.n_variants for v in vids):
        raise ValueError(f"variants must be positions in [0, {gallery.n_variants}), got {vids}")
    cosines = np.empty((len(idx), len(vids)), dtype=np.float64)
    for start in range(0, len(idx), batch_size):
        part = idx[start : start + batch_size]
        fresh = np.asarray(embed_fn(gallery.photos[part]), dtype=np.float64)
        if fresh.shape != (len(part), *gallery.embeddings.shape[1:]):
            raise ValueError(
                f"embed_fn returned {fresh.shape} for {len(part)} photos, expected "
                f"{(len(part), *gallery.embeddings.shape[1:])}"
            )
        a = fresh[:, vids]
        b = gallery.embeddings[part][:, vids].astype(np.float64)
        dots = np.einsum("nvd,nvd->nv", a, b)
        norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
        cosines[start : start + len(part)] = dots / np.where(norms > 0, norms, 1.0)
    cosines.setflags(write=False)
    worst = np.unravel_index(int(np.argmin(cosines)), cosines.shape)
    return EmbeddingCheck(
        indices=tuple(int(i) for i in idx),
        variants=tuple(vids),
        cosines=cosines,
        worst_cosine=float(cosines[worst]),
        worst_image_id=gallery.images[int(idx[worst[0]])].image_id,
    )


__all__ = [
    "CONSISTENT_COSINE",
    "EmbeddingCheck",
    "EmbeddingModels",
    "check_compatible",
    "sample_indices",
    "verify_embeddings",
]
