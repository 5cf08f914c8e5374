"""Ensembles of models x test-time augmentation (TTA), GestaltMatcher-Arc style.

Each face gets one embedding per :class:`~gmx.variants.Variant`, ordered model-major, then flip,
then grey (``gmx.constants.TTA_ORDER``). The ranking compares variants one to one and averages the
distances; embeddings are never averaged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch

from gmx.constants import GM_INPUT_SIZE, TTA_ORDER
from gmx.encode.model import LoadedModel, preprocess, rgb_to_grey
from gmx.variants import Variant, tta_variants

#: Version tag of the ensemble fingerprint recipe; bump when it changes.
_FINGERPRINT_RECIPE = "gmx-ensemble-v1"


def derive_gm_image(images: np.ndarray, size: int = GM_INPUT_SIZE) -> np.ndarray:
    """Grey FaceRecogNet inputs derived from ArcFace-aligned faces.

    BT.601 luma (:func:`~gmx.encode.rgb_to_grey`) of the 112x112 template crop, resized to
    ``size`` with area interpolation. This is an approximation: the original GestaltMatcher cropped
    faces with its own detector and margins, not the ArcFace template, so embeddings of a
    FaceRecogNet model are best computed from ``AlignedFace.gm_image`` when available.

    Args:
        images: ``(N, H, W, 3)`` uint8 RGB. Not modified.
        size: output side.

    Returns:
        ``(N, size, size)`` uint8 grey.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB, got {images.shape} {images.dtype}")
    grey = rgb_to_grey(images)
    out = np.empty((len(grey), size, size), dtype=np.uint8)
    for i, g in enumerate(grey):
        out[i] = cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA)
    return out


#: Arithmetic of the forward passes: ``fp32`` (default, exact) or ``bf16`` (autocast: about twice as
#: fast on CPUs with AVX-512 bf16 and on GPUs; embeddings differ from fp32 by ~1e-3 in cosine).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    if precision == "fp32":
        return contextlib.nullcontext()
    kind = "cuda" if device.type == "cuda" else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16)


def gather_faces(faces: np.ndarray | Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """``(images (N,112,112,3), gm_images (N,100,100) or None)`` from arrays or aligned faces.

    Args:
        faces: ``(N, H, W, 3)`` uint8 RGB, or a sequence of objects with ``.image`` and optionally
            ``.gm_image`` (``gmx.align.AlignedFace``). Not modified.

    Raises:
        ValueError: for the wrong type, dtype or shape.
    """
    if isinstance(faces, np.ndarray):
        if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8:
            raise ValueError(
                f"faces must be (N, H, W, 3) uint8 RGB (N faces), got {faces.shape} {faces.dtype}"
            )
        return faces, None
    if not isinstance(faces, Sequence) or isinstance(faces, (str, bytes)):
        raise ValueError(
            "faces must be an (N, 112, 112, 3) uint8 array or a sequence of aligned faces "
            f"(objects with .image and .gm_image), got {type(faces).__name__}"
        )
    images = []
    gm_images = []
    for i, face in enumerate(faces):
        image = getattr(face, "image", None)
        if not isinstance(image, np.ndarray):
            raise ValueError(f"faces[{i}] ({type(face).__name__}) has no .image array")
        images.append(image)
        gm_images.append(getattr(face, "gm_image", None))
    if not images:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8), None
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"aligned faces have different shapes: {sorted(shapes)}")
    stacked = np.stack(images)
    gm: np.ndarray | None = None
    if all(isinstance(g, np.ndarray) and g.ndim == 2 for g in gm_images):
        gm_shapes = {g.shape for g in gm_images}  # type: ignore[union-attr]
        if len(gm_shapes) == 1:
            gm = np.stack(gm_images)  # type: ignore[arg-type]
    return stacked, gm


def model_pixels(model: LoadedModel, images: np.ndarray, gm: np.ndarray | None) -> np.ndarray:
    """The uint8 pixels one model reads: the 112 crop, or the grey GM crop for 1-channel models
    (derived from the 112 crop when no ``gm`` is given).

    Raises:
        ValueError: if a 3-channel model's input size differs from the faces'.
    """
    card = model.card
    size = card.input_size
    if card.channels == 1:
        if gm is not None and gm.shape[1:] == (size, size) and gm.dtype == np.uint8:
            return gm
        return derive_gm_image(images, size)
    if images.shape[1:3] != (size, size):
        raise ValueError(
            f"model {card.name} takes {size}x{size} faces, got {images.shape[1]}x{images.shape[2]}"
        )
    return images


