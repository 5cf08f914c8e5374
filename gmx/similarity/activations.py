"""Last-stage feature maps of queries and gallery images, per model/TTA variant.

A variant's maps are ``forward_maps`` of exactly the input its embedding came from
(:func:`gmx.encode.preprocess` with the variant's flip and grey), so ``head(maps)`` reproduces the
embedding. Gallery maps are part of the gallery build: :func:`gallery_activations` computes them,
:func:`with_activations` stores them in :attr:`Gallery.extras` (or :func:`save_activations` writes a
sidecar ``.npz``), and :class:`ActivationStore` serves them, computing any that are missing lazily for
the images asked for only.

Array names (:func:`activation_key`): ``simmaps.m{model}[.flip][.grey]``, one ``(N, C, h, w)`` array
per variant (float16 by default: 50 KB per image and variant at C=512).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmx._io import atomic_write
from gmx.encode import Ensemble, preprocess
from gmx.encode.ensemble import gather_faces, model_pixels
from gmx.errors import GalleryError
from gmx.gallery import Gallery, check_compatible
from gmx.variants import Variant

#: Prefix of the gallery extras (and sidecar arrays) holding feature maps.
ACTIVATION_PREFIX = "simmaps"

#: Format tag written into sidecar files.
_SIDECAR_FORMAT = "gmx-simmaps-v1"


def activation_key(variant: Variant) -> str:
    """Extras name of one variant's maps, e.g. ``simmaps.m0``, ``simmaps.m1.flip.grey``."""
    parts = [ACTIVATION_PREFIX, f"m{variant.model}"]
    if variant.flip:
        parts.append("flip")
    if variant.grey:
        parts.append("grey")
    return ".".join(parts)


@dataclass(frozen=True, eq=False)
class QueryActivations:
    """The query face's feature maps and embeddings, one per variant.

    Attributes:
        maps: one ``(C, h, w)`` float32 read-only array per variant (after ``bn2``), in the
            variant's own frame (a flipped variant's map is of the mirrored face).
        embeddings: ``(V, D)`` float32 read-only, the model heads applied to ``maps`` (what
            :meth:`Ensemble.embed` returns, up to float rounding).
        variants: the V variants, in ensemble order.
    """

    maps: tuple[np.ndarray, ...]
    embeddings: np.ndarray
    variants: tuple[Variant, ...]

    def __post_init__(self) -> None:
        maps = tuple(_frozen(np.asarray(m, dtype=np.float32)) for m in self.maps)
        emb = _frozen(np.asarray(self.embeddings, dtype=np.float32))
        variants = tuple(self.variants)
        if len(maps) != len(variants) or emb.shape[0] != len(variants) or emb.ndim != 2:
            raise ValueError(
                f"{len(variants)} variants need as many maps and (V, D) embeddings, got "
                f"{len(maps)} maps and embeddings {emb.shape}"
            )
        for m in maps:
            if m.ndim != 3:
                raise ValueError(f"query maps must be (C, h, w), got {m.shape}")
        object.__setattr__(self, "maps", maps)
        object.__setattr__(self, "embeddings", emb)
        object.__setattr__(self, "variants", variants)


def _frozen(a: np.ndarray) -> np.ndarray:
    out = np.array(a, copy=True)
    out.setflags(write=False)
    return out


