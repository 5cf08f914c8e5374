"""Load any supported checkpoint into a :class:`~gmx.encode.LoadedModel`; save the gmx format.

The format is detected from the file's bytes, never from its name: a torch zip or legacy pickle
is read with ``torch.load(weights_only=True)`` and its keys decide the layout
(:func:`gmx.encode.formats.detect_layout`); anything else must parse as an ONNX model.

A ``X.card.json`` next to ``X.pt`` / ``X.pth`` / ``X.onnx`` is used as the model card, whatever the
weights format (validated against the weights). gmx-format weights (``backbone.*`` keys) need it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gmx._io import atomic_write_bytes
from gmx.device import select_device
from gmx.encode.facerecognet import FACERECOGNET_INPUT_SIZE, FaceRecogNet
from gmx.encode.formats import (
    FORMAT_ARC,
    FORMAT_GM,
    FORMAT_GMX,
    FORMAT_INSIGHTFACE,
    FORMAT_ONNX,
    IResNetWeights,
    detect_layout,
    first_keys,
    read_arc_state_dict,
    read_gm_state_dict,
    read_insightface_state_dict,
    read_onnx,
)
from gmx.encode.iresnet import IResNet
from gmx.encode.model import (
    FACERECOGNET,
    GestaltModel,
    LoadedModel,
    ModelCard,
    build_backbone,
    default_card,
    iresnet_architecture,
    weights_fingerprint,
)
from gmx.errors import ModelLoadError

logger = logging.getLogger(__name__)

#: Suffix of the card file written next to gmx-format weights (``X.pt`` -> ``X.card.json``).
CARD_SUFFIX = ".card.json"

#: Key of the card file holding the weights' fingerprint (checked on load).
FINGERPRINT_KEY = "weights_fingerprint"

#: Sane bounds on model card fields, checked before anything is allocated from a card. Real
#: GestaltMatcher models: input 100-112, 320-512-d embeddings, widths <= 512, <= 30 blocks per
#: stage, ~1,000 syndromes.
MAX_CARD_INPUT_SIZE = 1024
MAX_CARD_EMBEDDING_DIM = 16_384
MAX_CARD_WIDTH = 8192
MAX_CARD_BLOCKS = 256
MAX_CARD_CLASSES = 1_000_000

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"

PICKLE_HELP = (
    "Convert it once, in an environment that has the code that defined the model (for "
    "GestaltMatcher-Arc: its repository with onnx2torch==1.4.1 installed):\n"
    "    import torch\n"
    '    model = torch.load("{src}", map_location="cpu", weights_only=False)\n'
    '    torch.save(model.state_dict(), "{dst}")\n'
    "then load the new file. Only if you trust the file, load_model(..., allow_pickle=True) "
    "unpickles it here instead (this runs code stored in the file)."
)


class UnsafePickleWarning(UserWarning):
    """A whole-module pickle was unpickled because ``allow_pickle=True`` was given."""


def card_path_for(weights: str | Path) -> Path:
    """``X.card.json`` for weights ``X.pt`` (or ``X.pth`` / ``X.onnx``)."""
    weights = Path(weights)
    return weights.with_name(weights.stem + CARD_SUFFIX)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _torch_load(data: bytes, path: Path, allow_pickle: bool) -> object:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refusal = exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"{path.name} looks like a torch checkpoint but cannot be read: the file is truncated "
            "or corrupt. Copy or download it again."
        ) from exc
    dst = path.with_name(path.stem + "_state_dict.pt").name
    if not allow_pickle:
        raise ModelLoadError(
            f"{path.name} is a pickled Python object (e.g. a whole model saved with "
            "torch.save(model)), not a plain state_dict; gmx does not unpickle it silently. "
            + PICKLE_HELP.format(src=path.name, dst=dst)
        ) from refusal
    warnings.warn(
        f"unpickling {path.name} with weights_only=False because allow_pickle=True: this runs "
        "code stored in the file; convert it to a state_dict to avoid this",
        UnsafePickleWarning,
        stacklevel=3,
    )
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ModelLoadError(
            f"{path.name} needs the code that defined its model to unpickle ({exc}). "
            + PICKLE_HELP.format(src=path.name, dst=dst)
        ) from exc
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ModelLoadError(f"{path.name} cannot be unpickled: {exc}") from exc


def _as_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                inner = inner.state_dict()
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ModelLoadError(f"{path.name} holds a {type(obj).__name__}, not a state_dict")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelLoadError(f"{path.name} is not a state_dict of tensors (entries {bad[:5]})")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):  # saved from nn.DataParallel
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _read_card(path: Path) -> tuple[ModelCard, str | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelLoadError(
            f"cannot read model card {path.name} ({exc.strerror or 'input/output error'})."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ModelLoadError(f"model card {path.name} is not UTF-8 text, so not JSON.") from exc
    except json.JSONDecodeError as exc:
        raise ModelLoadError(
            f"model card {path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}); fix it or delete it to use the defaults of the weights."
        ) from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"model card {path.name} must be a JSON object")
    fingerprint = data.pop(FINGERPRINT_KEY, None)
    try:
        card = ModelCard.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"invalid model card {path.name}: {exc}") from exc
    _check_card_bounds(card, path)
    return card, fingerprint


def _check_card_bounds(card: ModelCard, path: Path) -> None:
    """Refuse card fields outside sane bounds (they size what gets allocated)."""
    limits = (
        ("input_size", card.input_size, (card.input_size,), MAX_CARD_INPUT_SIZE),
        ("embedding_dim", card.embedding_dim, (card.embedding_dim,), MAX_CARD_EMBEDDING_DIM),
        ("widths", card.widths, card.widths or (), MAX_CARD_WIDTH),
        ("layers", card.layers, card.layers or (), MAX_CARD_BLOCKS),
        (
            "number of classes",
            len(card.classes or ()),
            (len(card.classes or ()),),
            MAX_CARD_CLASSES,
        ),
    )
    for name, values in (("mean", card.mean), ("std", card.std)):
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ModelLoadError(f"model card {path.name}: {name} {values} must be finite numbers.")
    for name, shown, values, limit in limits:
        if any(not isinstance(v, int) or isinstance(v, bool) or v > limit for v in values):
            raise ModelLoadError(
                f"model card {path.name}: {name} {shown} is not a whole number of at most "
                f"{limit:,}; fix the card (or delete it to use the defaults of the weights)."
            )


def _check_shapes_before_allocating(
    card: ModelCard, sd: Mapping[str, torch.Tensor], path: Path
) -> None:
    """Compare the network the card describes with the weights' shapes, allocating nothing.

    The network is built on the ``meta`` device (shapes only), so a card that declares a huge
    network fails here instead of allocating it.
    """
    try:
        with torch.device("meta"):
            expected = build_backbone(card).state_dict()
    except ValueError as exc:
        raise ModelLoadError(f"model card {card_path_for(path).name}: {exc}") from exc
    given = {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = [
        f"{k}: card {tuple(expected[k].shape)}, weights {tuple(given[k].shape)}"
        for k in sorted(set(expected) & set(given))
        if tuple(expected[k].shape) != tuple(given[k].shape)
    ]
    if missing or unexpected or wrong:
        details = "; ".join(
            part
            for part in (
                f"missing {first_keys(['backbone.' + k for k in missing], 3)}" if missing else "",
                f"unexpected {first_keys(['backbone.' + k for k in unexpected], 3)}"
                if unexpected
                else "",
                f"shapes differ: {'; '.join(wrong[:3])}" if wrong else "",
            )
            if part
        )
        raise ModelLoadError(
            f"{path.name}: the weights do not fit the network its card "
            f"{card_path_for(path).name} describes ({card.architecture}, input {card.input_size}, "
            f"embedding {card.embedding_dim}): {details}"
        )


def _linear(sd: Mapping[str, torch.Tensor] | None) -> nn.Linear | None:
    if sd is None:
        return None
    weight = sd.get("weight")
    bias = sd.get("bias")
    if weight is None or bias is None or weight.ndim != 2:
        raise ModelLoadError("classifier needs a 2-d weight and a bias")
    layer = nn.Linear(int(weight.shape[1]), int(weight.shape[0]))
    _load_strict(layer, {"weight": weight, "bias": bias}, "classifier")
    return layer


def _load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    try:
        module.load_state_dict(dict(sd), strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ModelLoadError(
            f"{what} weights do not fit the network: {' '.join(lines[1:6])}"
        ) from exc


def _iresnet_model(weights: IResNetWeights, what: str) -> GestaltModel:
    backbone = IResNet(weights.layers, weights.widths, weights.embedding_dim, grid=weights.grid)
    _load_strict(backbone, weights.backbone, what)
    return GestaltModel(backbone, _linear(weights.classifier))


def _from_layout(
    sd: dict[str, torch.Tensor], layout: str, card: ModelCard | None, path: Path
) -> tuple[GestaltModel, dict[str, Any]]:
    """Model and default card fields for a state_dict of a known layout."""
    if layout == FORMAT_GMX:
        if card is None:
            raise ModelLoadError(
                f"{path.name} has gmx-format keys (backbone.*) but no card {card_path_for(path).name}"
            )
        _check_shapes_before_allocating(card, sd, path)
        backbone = build_backbone(card)
        classifier = None
        if "classifier.weight" in sd:
            w = sd["classifier.weight"]
            classifier = nn.Linear(int(w.shape[1]), int(w.shape[0]))
        model = GestaltModel(backbone, classifier)
        _load_strict(model, sd, path.name)
        return model, {}
    if layout == FORMAT_GM:
        in_channels, backbone_sd, classifier_sd = read_gm_state_dict(sd)
        backbone = FaceRecogNet(in_channels)
        _load_strict(backbone, backbone_sd, path.name)
        model = GestaltModel(backbone, _linear(classifier_sd))
        return model, {"architecture": FACERECOGNET, "channels": in_channels}
    reader = read_arc_state_dict if layout == FORMAT_ARC else read_insightface_state_dict
    weights = reader(sd)
    return _iresnet_model(weights, path.name), _iresnet_fields(weights)


def _iresnet_fields(weights: IResNetWeights) -> dict[str, Any]:
    return {
        "architecture": iresnet_architecture(weights.layers, weights.widths),
        "input_size": 16 * weights.grid,
        "embedding_dim": weights.embedding_dim,
    }


def _check_card(card: ModelCard, model: GestaltModel) -> None:
    """Raise ModelLoadError if the card cannot describe the model."""
    backbone = model.backbone
    if isinstance(backbone, IResNet):
        arch = iresnet_architecture(backbone.layers_spec, backbone.widths)
        if (card.layers, card.widths) != (backbone.layers_spec, backbone.widths):
            raise ModelLoadError(f"card says {card.architecture!r} but the weights are {arch!r}")
        if card.channels != 3 or card.input_size != 16 * backbone.grid:
            raise ModelLoadError(
                f"card input {card.channels}x{card.input_size}x{card.input_size} does not fit an "
                f"iResNet with a {backbone.grid}x{backbone.grid} last map"
            )
    elif isinstance(backbone, FaceRecogNet):
        if card.architecture != FACERECOGNET or card.channels != backbone.in_channels:
            raise ModelLoadError(
                f"card says {card.architecture!r} with {card.channels} channels but the weights "
                f"are facerecognet with {backbone.in_channels}"
            )
        if card.input_size != FACERECOGNET_INPUT_SIZE:
            raise ModelLoadError(f"FaceRecogNet takes 100x100 input, card says {card.input_size}")
    if card.embedding_dim != model.embedding_dim:
        raise ModelLoadError(
            f"card embedding_dim {card.embedding_dim} != model's {model.embedding_dim}"
        )
    if card.classes is not None and len(card.classes) != (model.num_classes or 0):
        raise ModelLoadError(
            f"card lists {len(card.classes)} classes but the classifier has {model.num_classes}"
        )


def load_model(
    path: str | Path,
    *,
    device: str | torch.device | None = None,
    allow_pickle: bool = False,
) -> LoadedModel:
    """Load a model checkpoint of any supported format.

    Args:
        path: weights file (``.pt``, ``.pth``, ``.onnx``, ...; the format is read from the bytes),
            or the ``X.card.json`` of gmx-format weights ``X.pt``.
        device: ``"auto"``/``None`` (``GMX_DEVICE`` or best available), ``"cpu"``, ``"cuda"``,
            ``"cuda:1"``, ``"mps"`` or a ``torch.device``; see :func:`gmx.device.select_device`.
        allow_pickle: unpickle whole-module pickles (``*_last_model.pth``) with a warning. This
            runs code stored in the file: only for files you trust.

    Returns:
        The model in eval mode on the device, its card (from ``X.card.json`` when present, else
        defaults for the detected format) and the fingerprint of its weights.

    Raises:
        ModelLoadError: missing, empty, truncated or non-model files, pickles without
            ``allow_pickle``, unknown layouts (the message lists the first unexpected keys),
            weights that do not fit (shapes), cards that contradict the weights.
        ValueError: an unknown or unavailable device.
    """
    path = Path(path)
    if path.name.endswith(CARD_SUFFIX):
        path = path.with_name(path.name[: -len(CARD_SUFFIX)] + ".pt")
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    torch_device = select_device(str(device) if isinstance(device, torch.device) else device)
    data = path.read_bytes()
    if not data:
        raise ModelLoadError(f"{path.name} is empty")
    card_file = card_path_for(path)
    card, expected_fingerprint = _read_card(card_file) if card_file.is_file() else (None, None)
    sha = _sha256(data)
    layout, model, fields = _read_weights(data, path, card, allow_pickle)
    del data
    if card is None:
        card = default_card(
            name=path.stem,
            **fields,
            sha256=sha,
            source_format=layout,
            notes=f"read from {path.name} ({layout}) with default preprocessing for the architecture",
        )
    _check_card(card, model)
    model.eval()
    fingerprint = weights_fingerprint(model)
    if expected_fingerprint is not None and expected_fingerprint != fingerprint:
        raise ModelLoadError(
            f"{path.name} does not hold the weights its card {card_file.name} was written for "
            f"(fingerprint {fingerprint[:12]}... != {str(expected_fingerprint)[:12]}...)"
        )
    model.to(torch_device)
    logger.info("loaded %s (%s, %s) on %s", path.name, layout, card.architecture, torch_device)
    return LoadedModel(model=model, card=card, fingerprint=fingerprint)


def _read_weights(
    data: bytes, path: Path, card: ModelCard | None, allow_pickle: bool
) -> tuple[str, GestaltModel, dict[str, Any]]:
    """``(layout, model, default card fields)`` of a weights file's bytes.

    Files are untrusted input: an error the readers did not anticipate (a tensor of the wrong rank
    somewhere) still ends as a :class:`ModelLoadError`, with the original exception chained.
    """
    try:
        if data.startswith(_ZIP_MAGIC) or data.startswith(_PICKLE_MAGIC):
            sd = _as_state_dict(_torch_load(data, path, allow_pickle), path)
            layout = detect_layout(sd)
            model, fields = _from_layout(sd, layout, card, path)
            return layout, model, fields
        weights = read_onnx(_parse_onnx(data, path))
        return FORMAT_ONNX, _iresnet_model(weights, path.name), _iresnet_fields(weights)
    except ModelLoadError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        logger.debug("reading %s failed", path, exc_info=True)
        raise ModelLoadError(
            f"{path.name} is not a model gmx can read: its tensors do not have the shapes of a "
            "supported network (see docs/models.md for the supported formats)."
        ) from exc


def _parse_onnx(data: bytes, path: Path) -> object:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"{path.name} is neither a torch checkpoint nor an ONNX model (or it is truncated)"
        ) from exc
    if proto.ir_version < 3 or not proto.graph.node:
        raise ModelLoadError(
            f"{path.name} is neither a torch checkpoint nor an ONNX model (or it is truncated)"
        )
    return proto


def save_model(model: LoadedModel | GestaltModel, card: ModelCard | None, path: str | Path) -> Path:
    """Write the gmx format: ``X.pt`` (plain state_dict, float32) and ``X.card.json``.

    Both files are written atomically (temporary file, then rename). The card file also holds the
    weights' fingerprint, checked by :func:`load_model`.

    Args:
        model: a loaded model or a bare :class:`GestaltModel`.
        card: the card to write; ``None`` uses ``model.card`` (only for a :class:`LoadedModel`).
        path: weights path, must end with ``.pt``.

    Returns:
        The weights path.

    Raises:
        ValueError: no card, a path not ending in ``.pt``, or a card that contradicts the model.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"gmx weights must be saved as a .pt file, got {path}")
    module = model.model if isinstance(model, LoadedModel) else model
    if card is None:
        if not isinstance(model, LoadedModel):
            raise ValueError("save_model needs a card for a bare GestaltModel")
        card = model.card
    if not isinstance(module, GestaltModel):
        raise ValueError(f"expected a LoadedModel or GestaltModel, got {type(model).__name__}")
    try:
        _check_card(card, module)
    except ModelLoadError as exc:
        raise ValueError(str(exc)) from exc
    state = {
        k: (v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu())
        for k, v in module.state_dict().items()
    }
    fingerprint = weights_fingerprint(module)
    card_data = dataclasses.asdict(card)
    card_data[FINGERPRINT_KEY] = fingerprint
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    atomic_write_bytes(
        card_path_for(path), (json.dumps(card_data, indent=2, ensure_ascii=False) + "\n").encode()
    )
    return path


__all__ = [
    "CARD_SUFFIX",
    "FORMAT_ARC",
    "FORMAT_GM",
    "FORMAT_GMX",
    "FORMAT_INSIGHTFACE",
    "FORMAT_ONNX",
    "UnsafePickleWarning",
    "card_path_for",
    "load_model",
    "save_model",
]
