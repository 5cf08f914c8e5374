"""Readers of the checkpoint layouts gmx understands, each returning native modules' state_dicts.

Layouts (``source_format`` names in model cards):

* ``gestaltmatcher-arc``: GestaltMatcher-Arc fine-tuned state_dicts. Upstream converts the
  insightface Glint360K ONNX with onnx2torch 1.4.1, so keys are onnx2torch node names:
  ``base.Conv_{k}``, ``base.BatchNormalization_{k}``, ``base.initializers.onnx_initializer_{j}``,
  ``features.Gemm_0``, ``features.BatchNormalization_{n}``, ``classifier.1``.
* ``insightface-onnx``: insightface iResNet ONNX graphs (e.g. Glint360K r50/r100).
* ``insightface-state-dict``: insightface ``arcface_torch`` ``backbone.pth`` state_dicts (the
  native layout).
* ``gestaltmatcher``: original GestaltMatcher (FaceRecogNet / DeepGestalt) state_dicts.
* ``gmx``: :class:`~gmx.encode.GestaltModel` state_dicts (``backbone.*``, ``classifier.*``).

See ``docs/models.md`` for the key mapping tables.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from gmx.encode._iresnet_parts import (
    BatchNormParts,
    ConvParts,
    IResNetParts,
    group_blocks,
    parts_to_state_dict,
)
from gmx.encode.facerecognet import FaceRecogNet
from gmx.encode.iresnet import _BN_EPS
from gmx.errors import ModelLoadError

FORMAT_ARC = "gestaltmatcher-arc"
FORMAT_ONNX = "insightface-onnx"
FORMAT_INSIGHTFACE = "insightface-state-dict"
FORMAT_GM = "gestaltmatcher"
FORMAT_GMX = "gmx"

_ARC_PATTERNS = (
    re.compile(r"^base\.Conv_(?P<i>\d+)\.(?P<p>weight|bias)$"),
    re.compile(
        r"^base\.BatchNormalization_(?P<i>\d+)\."
        r"(?P<p>weight|bias|running_mean|running_var|num_batches_tracked)$"
    ),
    re.compile(r"^base\.initializers\.onnx_initializer_(?P<i>\d+)$"),
    re.compile(r"^features\.Gemm_0\.(?P<p>weight|bias)$"),
    re.compile(
        r"^features\.BatchNormalization_(?P<i>\d+)\."
        r"(?P<p>weight|bias|running_mean|running_var|num_batches_tracked)$"
    ),
    re.compile(r"^classifier\.1\.(?P<p>weight|bias)$"),
)

_ONNX_IGNORED_OPS = frozenset({"Add", "Flatten", "Reshape", "Dropout", "Constant", "Identity"})
_ONNX_KNOWN_OPS = _ONNX_IGNORED_OPS | {"Conv", "BatchNormalization", "PRelu", "Gemm", "Unsqueeze"}

#: Most nodes an ONNX graph may have (an insightface r100 export has ~600; a graph exported
#: without constant folding a few times more).
MAX_ONNX_NODES: int = 20_000

#: Largest rank and element count of a stored ONNX tensor (the fc weight of an r100 is 512 x 25088,
#: 12.8 M elements).
MAX_ONNX_TENSOR_RANK: int = 8
MAX_ONNX_TENSOR_ELEMENTS: int = 1 << 28

#: Inputs each operator needs (at least) as gmx reads it: name -> minimum count.
_ONNX_MIN_INPUTS: dict[str, int] = {
    "Conv": 2,
    "BatchNormalization": 5,
    "PRelu": 2,
    "Gemm": 3,
    "Unsqueeze": 1,
    "Identity": 1,
    "Dropout": 1,
}

#: Attributes gmx reads, with the ONNX ``AttributeProto`` type each must have.
_ONNX_ATTR_TYPES: dict[str, int] = {
    "group": 2,  # INT
    "epsilon": 1,  # FLOAT
    "alpha": 1,
    "beta": 1,
    "transA": 2,
    "transB": 2,
    "axes": 7,  # INTS
    "value": 4,  # TENSOR
}

#: Element types of stored tensors gmx accepts, with their size in bytes: float32, float16,
#: float64 (weights) and int64, int32 (Unsqueeze axes, Reshape shapes).
_ONNX_DTYPE_BYTES: dict[int, int] = {1: 4, 10: 2, 11: 8, 7: 8, 6: 4}
_ONNX_DTYPE_FIELD: dict[int, str] = {
    1: "float_data",
    10: "int32_data",
    11: "double_data",
    7: "int64_data",
    6: "int32_data",
}
_ONNX_EXTERNAL = 1  # TensorProto.EXTERNAL


@dataclass(frozen=True)
class IResNetWeights:
    """A foreign iResNet checkpoint rewritten in the native layout.

    Attributes:
        layers: blocks per stage.
        widths: channels per stage.
        embedding_dim: embedding size.
        grid: side of the last feature map (7 for 112x112 input).
        backbone: native :class:`~gmx.encode.IResNet` state_dict.
        classifier: ``{"weight", "bias"}`` of the fine-tuned classifier, or ``None``.
    """

    layers: tuple[int, ...]
    widths: tuple[int, ...]
    embedding_dim: int
    grid: int
    backbone: dict[str, torch.Tensor]
    classifier: dict[str, torch.Tensor] | None


def first_keys(keys: object, limit: int = 8) -> str:
    """The first ``limit`` keys, for error messages."""
    listed = list(keys)  # type: ignore[call-overload]
    more = f" ... (+{len(listed) - limit} more)" if len(listed) > limit else ""
    return ", ".join(repr(k) for k in listed[:limit]) + more


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Which layout a state_dict has (one of the ``FORMAT_*`` names).

    Raises:
        ModelLoadError: for an unknown layout; the message lists the first keys.
    """
    keys = list(state_dict)
    if any(k.startswith("backbone.") for k in keys):
        return FORMAT_GMX
    if any(k.startswith("base.Conv_") for k in keys):
        return FORMAT_ARC
    if "base.0.conv.weight" in state_dict and "base.13.weight" in state_dict:
        return FORMAT_GM
    if "conv1.weight" in state_dict and "layer1.0.conv1.weight" in state_dict:
        return FORMAT_INSIGHTFACE
    raise ModelLoadError(
        "unknown state_dict layout: expected GestaltMatcher-Arc (base.Conv_*), original "
        "GestaltMatcher (base.0.conv.*), insightface iResNet (conv1.*, layer1.*) or gmx "
        f"(backbone.*) keys; the file's first keys are: {first_keys(keys)}"
    )


