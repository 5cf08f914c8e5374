"""Model wrapper, model card, loaded model, weight fingerprints and input preprocessing.

Conventions: images are ``uint8`` RGB ``(N, H, W, 3)`` (or ``(N, H, W)`` grey for 1-channel models);
model inputs are ``(N, C, S, S)`` ``float32`` computed as ``(x / 255 - mean) / std`` per channel, in
the channel order the model was trained on (``card.colour_order``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from gmx.constants import NORM_MEAN, NORM_STD, TEMPLATE_SIZE
from gmx.encode.facerecognet import (
    FACERECOGNET_EMBEDDING_DIM,
    FACERECOGNET_INPUT_SIZE,
    FaceRecogNet,
)
from gmx.encode.iresnet import IRESNET_LAYERS, IRESNET_WIDTHS, IResNet

#: Name of the original GestaltMatcher architecture in model cards.
FACERECOGNET = "facerecognet"

#: Channel orders a model card may declare.
COLOUR_ORDERS: tuple[str, ...] = ("RGB", "BGR")

_CUSTOM_IRESNET = re.compile(r"^iresnet\[(\d+(?:,\d+){3})\]x\[(\d+(?:,\d+){3})\]$")

#: BT.601 luma weights in 15-bit fixed point, exactly as OpenCV's ``COLOR_RGB2GRAY`` on uint8
#: (which albumentations' ``to_gray`` calls in GestaltMatcher-Arc's grey TTA).
_LUMA_FIXED = (9798, 19235, 3735)
_LUMA_SHIFT = 15


def iresnet_architecture(layers: Sequence[int], widths: Sequence[int] = IRESNET_WIDTHS) -> str:
    """Canonical architecture name: ``iresnet50`` for standard networks, else ``iresnet[..]x[..]``.

    Args:
        layers: blocks per stage (4 values).
        widths: channels per stage (4 values).
    """
    layers_t = tuple(int(n) for n in layers)
    widths_t = tuple(int(w) for w in widths)
    if len(layers_t) != 4 or len(widths_t) != 4:
        raise ValueError(f"need 4 stages, got layers={layers_t} widths={widths_t}")
    if widths_t == IRESNET_WIDTHS:
        for depth, spec in IRESNET_LAYERS.items():
            if spec == layers_t:
                return f"iresnet{depth}"
    return f"iresnet[{','.join(map(str, layers_t))}]x[{','.join(map(str, widths_t))}]"


def parse_architecture(architecture: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """``(layers, widths)`` of an iResNet architecture name, ``None`` for ``facerecognet``.

    Raises:
        ValueError: if the name is neither ``facerecognet``, ``iresnet{18,34,50,100}`` nor
            ``iresnet[l1,l2,l3,l4]x[w1,w2,w3,w4]``.
    """
    if architecture == FACERECOGNET:
        return None
    match = re.fullmatch(r"iresnet(\d+)", architecture)
    if match and int(match.group(1)) in IRESNET_LAYERS:
        return IRESNET_LAYERS[int(match.group(1))], IRESNET_WIDTHS
    match = _CUSTOM_IRESNET.fullmatch(architecture)
    if match:
        layers = tuple(int(v) for v in match.group(1).split(","))
        widths = tuple(int(v) for v in match.group(2).split(","))
        if min(layers) >= 1 and min(widths) >= 1:
            return layers, widths
    raise ValueError(
        f"unknown architecture {architecture!r}: use 'facerecognet', 'iresnet18|34|50|100' or "
        "'iresnet[l1,l2,l3,l4]x[w1,w2,w3,w4]'"
    )


#: The iResNet input normalisation ``(x / 255 - mean) / std`` per channel (GestaltMatcher-Arc's and
#: insightface's: ``[0, 255]`` -> ``[-1, 1]``); the default ``ModelCard.mean``/``std``, and what
#: :func:`preprocess` uses without a card.
IRESNET_NORM: tuple[tuple[float, ...], tuple[float, ...]] = ((NORM_MEAN,) * 3, (NORM_STD,) * 3)


@dataclass(frozen=True)
class ModelCard:
    """What a model is and how to feed it: everything needed to rebuild and use its weights.

    Attributes:
        name: short display name (e.g. ``gm-arc-r50``).
        architecture: ``iresnet50``, ``iresnet100``, ``iresnet[1,2,2,1]x[16,32,64,128]`` or
            ``facerecognet``.
        layers: blocks per iResNet stage (filled from ``architecture``; ``None`` for FaceRecogNet).
        widths: channels per iResNet stage (filled from ``architecture``; ``None`` for FaceRecogNet).
        input_size: side of the square input (112 for iResNets, 100 for FaceRecogNet).
        channels: input channels (3, or 1 for the grey FaceRecogNet).
        colour_order: ``"RGB"`` or ``"BGR"``: channel order the model expects.
        mean: per-channel mean subtracted from ``x / 255`` (length ``channels``).
        std: per-channel divisor applied after the mean (length ``channels``).
        embedding_dim: size of the embedding (512 for iResNets, 320 for FaceRecogNet).
        classes: names of the classifier's outputs, in logit order, or ``None`` when unknown or
            when the model has no classifier.
        version: version string of the weights.
        sha256: SHA-256 of the file the weights were first read from (provenance).
        source_format: format the weights were first read from (see ``gmx.encode.load``).
        notes: free text (training data, conversions applied, caveats).
        clinical_use_statement: optional statement about (non-)clinical use shown with results.
    """

    name: str
    architecture: str
    layers: tuple[int, ...] | None = None
    widths: tuple[int, ...] | None = None
    input_size: int = TEMPLATE_SIZE
    channels: int = 3
    colour_order: str = "RGB"
    mean: tuple[float, ...] = IRESNET_NORM[0]
    std: tuple[float, ...] = IRESNET_NORM[1]
    embedding_dim: int = 512
    classes: tuple[str, ...] | None = None
    version: str = "unversioned"
    sha256: str = ""
    source_format: str = "gmx"
    notes: str = ""
    clinical_use_statement: str | None = None

    def __post_init__(self) -> None:
        # Normalise sequences to tuples (JSON gives lists) so cards compare and hash by value.
        for name in ("layers", "widths", "mean", "std", "classes"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        if not self.name:
            raise ValueError("model card needs a non-empty name")
        spec = parse_architecture(self.architecture)
        if spec is not None:
            layers, widths = spec
            for field_name, expected in (("layers", layers), ("widths", widths)):
                given = getattr(self, field_name)
                if given is None:
                    object.__setattr__(self, field_name, expected)
                elif tuple(int(v) for v in given) != expected:
                    raise ValueError(
                        f"card {field_name}={given} contradicts architecture {self.architecture!r}"
                    )
        elif self.layers is not None or self.widths is not None:
            raise ValueError("layers/widths only apply to iResNet architectures")
        if self.colour_order not in COLOUR_ORDERS:
            raise ValueError(
                f"colour_order must be one of {COLOUR_ORDERS}, got {self.colour_order!r}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean {self.mean} and std {self.std} need one value per channel ({self.channels})"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std values must be > 0, got {self.std}")
        if self.input_size < 8 or self.embedding_dim < 1:
            raise ValueError(
                f"bad input_size {self.input_size} or embedding_dim {self.embedding_dim}"
            )
        if self.classes is not None and not all(isinstance(c, str) for c in self.classes):
            raise ValueError("classes must be strings")

    @property
    def is_iresnet(self) -> bool:
        """True for iResNet architectures, False for FaceRecogNet."""
        return self.architecture != FACERECOGNET

    def to_json(self) -> str:
        """The card as a JSON object (UTF-8 text, stable key order)."""
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse a card written by :meth:`to_json`.

        Raises:
            ValueError: if the text is not a JSON object, has unknown or missing fields, or the
                values are invalid (the message names them).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model card is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"model card must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Build a card from a mapping of field names (as read from JSON)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown model card fields {unknown}; known: {sorted(names)}")
        missing = [n for n in ("name", "architecture") if n not in data]
        if missing:
            raise ValueError(f"model card lacks required fields {missing}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"bad model card values: {exc}") from exc


def default_card(
    *, name: str, architecture: str, channels: int | None = None, **fields: Any
) -> ModelCard:
    """Card with the usual preprocessing of an architecture (what upstream feeds each model).

    iResNets: 3x112x112 RGB, ``(x/255 - 0.5) / 0.5``, 512-d. FaceRecogNet: grey 100x100, ``x/255``
    (upstream ``predict.py`` applies no further normalisation), 320-d.

    Args:
        name: card name.
        architecture: see :class:`ModelCard`.
        channels: input channels (default 3 for iResNets, 1 for FaceRecogNet).
        **fields: any other card fields to set.
    """
    base: dict[str, Any] = {}
    if architecture == FACERECOGNET:
        c = 1 if channels is None else channels
        base = {
            "input_size": FACERECOGNET_INPUT_SIZE,
            "channels": c,
            "mean": (0.0,) * c,
            "std": (1.0,) * c,
            "embedding_dim": FACERECOGNET_EMBEDDING_DIM,
        }
    elif channels is not None:
        base["channels"] = channels
    base.update(fields)
    return ModelCard(name=name, architecture=architecture, **base)


class GestaltModel(nn.Module):
    """A backbone and an optional classifier, as GestaltMatcher models are trained.

    ``forward`` is :meth:`embed`: the ranking uses embeddings, never the classifier.

    Args:
        backbone: maps ``(N, C, S, S)`` inputs to ``(N, D)`` embeddings (an :class:`IResNet` or a
            :class:`~gmx.encode.FaceRecogNet`); must expose ``embedding_dim``.
        classifier: ``Linear(D -> classes)`` of a fine-tuned model, or ``None``. Upstream applies
            Dropout before it, which is the identity at inference.
    """

    def __init__(self, backbone: nn.Module, classifier: nn.Linear | None = None) -> None:
        super().__init__()
        dim = getattr(backbone, "embedding_dim", None)
        if not isinstance(dim, int):
            raise ValueError(f"backbone {type(backbone).__name__} lacks an int embedding_dim")
        if classifier is not None and classifier.in_features != dim:
            raise ValueError(
                f"classifier takes {classifier.in_features} features but the backbone gives {dim}"
            )
        self.backbone = backbone
        self.register_module("classifier", classifier)

    @property
    def embedding_dim(self) -> int:
        """Size of the embedding."""
        return int(self.backbone.embedding_dim)

    @property
    def num_classes(self) -> int | None:
        """Outputs of the classifier, or ``None`` without one."""
        return None if self.classifier is None else int(self.classifier.out_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(N, D)`` of preprocessed inputs ``(N, C, S, S)``."""
        return self.backbone(x)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, classes)`` of preprocessed inputs.

        Raises:
            ValueError: if the model has no classifier.
        """
        if self.classifier is None:
            raise ValueError("this model has no classifier (e.g. a raw Glint360K backbone)")
        return self.classifier(self.embed(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`embed`."""
        return self.embed(x)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference.

    Attributes:
        model: the network, in eval mode, on its device.
        card: how to feed it and what it is.
        fingerprint: SHA-256 (hex) of its canonical weights (see :func:`weights_fingerprint`);
            identical weights give the same fingerprint whatever file format they came from.
    """

    model: GestaltModel
    card: ModelCard
    fingerprint: str

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device


def build_backbone(card: ModelCard) -> nn.Module:
    """A randomly initialised backbone with the card's architecture and embedding size."""
    spec = parse_architecture(card.architecture)
    if spec is None:
        if card.embedding_dim != FACERECOGNET_EMBEDDING_DIM:
            raise ValueError(f"FaceRecogNet embeds in 320 dims, card says {card.embedding_dim}")
        return FaceRecogNet(in_channels=card.channels)
    layers, widths = spec
    if card.input_size % 16:
        raise ValueError(f"iResNet input_size must be a multiple of 16, got {card.input_size}")
    return IResNet(layers, widths, card.embedding_dim, grid=card.input_size // 16)


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 (hex) of a module's weights in canonical form.

    Canonical form: state_dict entries sorted by key, each hashed as key, dtype, shape and the
    little-endian bytes of the tensor (floating tensors as float32). ``num_batches_tracked``
    counters are skipped: they never change the output.
    """
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        if key.endswith("num_batches_tracked"):
            continue
        t = tensor.detach().to("cpu")
        if t.is_floating_point():
            t = t.to(torch.float32)
        array = np.ascontiguousarray(t.numpy())
        if array.dtype.byteorder == ">":
            array = array.byteswap().view(array.dtype.newbyteorder("<"))
        digest.update(f"{key}|{array.dtype.str}|{tuple(array.shape)}|".encode())
        digest.update(array.data)
    return digest.hexdigest()


def rgb_to_grey(images: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of uint8 RGB pixels, rounded as OpenCV's ``COLOR_RGB2GRAY``.

    Args:
        images: ``(..., 3)`` uint8 RGB.

    Returns:
        ``(...)`` uint8 luma ``round(0.299 R + 0.587 G + 0.114 B)`` (15-bit fixed point).
    """
    if images.dtype != np.uint8 or images.shape[-1] != 3:
        raise ValueError(f"expected (..., 3) uint8 RGB, got {images.shape} {images.dtype}")
    wide = images.astype(np.uint32)
    r, g, b = _LUMA_FIXED
    luma = wide[..., 0] * r + wide[..., 1] * g + wide[..., 2] * b + (1 << (_LUMA_SHIFT - 1))
    return (luma >> _LUMA_SHIFT).astype(np.uint8)


def input_norm(card: ModelCard | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The model's ``(mean, std)`` per channel, in its input's channel order (``x / 255`` units).

    Args:
        card: the model's card; ``None`` for the iResNet default (:data:`IRESNET_NORM`).
    """
    if card is None:
        return IRESNET_NORM
    return tuple(float(m) for m in card.mean), tuple(float(s) for s in card.std)


def normalize(x: torch.Tensor, card: ModelCard | None = None) -> torch.Tensor:
    """``(x - mean) / std`` of ``(N, C, H, W)`` pixels in ``[0, 1]`` (a new tensor).

    Args:
        x: pixels scaled to ``[0, 1]``, channels in the model's order.
        card: the model's card; ``None`` for the iResNet default.
    """
    mean, std = input_norm(card)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def denormalize(x: torch.Tensor, card: ModelCard | None = None) -> torch.Tensor:
    """Inverse of :func:`normalize`: model input back to pixels in ``[0, 1]`` (a new tensor)."""
    mean, std = input_norm(card)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x * s + m


def preprocess(
    images: np.ndarray, card: ModelCard | None = None, *, flip: bool = False, grey: bool = False
) -> torch.Tensor:
    """Turn aligned faces into the model's input tensor, with optional TTA.

    The one place where faces become model input (encoders, the explanation engine, training).
    Steps, in GestaltMatcher-Arc's order: grey (BT.601 luma, see :func:`rgb_to_grey`, replicated to
    3 channels, or kept as 1 channel for 1-channel models, which are always grey), mirror
    left-right, reorder channels to ``card.colour_order``, then :func:`normalize`
    (``(x / 255 - mean) / std``).

    Args:
        images: ``(N, S, S, 3)`` uint8 RGB, ``S = card.input_size``; 1-channel models also accept
            ``(N, S, S)`` uint8 grey. Not modified.
        card: the model's card; ``None`` for the iResNet default (3x112x112 RGB,
            :data:`IRESNET_NORM`).
        flip: mirror the faces left-right.
        grey: convert to grey before encoding (no-op for 1-channel models).

    Returns:
        ``(N, C, S, S)`` float32 contiguous CPU tensor.

    Raises:
        ValueError: for a wrong dtype or shape (the message has the shape).
    """
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise ValueError(
            f"images must be a uint8 numpy array, got {type(images).__name__} "
            f"{getattr(images, 'dtype', '')}"
        )
    size = TEMPLATE_SIZE if card is None else card.input_size
    channels = 3 if card is None else card.channels
    name = "the iResNet default" if card is None else card.name
    is_grey_input = images.ndim == 3 and channels == 1
    if not is_grey_input and (images.ndim != 4 or images.shape[-1] != 3):
        raise ValueError(f"images must be (N, {size}, {size}, 3) uint8 RGB, got {images.shape}")
    if images.shape[1:3] != (size, size):
        raise ValueError(f"images must be {size}x{size} for {name}, got {images.shape}")
    if channels == 1:
        pixels = images if is_grey_input else rgb_to_grey(images)
        pixels = pixels[..., None]
    elif grey:
        pixels = np.repeat(rgb_to_grey(images)[..., None], 3, axis=-1)
    else:
        pixels = images
    if flip:
        pixels = pixels[:, :, ::-1]
    if card is not None and card.colour_order == "BGR" and channels == 3:
        pixels = pixels[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))).to(torch.float32)
    return normalize(x / 255.0, card).contiguous()


__all__ = [
    "COLOUR_ORDERS",
    "FACERECOGNET",
    "IRESNET_NORM",
    "GestaltModel",
    "LoadedModel",
    "ModelCard",
    "build_backbone",
    "default_card",
    "denormalize",
    "input_norm",
    "iresnet_architecture",
    "normalize",
    "parse_architecture",
    "preprocess",
    "rgb_to_grey",
    "weights_fingerprint",
]