def _gather(faces: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`gmx.encode.ensemble.gather_faces`, also accepting one face or one ``(112, 112, 3)``."""
    if isinstance(faces, np.ndarray) and faces.ndim == 3:
        faces = faces[None]
    elif not isinstance(faces, np.ndarray | Sequence) or isinstance(faces, str | bytes):
        faces = [faces]
    images, gm = gather_faces(faces)
    if len(images) == 0:
        raise ValueError("no faces given")
    return images, gm


def _variant_maps(
    ensemble: Ensemble,
    images: np.ndarray,
    gm: np.ndarray | None,
    variant_ids: Sequence[int],
    batch_size: int,
    want_embeddings: bool = False,
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Maps ``{variant: (N, C, h, w) float32}`` (and embeddings ``{variant: (N, D)}``)."""
    maps: dict[int, np.ndarray] = {}
    embs: dict[int, np.ndarray] = {}
    by_model: dict[int, list[int]] = {}
    for vi in variant_ids:
        by_model.setdefault(ensemble.variants[vi].model, []).append(vi)
    n = len(images)
    with torch.inference_mode():
        for m, vids in by_model.items():
            model = ensemble.models[m]
            backbone = model.model.backbone
            pixels = model_pixels(model, images, gm)
            chunk = max(1, batch_size // len(vids))
            parts: dict[int, list[np.ndarray]] = {vi: [] for vi in vids}
            eparts: dict[int, list[np.ndarray]] = {vi: [] for vi in vids}
            for start in range(0, n, chunk):
                part = pixels[start : start + chunk]
                batch = torch.cat(
                    [
                        preprocess(
                            part,
                            model.card,
                            flip=ensemble.variants[vi].flip,
                            grey=ensemble.variants[vi].grey and model.card.channels == 3,
                        )
                        for vi in vids
                    ]
                ).to(model.device)
                out = backbone.forward_maps(batch)
                out_np = out.float().cpu().numpy().reshape(len(vids), len(part), *out.shape[1:])
                emb_np = (
                    backbone.head(out).float().cpu().numpy().reshape(len(vids), len(part), -1)
                    if want_embeddings
                    else None
                )
                for k, vi in enumerate(vids):
                    parts[vi].append(out_np[k])
                    if emb_np is not None:
                        eparts[vi].append(emb_np[k])
            for vi in vids:
                maps[vi] = np.concatenate(parts[vi])
                if want_embeddings:
                    embs[vi] = np.concatenate(eparts[vi])
    return maps, embs


def query_activations(ensemble: Ensemble, face: Any, *, batch_size: int = 64) -> QueryActivations:
    """One forward pass per model of a query face, keeping the last feature maps.

    Args:
        ensemble: the models and TTA variants (all with ``forward_maps``/``head``).
        face: an aligned face (``gmx.align.AlignedFace`` or anything with ``.image`` and optionally
            ``.gm_image``) or a ``(112, 112, 3)`` uint8 RGB array. Not modified.
        batch_size: most images per forward pass.

    Returns:
        The maps and embeddings of every variant of ``ensemble``.
    """
    images, gm = _gather(face)
    if len(images) != 1:
        raise ValueError(f"query_activations takes one face, got {len(images)}")
    ids = list(range(len(ensemble.variants)))
    maps, embs = _variant_maps(ensemble, images, gm, ids, batch_size, want_embeddings=True)
    return QueryActivations(
        maps=tuple(maps[v][0] for v in ids),
        embeddings=np.stack([embs[v][0] for v in ids]),
        variants=tuple(ensemble.variants),
    )


def _indices(indices: Sequence[int] | np.ndarray | None, n: int) -> np.ndarray:
    if indices is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"image indices out of range [0, {n}): {idx.tolist()}")
    return idx


def gallery_activations(
    ensemble: Ensemble,
    gallery: Gallery,
    *,
    indices: Sequence[int] | np.ndarray | None = None,
    variants: Sequence[int] | None = None,
    dtype: type | np.dtype = np.float16,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Feature maps of gallery photos for the exact decomposition (a gallery-build step).

    Args:
        ensemble: the ensemble that embedded the gallery (fingerprint and variants must match).
        gallery: a gallery with stored photos (visible or not).
        indices: which images (default: all, in gallery order).
        variants: which variant indices (default: all).
        dtype: ``np.float16`` (half the size; the decomposed cosine then differs from the ranking's
            by about 1e-3) or ``np.float32`` (exact).
        batch_size: most images per forward pass.
        progress: called as ``progress(done, total)`` (images done) after each batch of images.

    Returns:
        ``{activation_key(variant): (K, C, h, w) array of dtype}``, ``K = len(indices)``; pass it to
        :func:`with_activations` or :func:`save_activations`.

    Raises:
        GalleryError: if the gallery has no photos or was embedded by other models.
    """
    check_compatible(ensemble, gallery)
    if gallery.photos is None:
        raise GalleryError(
            f"gallery {gallery.name!r} stores no photos, so its feature maps cannot be computed; "
            "compute them where the photos are and ship them as a sidecar (save_activations)"
        )
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float16), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float16 or float32, got {dt}")
    idx = _indices(indices, len(gallery))
    vids = list(range(len(ensemble.variants))) if variants is None else [int(v) for v in variants]
    for v in vids:
        if not 0 <= v < len(ensemble.variants):
            raise ValueError(
                f"variant index {v} out of range for {len(ensemble.variants)} variants"
            )
    out = {activation_key(ensemble.variants[v]): [] for v in vids}
    step = max(1, batch_size)
    if progress is not None:
        progress(0, len(idx))
    for start in range(0, len(idx), step):
        part = idx[start : start + step]
        maps, _ = _variant_maps(ensemble, gallery.photos[part], None, vids, batch_size)
        for v in vids:
            out[activation_key(ensemble.variants[v])].append(maps[v].astype(dt))
        if progress is not None:
            progress(min(start + step, len(idx)), len(idx))
    return {k: (np.concatenate(v) if v else np.zeros((0,), dtype=dt)) for k, v in out.items()}


def sidecar_path(gallery_path: str | Path) -> Path:
    """Where a gallery's activation sidecar lives: ``gallery.sqlite`` -> ``gallery.simmaps.npz``."""
    p = Path(gallery_path)
    return p.with_name(p.stem + ".simmaps.npz")


def with_activations(gallery: Gallery, activations: Mapping[str, np.ndarray]) -> Gallery:
    """A new gallery whose extras also hold ``activations`` (all N images); the input is unchanged.

    Raises:
        ValueError: for keys that are not activation keys.
        gmx.gallery.InvalidGalleryError: if an array's first axis is not N.
    """
    for key in activations:
        if not key.startswith(ACTIVATION_PREFIX + "."):
            raise ValueError(f"{key!r} is not an activation key (see activation_key)")
    return replace(gallery, extras={**gallery.extras, **activations})


def _image_ids_digest(gallery: Gallery) -> str:
    h = hashlib.sha256()
    for im in gallery.images:
        h.update(im.image_id.encode())
        h.update(b"\0")
    return h.hexdigest()


def save_activations(
    path: str | Path, gallery: Gallery, activations: Mapping[str, np.ndarray]
) -> Path:
    """Write a sidecar ``.npz`` of gallery maps (all N images), tied to the gallery's model and images.

    Returns:
        The path written.
    """
    for key, arr in activations.items():
        if not key.startswith(ACTIVATION_PREFIX + ".") or arr.shape[:1] != (len(gallery),):
            raise ValueError(
                f"sidecar arrays must be activation keys with first axis N={len(gallery)}, "
                f"got {key!r} {arr.shape}"
            )
    path = Path(path)
    meta = {
        "_format": np.array(_SIDECAR_FORMAT),
        "_fingerprint": np.array(gallery.model_fingerprint),
        "_images": np.array(_image_ids_digest(gallery)),
    }
    with atomic_write(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **meta, **dict(activations))
    return path


def load_activations(path: str | Path, gallery: Gallery) -> dict[str, np.ndarray]:
    """Read a sidecar written by :func:`save_activations` for this gallery.

    Raises:
        GalleryError: if the file is not a sidecar, or was made for another model or image list.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise GalleryError(f"cannot read activation sidecar {path}: {exc}") from exc
    if str(data.pop("_format", "")) != _SIDECAR_FORMAT:
        raise GalleryError(f"{path} is not a gmx activation sidecar")
    if str(data.pop("_fingerprint", "")) != gallery.model_fingerprint:
        raise GalleryError(f"{path} was computed with other models than gallery {gallery.name!r}")
    if str(data.pop("_images", "")) != _image_ids_digest(gallery):
        raise GalleryError(
            f"{path} was computed for another image list than gallery {gallery.name!r}"
        )
    for key, arr in data.items():
        if not key.startswith(ACTIVATION_PREFIX + ".") or arr.shape[:1] != (len(gallery),):
            raise GalleryError(f"{path}: unexpected array {key!r} {arr.shape}")
    return data


class ActivationStore:
    """Serves gallery feature maps: stored ones first, the rest computed lazily and cached.

    Lookup per variant: ``gallery.extras[activation_key(v)]``, then ``sidecar``, else a forward pass of
    the stored photos of just the images asked for (kept in a bounded LRU cache). Thread-safe.

    Args:
        ensemble: the gallery's ensemble.
        gallery: the gallery.
        sidecar: arrays from :func:`load_activations`, optional.
        cache_images: most images whose computed maps are kept.
    """

    def __init__(
        self,
        ensemble: Ensemble,
        gallery: Gallery,
        *,
        sidecar: Mapping[str, np.ndarray] | None = None,
        cache_images: int = 256,
    ) -> None:
        check_compatible(ensemble, gallery)
        self.ensemble = ensemble
        self.gallery = gallery
        self._stored: dict[int, np.ndarray] = {}
        self._source: dict[int, str] = {}
        for vi, variant in enumerate(ensemble.variants):
            key = activation_key(variant)
            if key in gallery.extras:
                self._stored[vi] = gallery.extras[key]
                self._source[vi] = "gallery"
            elif sidecar is not None and key in sidecar:
                arr = np.asarray(sidecar[key])
                if arr.shape[:1] != (len(gallery),):
                    raise GalleryError(
                        f"sidecar {key!r} has shape {arr.shape}, need N={len(gallery)}"
                    )
                self._stored[vi] = arr
                self._source[vi] = "sidecar"
            else:
                self._source[vi] = "computed"
        self._cache: OrderedDict[int, dict[int, np.ndarray]] = OrderedDict()
        self._cache_images = max(1, int(cache_images))
        self._lock = threading.Lock()

    def source(self, variant: int) -> str:
        """Where a variant's maps come from: ``gallery``, ``sidecar`` or ``computed``."""
        return self._source[variant]

    @property
    def fully_stored(self) -> bool:
        """True when no forward pass of a gallery photo is ever needed."""
        return all(s != "computed" for s in self._source.values())

    def maps(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Per variant, ``(K, C, h, w)`` float32 maps of gallery images ``indices``.

        Raises:
            GalleryError: if maps are missing and the gallery stores no photos to compute them.
        """
        idx = _indices(indices, len(self.gallery))
        missing_vars = [v for v, s in self._source.items() if s == "computed"]
        computed: dict[int, dict[int, np.ndarray]] = {}
        if missing_vars:
            computed = self._computed(idx, missing_vars)
        out = []
        for vi in range(len(self.ensemble.variants)):
            if vi in self._stored:
                out.append(np.asarray(self._stored[vi][idx], dtype=np.float32))
            else:
                out.append(np.stack([computed[int(i)][vi] for i in idx]))
        return out

    def _computed(self, idx: np.ndarray, vids: list[int]) -> dict[int, dict[int, np.ndarray]]:
        with self._lock:
            have = {int(i): self._cache[int(i)] for i in idx if int(i) in self._cache}
            for i in have:
                self._cache.move_to_end(i)
        todo = sorted({int(i) for i in idx} - set(have))
        if todo:
            if self.gallery.photos is None:
                raise GalleryError(
                    f"gallery {self.gallery.name!r} stores neither photos nor feature maps for "
                    "variants "
                    + ", ".join(self.ensemble.variants[v].label for v in vids)
                    + ": rebuild it with gmx.similarity.gallery_activations or give a sidecar"
                )
            maps, _ = _variant_maps(
                self.ensemble, self.gallery.photos[np.asarray(todo)], None, vids, 64
            )
            with self._lock:
                for k, i in enumerate(todo):
                    entry = {v: maps[v][k] for v in vids}
                    for arr in entry.values():
                        arr.setflags(write=False)
                    self._cache[i] = entry
                    have[i] = entry
                while len(self._cache) > self._cache_images:
                    self._cache.popitem(last=False)
        return have


__all__ = [
    "ACTIVATION_PREFIX",
    "ActivationStore",
    "QueryActivations",
    "activation_key",
    "gallery_activations",
    "load_activations",
    "query_activations",
    "save_activations",
    "sidecar_path",
    "with_activations",
]