def _grid(fc_in: int, width: int) -> int:
    grid = math.isqrt(fc_in // width) if width and fc_in % width == 0 else 0
    if grid < 1 or grid * grid * width != fc_in:
        raise ModelLoadError(
            f"fc takes {fc_in} features, not a square map of {width} channels: not an iResNet head"
        )
    return grid


def _bn_from(sd: Mapping[str, torch.Tensor], prefix: str) -> BatchNormParts:
    try:
        return BatchNormParts(
            sd[f"{prefix}.weight"],
            sd[f"{prefix}.bias"],
            sd[f"{prefix}.running_mean"],
            sd[f"{prefix}.running_var"],
        )
    except KeyError as exc:
        raise ModelLoadError(f"incomplete BatchNorm {prefix!r}: missing {exc.args[0]!r}") from exc


def _contiguous(indices: set[int], what: str) -> list[int]:
    ordered = sorted(indices)
    if ordered != list(range(len(ordered))):
        raise ModelLoadError(f"{what} indices are not 0..{len(ordered) - 1}: {ordered[:10]}...")
    return ordered


def read_arc_state_dict(sd: Mapping[str, torch.Tensor]) -> IResNetWeights:
    """Map a GestaltMatcher-Arc (onnx2torch 1.4.1 key names) state_dict onto the native iResNet.

    Graph order fixes the mapping: ``Conv_0`` is the stem, then each block's convs in order (see
    :func:`~gmx.encode._iresnet_parts.group_blocks`); ``BatchNormalization_0..n-1`` are the
    blocks' leading BNs and ``BatchNormalization_n`` the final ``bn2`` (BN after a conv is folded
    into the conv by the ONNX export); ``onnx_initializer_{j}`` in order of ``j`` are the PReLU
    slopes (stem first); ``features.Gemm_0`` is ``fc`` and ``features.BatchNormalization_{n+1}``
    is ``features``; ``classifier.1`` is the classifier (``classifier.0`` is Dropout).

    Raises:
        ModelLoadError: unexpected keys (listed), missing parts, or a structure that is not an
            insightface iResNet.
    """
    convs: dict[int, dict[str, torch.Tensor]] = {}
    bns: set[int] = set()
    inits: dict[int, torch.Tensor] = {}
    feature_bn: set[int] = set()
    unexpected: list[str] = []
    for key, value in sd.items():
        for n, pattern in enumerate(_ARC_PATTERNS):
            m = pattern.match(key)
            if m is None:
                continue
            if n == 0:
                convs.setdefault(int(m["i"]), {})[m["p"]] = value
            elif n == 1:
                bns.add(int(m["i"]))
            elif n == 2:
                inits[int(m["i"])] = value
            elif n == 4:
                feature_bn.add(int(m["i"]))
            break
        else:
            unexpected.append(key)
    if unexpected:
        raise ModelLoadError(
            f"GestaltMatcher-Arc state_dict has keys gmx does not know: {first_keys(unexpected)}"
        )
    for need in ("features.Gemm_0.weight", "features.Gemm_0.bias"):
        if need not in sd:
            raise ModelLoadError(f"GestaltMatcher-Arc state_dict lacks {need!r}")
    if len(feature_bn) != 1:
        raise ModelLoadError(
            f"expected one features.BatchNormalization_*, found {sorted(feature_bn)}"
        )
    conv_idx = _contiguous(set(convs), "base.Conv_*")
    bn_idx = _contiguous(bns, "base.BatchNormalization_*")
    (features_idx,) = feature_bn
    if features_idx != len(bn_idx):
        raise ModelLoadError(
            f"features.BatchNormalization_{features_idx} should follow the {len(bn_idx)} base "
            f"BatchNorms (index {len(bn_idx)}): the file is not an onnx2torch conversion of one graph"
        )
    if len(bn_idx) < 2 or not conv_idx:
        raise ModelLoadError("GestaltMatcher-Arc state_dict has too few convs or BatchNorms")
    conv_parts = []
    for i in conv_idx:
        if "weight" not in convs[i]:
            raise ModelLoadError(f"base.Conv_{i} has no weight")
        conv_parts.append(ConvParts(convs[i]["weight"], convs[i].get("bias")))
    base_bns = [_bn_from(sd, f"base.BatchNormalization_{i}") for i in bn_idx]
    slopes = [inits[j] for j in sorted(inits)]
    if len(slopes) != len(bn_idx):  # stem + one per block == leading BNs + final bn2
        raise ModelLoadError(
            f"expected {len(bn_idx)} PReLU slopes (base.initializers.*), found {len(slopes)} with "
            f"shapes {[tuple(s.shape) for s in slopes][:6]}; BatchNorm not folded into convs is "
            "not supported for this layout"
        )
    parts = IResNetParts(
        stem=conv_parts[0],
        stem_prelu=slopes[0],
        blocks=group_blocks(conv_parts[1:], base_bns[:-1], slopes[1:]),
        bn2=base_bns[-1],
        fc_weight=sd["features.Gemm_0.weight"],
        fc_bias=sd["features.Gemm_0.bias"],
        features=_bn_from(sd, f"features.BatchNormalization_{features_idx}"),
    )
    layers, widths, dim, backbone = parts_to_state_dict(parts)
    classifier = None
    if "classifier.1.weight" in sd:
        classifier = {"weight": sd["classifier.1.weight"], "bias": sd["classifier.1.bias"]}
    return IResNetWeights(
        layers, widths, dim, _grid(int(parts.fc_weight.shape[1]), widths[-1]), backbone, classifier
    )


def read_insightface_state_dict(sd: Mapping[str, torch.Tensor]) -> IResNetWeights:
    """Infer the structure of a native (insightface ``arcface_torch``) iResNet state_dict.

    The weights themselves are used as they are; loading checks every name and shape.

    Raises:
        ModelLoadError: if the stages, widths or head cannot be read from the keys.
    """
    layers = []
    widths = []
    for s in range(1, 5):
        blocks = {
            int(m.group(1))
            for k in sd
            if (m := re.match(rf"^layer{s}\.(\d+)\.conv1\.weight$", k)) is not None
        }
        if not blocks:
            raise ModelLoadError(f"insightface iResNet state_dict has no layer{s} blocks")
        layers.append(len(_contiguous(blocks, f"layer{s} block")))
        widths.append(int(sd[f"layer{s}.0.conv1.weight"].shape[0]))
    if "fc.weight" not in sd:
        raise ModelLoadError("insightface iResNet state_dict lacks 'fc.weight'")
    fc = sd["fc.weight"]
    return IResNetWeights(
        tuple(layers),
        tuple(widths),
        int(fc.shape[0]),
        _grid(int(fc.shape[1]), widths[-1]),
        dict(sd),
        None,
    )


def read_gm_state_dict(
    sd: Mapping[str, torch.Tensor],
) -> tuple[int, dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """Split an original GestaltMatcher state_dict into FaceRecogNet and classifier weights.

    Returns:
        ``(in_channels, backbone_state_dict, classifier_state_dict_or_None)``.

    Raises:
        ModelLoadError: with the missing or unexpected keys.
    """
    if "base.0.conv.weight" not in sd:
        raise ModelLoadError("original GestaltMatcher state_dict lacks 'base.0.conv.weight'")
    in_channels = int(sd["base.0.conv.weight"].shape[1])
    expected = set(FaceRecogNet(in_channels).state_dict())
    backbone = {k: v for k, v in sd.items() if k.startswith("base.")}
    classifier = {
        k[len("classifier.0.") :]: v for k, v in sd.items() if k.startswith("classifier.0.")
    }
    unexpected = [k for k in sd if not k.startswith(("base.", "classifier.0."))]
    unexpected += [k for k in backbone if k not in expected]
    missing = sorted(expected - set(backbone))
    if unexpected or missing:
        raise ModelLoadError(
            "not an original GestaltMatcher (FaceRecogNet) state_dict: "
            f"unexpected keys {first_keys(unexpected)}; missing keys {first_keys(missing)}"
        )
    return in_channels, backbone, (classifier or None)


def _check_onnx_tensor(proto: object, where: str) -> None:
    """Refuse a stored tensor whose type, declared shape or data size is not sane.

    The declared element count must match the data actually stored, so a tiny file cannot make
    gmx allocate a huge array.
    """
    name = getattr(proto, "name", "") or where
    if proto.data_location == _ONNX_EXTERNAL:  # type: ignore[attr-defined]
        raise ModelLoadError(
            "The ONNX file keeps its weights in external data files; re-save it with "
            "onnx.save(model, path, save_as_external_data=False) and load that file."
        )
    dtype = int(proto.data_type)  # type: ignore[attr-defined]
    if dtype not in _ONNX_DTYPE_BYTES:
        raise ModelLoadError(
            f"ONNX tensor {name!r} has element type {dtype}; gmx reads float32/float16/float64 "
            "weights and int32/int64 shapes only."
        )
    dims = [int(d) for d in proto.dims]  # type: ignore[attr-defined]
    if len(dims) > MAX_ONNX_TENSOR_RANK or any(d < 0 for d in dims):
        raise ModelLoadError(f"ONNX tensor {name!r} declares an impossible shape {dims}.")
    count = math.prod(dims)
    if count > MAX_ONNX_TENSOR_ELEMENTS:
        raise ModelLoadError(
            f"ONNX tensor {name!r} declares {count:,} elements, more than gmx accepts "
            f"({MAX_ONNX_TENSOR_ELEMENTS:,})."
        )
    raw = proto.raw_data  # type: ignore[attr-defined]
    stored = (
        len(raw) // _ONNX_DTYPE_BYTES[dtype]
        if raw
        else len(getattr(proto, _ONNX_DTYPE_FIELD[dtype]))
    )
    if (raw and len(raw) != count * _ONNX_DTYPE_BYTES[dtype]) or stored != count:
        raise ModelLoadError(
            f"ONNX tensor {name!r} declares shape {dims} ({count:,} elements) but stores "
            f"{stored:,}: the file is corrupt or was crafted."
        )


def check_onnx_graph(model: object) -> None:
    """Check that an ONNX graph is sane before any of it is interpreted.

    Checks: a bounded number of nodes; every node has the inputs and outputs gmx reads; each name
    is produced once; every input is a graph input, a stored tensor or the output of an *earlier*
    node (ONNX requires topological order, so this also rules out cycles, which would otherwise
    make alias resolution loop forever); attributes have the types gmx reads; stored tensors have
    supported types and declared shapes that match their data.

    Args:
        model: an ``onnx.ModelProto``.

    Raises:
        ModelLoadError: naming the first problem found.
    """
    graph = model.graph  # type: ignore[attr-defined]
    if len(graph.node) > MAX_ONNX_NODES:
        raise ModelLoadError(
            f"The ONNX graph has {len(graph.node):,} nodes, more than an iResNet export can have "
            f"({MAX_ONNX_NODES:,})."
        )
    for init in graph.initializer:
        _check_onnx_tensor(init, "an initializer")
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    producer: dict[str, int] = {}
    for index, node in enumerate(graph.node):
        for out in node.output:
            if not out:
                continue
            if out in producer or out in available:
                raise ModelLoadError(
                    f"ONNX node {index} ({node.op_type}) writes {out!r}, which is already defined: "
                    "not a valid graph."
                )
            producer[out] = index
    for index, node in enumerate(graph.node):
        what = f"ONNX node {index} ({node.op_type}{' ' + node.name if node.name else ''})"
        inputs = list(node.input)
        needed = _ONNX_MIN_INPUTS.get(node.op_type, 0)
        if len(inputs) < needed or any(not n for n in inputs[:needed]):
            raise ModelLoadError(f"{what} has {len(inputs)} inputs; it needs {needed}.")
        if not node.output or not node.output[0]:
            raise ModelLoadError(f"{what} has no output.")
        for name in inputs:
            if not name or name in available:
                continue
            if name not in producer:
                raise ModelLoadError(
                    f"{what} reads {name!r}, which no node, input or stored weight provides "
                    "(a dangling input)."
                )
            raise ModelLoadError(
                f"{what} reads {name!r} before node {producer[name]} computes it: the graph "
                "is not in topological order or has a cycle."
            )
        for attr in node.attribute:
            expected = _ONNX_ATTR_TYPES.get(attr.name)
            if expected is not None and attr.type != expected:
                raise ModelLoadError(
                    f"{what} has attribute {attr.name!r} of the wrong type ({attr.type})."
                )
            if attr.name == "value":
                _check_onnx_tensor(attr.t, f"the value of {what}")
            if attr.name == "axes" and len(attr.ints) > MAX_ONNX_TENSOR_RANK:
                raise ModelLoadError(f"{what} has {len(attr.ints)} axes.")
        available.update(o for o in node.output if o)


def read_onnx(model: object) -> IResNetWeights:
    """Map an insightface iResNet ONNX graph onto the native iResNet.

    Nodes are read in graph order; BatchNorms directly after a conv (when not folded by the
    exporter) are attached to it, other BatchNorms are the blocks' leading BNs, the final ``bn2``
    and (after the Gemm) ``features``. PReLU slopes of any broadcastable shape (``C``, ``C x 1 x 1``,
    ``1 x C x 1 x 1``) are accepted.

    Args:
        model: an ``onnx.ModelProto``.

    Raises:
        ModelLoadError: for operators an iResNet does not have (listed), in-graph input
            normalisation, external tensor data, or a structure that is not an iResNet.
    """
    graph = model.graph  # type: ignore[attr-defined]
    ops = Counter(node.op_type for node in graph.node)
    foreign = sorted(set(ops) - _ONNX_KNOWN_OPS)
    if foreign:
        hint = ""
        if {"Sub", "Mul"} & set(foreign):
            hint = (
                " (Sub/Mul usually mean input normalisation inside the graph, as in MXNet exports)"
            )
        raise ModelLoadError(
            f"ONNX graph has operators an insightface iResNet does not: {foreign}{hint}"
        )
    check_onnx_graph(model)
    try:
        return _interpret_onnx(graph, ops)
    except ModelLoadError:
        raise
    except (IndexError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        # The graph passed the structural checks but its tensors do not fit together (shapes,
        # ranks): say so plainly and keep the original error chained for logs.
        raise ModelLoadError(
            "The ONNX graph is not an insightface iResNet gmx can read: its weights have shapes "
            "that do not fit together."
        ) from exc


def _interpret_onnx(graph: object, ops: Counter[str]) -> IResNetWeights:
    """The body of :func:`read_onnx`, on a graph that passed :func:`check_onnx_graph`."""
    from onnx import numpy_helper

    initializers = {init.name: init for init in graph.initializer}  # type: ignore[attr-defined]
    aliases: dict[str, str] = {}
    constants: dict[str, torch.Tensor] = {}

    def resolve(name: str) -> str:
        while name in aliases:
            name = aliases[name]
        return name

    def tensor(name: str) -> torch.Tensor:
        name = resolve(name)
        if name in constants:
            return constants[name]
        if name not in initializers:
            raise ModelLoadError(f"ONNX tensor {name!r} is computed, expected a stored weight")
        return torch.from_numpy(numpy_helper.to_array(initializers[name]).copy())

    consumers: Counter[str] = Counter()
    for node in graph.node:  # type: ignore[attr-defined]
        for name in node.input:
            consumers[name] += 1

    convs: list[dict[str, object]] = []
    conv_by_output: dict[str, int] = {}
    standalone: list[BatchNormParts] = []
    features: list[BatchNormParts] = []
    slopes: list[torch.Tensor] = []
    gemm: tuple[torch.Tensor, torch.Tensor] | None = None
    for node in graph.node:  # type: ignore[attr-defined]
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Constant":
            if "value" in attrs:
                constants[node.output[0]] = torch.from_numpy(
                    numpy_helper.to_array(attrs["value"].t).copy()
                )
        elif node.op_type == "Unsqueeze":
            # Exports without constant folding reshape PReLU slopes in the graph.
            axes = list(attrs["axes"].ints) if "axes" in attrs else tensor(node.input[1]).tolist()
            value = tensor(node.input[0])
            for axis in sorted(a % (value.ndim + len(axes)) for a in axes):
                value = value.unsqueeze(axis)
            constants[node.output[0]] = value
        elif node.op_type in ("Identity", "Dropout"):  # Dropout is the identity at inference
            aliases[node.output[0]] = node.input[0]
        elif node.op_type == "Conv":
            group = attrs["group"].i if "group" in attrs else 1
            if group != 1:
                raise ModelLoadError(f"ONNX Conv with group={group}: not an iResNet")
            bias = tensor(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            weight = tensor(node.input[1])
            if weight.ndim != 4 or (bias is not None and bias.numel() != weight.shape[0]):
                raise ModelLoadError(
                    f"ONNX Conv weight of shape {tuple(weight.shape)} (bias "
                    f"{None if bias is None else tuple(bias.shape)}): not a 2-d convolution"
                )
            conv_by_output[node.output[0]] = len(convs)
            convs.append({"weight": weight, "bias": bias, "bn": None})
        elif node.op_type == "BatchNormalization":
            eps = attrs["epsilon"].f if "epsilon" in attrs else _BN_EPS
            bn = BatchNormParts(*(tensor(n) for n in node.input[1:5]), eps=float(eps))
            sizes = {t.numel() for t in (bn.weight, bn.bias, bn.mean, bn.var)}
            if len(sizes) != 1:
                raise ModelLoadError(
                    f"ONNX BatchNormalization parameters of different sizes {sorted(sizes)}"
                )
            source = resolve(node.input[0])
            if source in conv_by_output and consumers[source] == 1 and gemm is None:
                conv = convs[conv_by_output[source]]
                if conv["bn"] is not None:
                    raise ModelLoadError("ONNX graph has two BatchNorms after one conv")
                conv["bn"] = bn
            elif gemm is None:
                standalone.append(bn)
            else:
                features.append(bn)
        elif node.op_type == "PRelu":
            slopes.append(tensor(node.input[1]))
        elif node.op_type == "Gemm":
            if gemm is not None:
                raise ModelLoadError("ONNX graph has more than one Gemm: not an iResNet head")
            alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
            beta = attrs["beta"].f if "beta" in attrs else 1.0
            trans_a = attrs["transA"].i if "transA" in attrs else 0
            trans_b = attrs["transB"].i if "transB" in attrs else 0
            if alpha != 1.0 or beta != 1.0 or trans_a:
                raise ModelLoadError("ONNX Gemm with alpha/beta != 1 or transA: not supported")
            weight = tensor(node.input[1])
            bias = tensor(node.input[2])
            if weight.ndim != 2:
                raise ModelLoadError(f"ONNX Gemm weight of shape {tuple(weight.shape)}: not 2-d")
            weight = weight if trans_b else weight.t().contiguous()
            if bias.numel() != weight.shape[0]:
                raise ModelLoadError(
                    f"ONNX Gemm bias of shape {tuple(bias.shape)} for {weight.shape[0]} outputs"
                )
            gemm = (weight, bias)
        elif node.op_type not in _ONNX_IGNORED_OPS:  # pragma: no cover - guarded above
            raise ModelLoadError(f"ONNX operator {node.op_type} is not supported")
    if gemm is None or len(features) != 1 or len(standalone) < 2 or not convs:
        raise ModelLoadError(
            f"not an insightface iResNet graph: {ops['Conv']} Conv, "
            f"{ops['BatchNormalization']} BatchNormalization, {ops['Gemm']} Gemm nodes; expected "
            "convs, a Gemm and one BatchNormalization after it"
        )
    conv_parts = [ConvParts(c["weight"], c["bias"], c["bn"]) for c in convs]  # type: ignore[arg-type]
    if len(slopes) != len(standalone):
        raise ModelLoadError(
            f"not an insightface iResNet graph: {len(slopes)} PRelu nodes but "
            f"{len(standalone)} BatchNorms outside conv+BN pairs"
        )
    parts = IResNetParts(
        stem=conv_parts[0],
        stem_prelu=slopes[0],
        blocks=group_blocks(conv_parts[1:], standalone[:-1], slopes[1:]),
        bn2=standalone[-1],
        fc_weight=gemm[0],
        fc_bias=gemm[1],
        features=features[0],
    )
    layers, widths, dim, backbone = parts_to_state_dict(parts)
    return IResNetWeights(
        layers, widths, dim, _grid(int(gemm[0].shape[1]), widths[-1]), backbone, None
    )


__all__ = [
    "FORMAT_ARC",
    "FORMAT_GM",
    "FORMAT_GMX",
    "FORMAT_INSIGHTFACE",
    "FORMAT_ONNX",
    "MAX_ONNX_NODES",
    "IResNetWeights",
    "check_onnx_graph",
    "detect_layout",
    "first_keys",
    "read_arc_state_dict",
    "read_gm_state_dict",
    "read_insightface_state_dict",
    "read_onnx",
]