class Ensemble:
    """Several loaded models and the TTA variants they are run with.

    Args:
        models: the models, in ensemble order (``Variant.model`` indexes this). All must have the
            same ``embedding_dim``.
        flip: add mirrored variants.
        grey: add grey variants (a no-op copy for 1-channel models such as FaceRecogNet).
        batch_size: most images (faces x TTA variants) in one forward pass. All TTA variants of a
            face always go through a model in the same pass.
        precision: ``"fp32"`` (default) or ``"bf16"`` autocast (faster, slightly different
            embeddings; the fingerprint does not change: the weights are the same).

    Attributes:
        models: the models.
        variants: one :class:`~gmx.variants.Variant` per output column of :meth:`embed`.
        fingerprint: SHA-256 (hex) over the models' weight fingerprints, their preprocessing and
            the TTA flags: galleries are only comparable with queries of the same fingerprint.
    """

    def __init__(
        self,
        models: Sequence[LoadedModel],
        *,
        flip: bool = True,
        grey: bool = True,
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> None:
        models = tuple(models)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not models:
            raise ValueError("an ensemble needs at least one model")
        for m in models:
            if not isinstance(m, LoadedModel):
                raise ValueError(f"ensemble members must be LoadedModel, got {type(m).__name__}")
        dims = {m.card.embedding_dim for m in models}
        if len(dims) != 1:
            raise ValueError(
                "ensemble models must share one embedding size, got "
                f"{[(m.card.name, m.card.embedding_dim) for m in models]}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.models: tuple[LoadedModel, ...] = models
        self.flip = bool(flip)
        self.grey = bool(grey)
        self.batch_size = int(batch_size)
        self.precision = precision
        self.variants: tuple[Variant, ...] = tta_variants(len(models), flip=flip, grey=grey)
        self._tta: tuple[tuple[bool, bool], ...] = tuple(
            (f, g) for f, g in TTA_ORDER if (flip or not f) and (grey or not g)
        )
        self.fingerprint: str = self._fingerprint()

    @property
    def embedding_dim(self) -> int:
        """Size of each embedding."""
        return self.models[0].card.embedding_dim

    def _fingerprint(self) -> str:
        recipe: dict[str, Any] = {
            "recipe": _FINGERPRINT_RECIPE,
            "tta": [list(t) for t in self._tta],
            "flip": self.flip,
            "grey": self.grey,
            "models": [
                {
                    "weights": m.fingerprint,
                    "architecture": m.card.architecture,
                    "input_size": m.card.input_size,
                    "channels": m.card.channels,
                    "colour_order": m.card.colour_order,
                    "mean": list(m.card.mean),
                    "std": list(m.card.std),
                }
                for m in self.models
            ],
        }
        text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def embed(self, faces: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Embed faces with every model and TTA variant.

        Args:
            faces: ``(N, 112, 112, 3)`` uint8 RGB ArcFace-aligned faces, or a sequence of aligned
                faces (``gmx.align.AlignedFace`` or any object with ``.image`` ``(112, 112, 3)``
                uint8 RGB and ``.gm_image`` ``(100, 100)`` uint8 grey). 1-channel models
                (FaceRecogNet) use ``gm_image``; with plain arrays it is derived by
                :func:`derive_gm_image`. Not modified.

        Returns:
            ``(N, V, D)`` float32 embeddings (not L2-normalised), ``V = len(self.variants)``.

        Raises:
            ValueError: for input of the wrong type, dtype or shape.
        """
        images, gm = gather_faces(faces)
        n = len(images)
        out = np.empty((n, len(self.variants), self.embedding_dim), dtype=np.float32)
        if n == 0:
            return out
        n_tta = len(self._tta)
        chunk = max(1, self.batch_size // n_tta)
        with torch.inference_mode():
            for m, model in enumerate(self.models):
                pixels = model_pixels(model, images, gm)
                # Grey is a no-op for 1-channel models: compute each distinct input once.
                keys = [(f, g and model.card.channels == 3) for f, g in self._tta]
                distinct = list(dict.fromkeys(keys))
                device = model.device
                for start in range(0, n, chunk):
                    part = pixels[start : start + chunk]
                    batch = torch.cat(
                        [preprocess(part, model.card, flip=f, grey=g) for f, g in distinct]
                    ).to(device)
                    with _autocast(device, self.precision):
                        emb = model.model.embed(batch).float().cpu().numpy()
                    emb = emb.reshape(len(distinct), len(part), -1)
                    for t, key in enumerate(keys):
                        out[start : start + len(part), m * n_tta + t] = emb[distinct.index(key)]
        return out


__all__ = ["PRECISIONS", "Ensemble", "derive_gm_image", "gather_faces", "model_pixels"]
