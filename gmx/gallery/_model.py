"""The gallery data model: syndromes, gallery images and their embeddings.

A :class:`Gallery` is immutable: every array it holds is read-only and owned by it (inputs that are
writable are copied, never frozen in place), so one gallery can be shared by every request of the app.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from gmx.constants import TEMPLATE_SIZE
from gmx.errors import GalleryError
from gmx.gallery._calibration import Calibration
from gmx.gallery._photos import EncodedPhotos
from gmx.variants import Variant

#: Names allowed for :attr:`Gallery.extras` keys (they become SQLite row keys).
EXTRA_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class InvalidGalleryError(GalleryError, ValueError):
    """A gallery's parts do not fit together (shapes, unknown labels, duplicate ids).

    It is both a :class:`~gmx.errors.GalleryError` (a gallery file that was edited by hand fails like
    this on load) and a :class:`ValueError` (code that builds an inconsistent gallery is wrong).
    """


def _readonly(array: np.ndarray, dtype: np.dtype | type | None = None) -> np.ndarray:
    """A read-only array equal to ``array`` that the caller cannot change behind our back.

    An array that is already read-only, of the right dtype, and owns or views read-only memory is
    kept as is; anything else is copied (inputs are never frozen in place).
    """
    arr = np.asarray(array)
    if dtype is not None and arr.dtype != np.dtype(dtype):
        arr = np.ascontiguousarray(arr.astype(dtype))
    elif _may_change(arr) or not arr.flags.c_contiguous:
        arr = np.array(arr, copy=True, order="C")
    else:
        return arr
    arr.setflags(write=False)
    return arr


def _may_change(arr: np.ndarray) -> bool:
    """True if ``arr`` or any array it views is writable (so someone could still change it)."""
    node: Any = arr
    while isinstance(node, np.ndarray):
        if node.flags.writeable:
            return True
        node = node.base
    return False


def _str_tuple(values: Iterable[Any], what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidGalleryError(
            f"{what} must be a sequence of strings, not the string {values!r}"
        )
    out = tuple(values)
    for v in out:
        if not isinstance(v, str) or not v:
            raise InvalidGalleryError(f"{what} must hold non-empty strings, got {v!r}")
    return out


@dataclass(frozen=True)
class Syndrome:
    """One disorder of the gallery.

    Attributes:
        syndrome_id: the label images refer to (GMDB: the ``syndrome_id`` column, as a string).
        name: display name, e.g. ``Cornelia de Lange syndrome``.
        omim: OMIM number as digits (``"122470"``), or ``None`` when the disorder has none.
        genes: gene symbols associated with the disorder, in the order they should be listed.
        hpo: HPO term ids (``HP:0000316``) describing the disorder's facial gestalt, if known.
    """

    syndrome_id: str
    name: str
    omim: str | None = None
    genes: tuple[str, ...] = ()
    hpo: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.syndrome_id, str) or not self.syndrome_id:
            raise InvalidGalleryError(
                f"syndrome_id must be a non-empty string, got {self.syndrome_id!r}"
            )
        if not isinstance(self.name, str):
            raise InvalidGalleryError(f"syndrome name must be a string, got {self.name!r}")
        if self.omim is not None and (not isinstance(self.omim, str) or not self.omim):
            raise InvalidGalleryError(f"omim must be a non-empty string or None, got {self.omim!r}")
        object.__setattr__(self, "genes", _str_tuple(self.genes, f"genes of {self.syndrome_id!r}"))
        object.__setattr__(self, "hpo", _str_tuple(self.hpo, f"hpo of {self.syndrome_id!r}"))


@dataclass(frozen=True)
class GalleryImage:
    """One gallery photo.

    Attributes:
        image_id: unique id of the photo (GMDB: ``image_id``).
        subject_id: the patient the photo shows (GMDB: ``subject``); several photos may share one.
        syndrome_id: the patient's disorder, a key of :attr:`Gallery.syndromes`.
        split: evaluation split membership, or ``None`` for "every split". GMDB's rare set is
            evaluated in 10 splits and an image may belong to several of them: they are written as
            sorted comma-separated integers (``"0,3,7"``); see :func:`split_members`.
    """

    image_id: str
    subject_id: str
    syndrome_id: str
    split: str | None = None

    def __post_init__(self) -> None:
        for name in ("image_id", "subject_id", "syndrome_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidGalleryError(f"{name} must be a non-empty string, got {value!r}")
        if self.split is not None and (not isinstance(self.split, str) or not self.split):
            raise InvalidGalleryError(
                f"split must be a non-empty string or None, got {self.split!r}"
            )

    @property
    def splits(self) -> frozenset[str] | None:
        """The splits this image belongs to, or ``None`` for every split."""
        if self.split is None:
            return None
        return frozenset(s.strip() for s in self.split.split(",") if s.strip())


@dataclass(frozen=True, eq=False)
class Gallery:
    """Labelled gallery images with their embeddings, made by one model ensemble.

    Attributes:
        name: short name, e.g. ``GMDB v1.0.3 frequent+rare``.
        version: the gallery's version string (reported as ``gallery_version``).
        images: the N gallery images; index ``i`` everywhere refers to ``images[i]``.
        syndromes: read-only mapping syndrome id -> :class:`Syndrome` (may hold syndromes no image
            uses). Given a sequence of syndromes, it is turned into the mapping.
        embeddings: ``(N, V, D)`` float32, read-only, raw (not L2-normalised) embeddings, one per
            variant in :attr:`variants` order.
        variants: the V model/TTA variants (model-major, then flip, then grey).
        model_fingerprint: fingerprint of the ensemble that made the embeddings
            (``gmx.encode.Ensemble.fingerprint``); a gallery is only valid with that ensemble.
        photos: ``(N, 112, 112, 3)`` uint8 RGB aligned photos, read-only, or ``None``.
        photos_visible: whether the photos may be shown to users (GMDB photos are access-controlled;
            ``False`` keeps them for computation only). Must be ``False`` when there are no photos.
        extras: read-only mapping name -> read-only array whose first axis is N, for optional per-image
            data such as ground-truth masks ``(N, 112, 112)`` or cached activations.
        description: free text for people.
        provenance: where the images, labels and embeddings came from.
        encoded_photos: the PNG/WebP bytes :attr:`photos` were decoded from (what a gallery file
            stores), or ``None`` for raw pixels. Given alone, :attr:`photos` is decoded from it;
            given with :attr:`photos`, those must be its decoding (:func:`~gmx.gallery.build_gallery`,
            :func:`~gmx.gallery.load_gallery` and :meth:`subset` guarantee it; the first photo is
            checked). Keeping the bytes is what makes the stored photos exactly the embedded pixels
            (see :mod:`gmx.gallery._photos`).
        calibration: the gallery's stored :class:`~gmx.gallery.Calibration` (``gmx gallery
            calibrate``), or ``None`` (not calibrated). It must name this gallery and, when it
            records one, this gallery's model fingerprint. :meth:`subset` drops it (the counts
            belong to the whole gallery).
    """

    name: str
    version: str
    images: tuple[GalleryImage, ...]
    syndromes: Mapping[str, Syndrome]
    embeddings: np.ndarray
    variants: tuple[Variant, ...]
    model_fingerprint: str
    photos: np.ndarray | None = None
    photos_visible: bool = False
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    description: str = ""
    provenance: str = ""
    encoded_photos: EncodedPhotos | None = None
    calibration: Calibration | None = None
    # Derived, cached once: inverse L2 norms (N, V), integer codes for fast ranking.
    _inv_norms: np.ndarray = field(init=False, repr=False, compare=False)
    _syndrome_codes: np.ndarray = field(init=False, repr=False, compare=False)
    _syndrome_order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _subject_codes: np.ndarray = field(init=False, repr=False, compare=False)
    _subject_order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("name", "version", "model_fingerprint", "description", "provenance"):
            if not isinstance(getattr(self, name), str):
                raise InvalidGalleryError(f"{name} must be a string, got {getattr(self, name)!r}")
        if not self.name:
            raise InvalidGalleryError("a gallery needs a non-empty name")
        if not self.model_fingerprint:
            raise InvalidGalleryError(
                "a gallery needs the model_fingerprint of the models that embedded it"
            )

        images = tuple(self.images)
        for im in images:
            if not isinstance(im, GalleryImage):
                raise InvalidGalleryError(f"images must be GalleryImage objects, got {im!r}")
        set_(self, "images", images)

        syndromes = self.syndromes
        if not isinstance(syndromes, Mapping):
            syndromes = {s.syndrome_id: s for s in _as_syndromes(syndromes)}
        syn: dict[str, Syndrome] = {}
        for key, s in syndromes.items():
            if not isinstance(s, Syndrome):
                raise InvalidGalleryError(f"syndromes must map ids to Syndrome objects, got {s!r}")
            if key != s.syndrome_id:
                raise InvalidGalleryError(
                    f"syndrome key {key!r} differs from its syndrome_id {s.syndrome_id!r}"
                )
            syn[key] = s
        set_(self, "syndromes", MappingProxyType(syn))

        variants = tuple(self.variants)
        for v in variants:
            if not isinstance(v, Variant):
                raise InvalidGalleryError(
                    f"variants must be gmx.variants.Variant objects, got {v!r}"
                )
        if len(set(variants)) != len(variants):
            raise InvalidGalleryError(f"variants repeat: {[v.label for v in variants]}")
        set_(self, "variants", variants)

        emb = np.asarray(self.embeddings)
        if emb.ndim != 3:
            raise InvalidGalleryError(f"embeddings must be (N, V, D), got shape {emb.shape}")
        if not (np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)):
            raise InvalidGalleryError(f"embeddings must be real numbers, got dtype {emb.dtype}")
        n = len(images)
        if emb.shape[0] != n:
            raise InvalidGalleryError(
                f"{n} images but embeddings for {emb.shape[0]} (shape {emb.shape})"
            )
        if emb.shape[1] != len(variants):
            raise InvalidGalleryError(
                f"{len(variants)} variants {[v.label for v in variants]} but embeddings have "
                f"{emb.shape[1]} per image (shape {emb.shape})"
            )
        if emb.shape[2] < 1:
            raise InvalidGalleryError(f"embedding dimension must be >= 1, got shape {emb.shape}")
        emb = _readonly(emb, np.float32)
        if not np.isfinite(emb).all():
            bad = np.argwhere(~np.isfinite(emb))[0]
            raise InvalidGalleryError(
                f"embeddings contain NaN/inf, first at image {images[bad[0]].image_id!r} variant {bad[1]}"
            )
        set_(self, "embeddings", emb)

        index: dict[str, int] = {}
        for i, im in enumerate(images):
            if im.image_id in index:
                raise InvalidGalleryError(
                    f"duplicate image_id {im.image_id!r} (positions {index[im.image_id]} and {i})"
                )
            index[im.image_id] = i
            if im.syndrome_id not in syn:
                raise InvalidGalleryError(
                    f"image {im.image_id!r} has syndrome_id {im.syndrome_id!r}, which is not among the gallery's syndromes"
                )
        set_(self, "_index", MappingProxyType(index))

        self._check_encoded_photos(n)
        if self.photos is not None:
            photos = np.asarray(self.photos)
            want = (n, TEMPLATE_SIZE, TEMPLATE_SIZE, 3)
            if photos.shape != want or photos.dtype != np.uint8:
                raise InvalidGalleryError(
                    f"photos must be {want} uint8, got {photos.shape} {photos.dtype}"
                )
            set_(self, "photos", _readonly(photos, np.uint8))
        if not isinstance(self.photos_visible, bool | np.bool_):
            raise InvalidGalleryError(f"photos_visible must be a bool, got {self.photos_visible!r}")
        set_(self, "photos_visible", bool(self.photos_visible))
        if self.photos_visible and self.photos is None:
            raise InvalidGalleryError("photos_visible=True but the gallery has no photos")

        extras: dict[str, np.ndarray] = {}
        for key, value in dict(self.extras).items():
            if not isinstance(key, str) or not EXTRA_NAME_PATTERN.match(key):
                raise InvalidGalleryError(
                    f"extra name must match {EXTRA_NAME_PATTERN.pattern}, got {key!r}"
                )
            arr = np.asarray(value)
            if arr.ndim < 1 or arr.shape[0] != n:
                raise InvalidGalleryError(
                    f"extra {key!r} must have first axis N={n}, got shape {arr.shape}"
                )
            if arr.dtype.kind not in "biuf":
                raise InvalidGalleryError(
                    f"extra {key!r} must be bool/int/float, got dtype {arr.dtype}"
                )
            extras[key] = _readonly(arr)
        set_(self, "extras", MappingProxyType(extras))

        self._check_calibration()

        # Cached derivations for ranking: inverse norms (0 for zero vectors, which then have cosine
        # similarity 0 to everything, as sklearn's normalize() leaves them) and integer codes.
        norms = np.sqrt(np.einsum("nvd,nvd->nv", emb, emb, dtype=np.float64))
        inv = np.zeros_like(norms)
        np.divide(1.0, norms, out=inv, where=norms > 0)
        inv.setflags(write=False)
        set_(self, "_inv_norms", inv)
        syn_order = tuple(dict.fromkeys(im.syndrome_id for im in images))
        syn_code = {s: k for k, s in enumerate(syn_order)}
        codes = np.fromiter((syn_code[im.syndrome_id] for im in images), dtype=np.int64, count=n)
        codes.setflags(write=False)
        set_(self, "_syndrome_order", syn_order)
        set_(self, "_syndrome_codes", codes)
        sub_order = tuple(dict.fromkeys(im.subject_id for im in images))
        sub_code = {s: k for k, s in enumerate(sub_order)}
        scodes = np.fromiter((sub_code[im.subject_id] for im in images), dtype=np.int64, count=n)
        scodes.setflags(write=False)
        set_(self, "_subject_order", sub_order)
        set_(self, "_subject_codes", scodes)

    def _check_encoded_photos(self, n: int) -> None:
        enc = self.encoded_photos
        if enc is None:
            return
        if not isinstance(enc, EncodedPhotos):
            raise InvalidGalleryError(
                f"encoded_photos must be EncodedPhotos, got {type(enc).__name__}"
            )
        if len(enc) != n or enc.size != (TEMPLATE_SIZE, TEMPLATE_SIZE):
            raise InvalidGalleryError(
                f"encoded_photos hold {len(enc)} photos of {enc.size}, expected {n} of "
                f"{(TEMPLATE_SIZE, TEMPLATE_SIZE)}"
            )
        if self.photos is None:
            object.__setattr__(self, "photos", enc.decode())
        elif not np.array_equal(
            enc.take(np.zeros(1, np.int64)).decode()[0], np.asarray(self.photos)[0]
        ):
            raise InvalidGalleryError(
                "photos are not the decoding of encoded_photos (first photo differs): the stored "
                "photos would not be the pixels that were embedded"
            )

    def _check_calibration(self) -> None:
        cal = self.calibration
        if cal is None:
            return
        if not isinstance(cal, Calibration):
            raise InvalidGalleryError(
                f"calibration must be a Calibration, got {type(cal).__name__}"
            )
        if cal.gallery_name != self.name:
            raise InvalidGalleryError(
                f"calibration of gallery {cal.gallery_name!r} does not belong to gallery {self.name!r}"
            )
        if cal.model_fingerprint and cal.model_fingerprint != self.model_fingerprint:
            raise InvalidGalleryError(
                f"calibration was made with model {cal.model_fingerprint[:12]}, the gallery's "
                f"embeddings with {self.model_fingerprint[:12]}: recalibrate (`gmx gallery calibrate`)"
            )

    # --- convenience -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (
            f"Gallery(name={self.name!r}, version={self.version!r}, images={len(self.images)}, "
            f"syndromes={len(self.syndromes)}, variants={len(self.variants)}, dim={self.embedding_dim}, "
            f"photos={'yes' if self.photos is not None else 'no'}, fingerprint={self.model_fingerprint[:12]!r})"
        )

    @property
    def photo_codec(self) -> str | None:
        """How the photos are stored: ``"raw"``, ``"png"``, ``"webp"``; ``None`` without photos."""
        if self.photos is None:
            return None
        return "raw" if self.encoded_photos is None else self.encoded_photos.codec

    @property
    def photo_quality(self) -> int | None:
        """WebP quality of the stored photos (100 = lossless), else ``None``."""
        return None if self.encoded_photos is None else self.encoded_photos.quality

    @property
    def n_images(self) -> int:
        """N, the number of gallery images."""
        return len(self.images)

    @property
    def n_variants(self) -> int:
        """V, the number of model/TTA variants per image."""
        return len(self.variants)

    @property
    def embedding_dim(self) -> int:
        """D, the embedding size."""
        return int(self.embeddings.shape[2])

    @property
    def subject_ids(self) -> tuple[str, ...]:
        """Distinct subjects, in order of first appearance."""
        return self._subject_order

    def index_of(self, image_id: str) -> int:
        """Position of an image in :attr:`images`.

        Raises:
            KeyError: no such image.
        """
        try:
            return self._index[image_id]
        except KeyError:
            raise KeyError(f"no gallery image with image_id {image_id!r}") from None

    def images_of(self, syndrome_id: str) -> np.ndarray:
        """``(K,)`` int64 indices of the images labelled ``syndrome_id`` (empty if none)."""
        if syndrome_id not in self.syndromes:
            raise KeyError(f"no syndrome {syndrome_id!r} in gallery {self.name!r}")
        ids = np.flatnonzero(
            np.array([im.syndrome_id == syndrome_id for im in self.images], dtype=bool)
        )
        return ids.astype(np.int64)

    def subset(self, indices: Sequence[int] | np.ndarray, *, name: str | None = None) -> Gallery:
        """A new gallery holding only the given images (in the given order), same model and syndromes.

        Args:
            indices: image positions, or an ``(N,)`` boolean mask.
            name: name of the new gallery (default: this one's).
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"mask must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ValueError(f"indices out of range [0, {len(self)}): {idx.min()}..{idx.max()}")
        return Gallery(
            name=self.name if name is None else name,
            version=self.version,
            images=tuple(self.images[i] for i in idx),
            syndromes=self.syndromes,
            embeddings=self.embeddings[idx],
            variants=self.variants,
            model_fingerprint=self.model_fingerprint,
            photos=None if self.photos is None else self.photos[idx],
            photos_visible=self.photos_visible,
            extras={k: v[idx] for k, v in self.extras.items()},
            description=self.description,
            provenance=self.provenance,
            encoded_photos=(
                None
                if self.encoded_photos is None or idx.size == 0
                else self.encoded_photos.take(idx)
            ),
        )


def _as_syndromes(values: Iterable[Syndrome]) -> list[Syndrome]:
    out = list(values)
    seen: set[str] = set()
    for s in out:
        if not isinstance(s, Syndrome):
            raise InvalidGalleryError(f"syndromes must be Syndrome objects, got {s!r}")
        if s.syndrome_id in seen:
            raise InvalidGalleryError(f"duplicate syndrome_id {s.syndrome_id!r}")
        seen.add(s.syndrome_id)
    return out


def split_members(gallery: Gallery, split: int | str) -> np.ndarray:
    """``(K,)`` int64 indices of the images that belong to an evaluation split.

    Images whose :attr:`GalleryImage.split` is ``None`` belong to every split (GestaltMatcher-Arc's
    frequent+rare protocol fills the frequent images' missing split with the split being evaluated).
    """
    key = str(split)
    mask = [im.split is None or key in (im.splits or ()) for im in gallery.images]
    return np.flatnonzero(np.array(mask, dtype=bool)).astype(np.int64)


__all__ = [
    "Gallery",
    "GalleryImage",
    "InvalidGalleryError",
    "Syndrome",
    "split_members",
]
