"""Test fixtures: checkpoints made the way GestaltMatcher-Arc makes them, without its weights.

Procedure (docs/models.md, /work/shared/docs/gestaltmatcher.md): build an insightface-layout iResNet,
export it with ``torch.onnx.export`` in eval mode (the exporter folds each BN that follows a conv
into the conv, as in insightface's Glint360K files), convert the ONNX with onnx2torch 1.4.1, and
wrap the converted graph the way upstream's ``MyArcFace`` does: ``base`` = the graph cut after its
``Flatten`` node, ``features`` = ``Sequential(Gemm_0, BatchNormalization_{n})`` taken out of it,
``classifier`` = ``Sequential(Dropout, Linear(D, C))``. Written from the facts in upstream's
``lib/models/my_arcface.py`` (read, not copied: CC BY-NC).

onnx2torch 1.4.1 works unchanged with torch 2.14 / onnx 1.23 for this graph. The legacy TorchScript
exporter (``dynamo=False``) is used because it is the one insightface used and it folds BN; it only
emits a DeprecationWarning, which is filtered here.
"""

from __future__ import annotations

import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from onnx2torch import convert
from torch import nn

from gmx.encode.facerecognet import FaceRecogNet
from gmx.encode.iresnet import IResNet

#: Small insightface-layout iResNet used by the fast tests: 4 stages, each starting with a
#: downsampling block, so its onnx2torch key pattern is the r50/r100 pattern.
SMALL_LAYERS = (2, 1, 3, 1)
SMALL_WIDTHS = (8, 16, 24, 32)
SMALL_DIM = 16


#: Classes of the fine-tuned classifier of the small fixture.
N_CLASSES = 5


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Give every BN, PReLU and conv non-trivial values (random init leaves BN at identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 0.5)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(
                    torch.randn(m.weight.shape, generator=gen) * (0.5 / m.weight[0].numel()) ** 0.5
                )
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return module.eval()


def small_iresnet(seed: int = 0) -> IResNet:
    """Randomised small insightface-layout iResNet in eval mode."""
    torch.manual_seed(seed)
    return randomise(IResNet(SMALL_LAYERS, SMALL_WIDTHS, SMALL_DIM), seed)  # type: ignore[return-value]


def export_onnx(model: nn.Module, path: Path, *, fold_bn: bool = True) -> Path:
    """Export like insightface's ``torch2onnx.py`` (opset 11, input ``data``).

    ``fold_bn=False`` keeps every BatchNorm as its own node (TrainingMode.PRESERVE on an eval
    model), the other layout the ONNX loader must handle.
    """
    x = torch.zeros(1, 3, 112, 112)
    mode = torch.onnx.TrainingMode.EVAL if fold_bn else torch.onnx.TrainingMode.PRESERVE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            x,
            str(path),
            input_names=["data"],
            opset_version=11,
            dynamo=False,
            training=mode,
            do_constant_folding=fold_bn,
        )
    return path


class ArcReplica(nn.Module):
    """Upstream-style wrapper of an onnx2torch-converted iResNet graph.

    ``forward`` returns ``(logits, representations)`` like upstream.
    """

    def __init__(self, onnx_path: Path, num_classes: int) -> None:
        super().__init__()
        graph_module = convert(str(onnx_path))
        self.base = graph_module
        bn_names = [
            n for n, _ in graph_module.named_children() if n.startswith("BatchNormalization_")
        ]
        feature_bn = f"BatchNormalization_{len(bn_names) - 1}"
        gemm = graph_module.get_submodule("Gemm_0")
        self.features = nn.Sequential(
            OrderedDict([("Gemm_0", gemm), (feature_bn, graph_module.get_submodule(feature_bn))])
        )
        # Cut the graph after Flatten: base returns the flattened maps, features does the rest.
        graph = graph_module.graph
        nodes = list(graph.nodes)
        flatten = next(
            n for n in nodes if n.op == "call_module" and str(n.target).startswith("Flatten")
        )
        for node in reversed(nodes[nodes.index(flatten) + 1 :]):
            graph.erase_node(node)
        graph.output(flatten)
        graph.lint()
        graph_module.recompile()
        graph_module.delete_submodule("Gemm_0")
        graph_module.delete_submodule(feature_bn)
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(gemm.out_features, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        representations = self.features(self.base(x))
        return self.classifier(representations), representations


@dataclass(frozen=True)
class ArcCheckpoint:
    """A small network, its ONNX export and the upstream-style fine-tuned state_dict file."""

    net: IResNet
    onnx_path: Path
    replica: ArcReplica
    state_dict_path: Path


def arc_replica(onnx_path: Path, num_classes: int, seed: int = 1) -> ArcReplica:
    """Replica with a random classifier, in eval mode."""
    replica = ArcReplica(onnx_path, num_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        linear = replica.classifier[1]
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=gen) * 0.1)
        linear.bias.copy_(torch.randn(linear.bias.shape, generator=gen) * 0.1)
    return replica.eval()


def onnx_bytes_of(model: nn.Module, tmp: Path) -> bytes:
    """Exported ONNX bytes of a module (helper for refusal tests)."""
    path = export_onnx(model, tmp)
    return path.read_bytes()


def gm_upstream_keys(in_channels: int = 1, num_classes: int = 139) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an original GestaltMatcher checkpoint, written out from the upstream facts.

    Independent of :class:`gmx.encode.FaceRecogNet`: conv3x3 blocks (with bias) + BN at base indices
    0,1,3,4,6,7,9,10,12 with widths 32,64,64,128,96,192,128,256,160; last conv 160 -> 320 at 13;
    Linear(320 -> classes) at classifier.0.
    """
    widths = (32, 64, 64, 128, 96, 192, 128, 256, 160)
    indices = (0, 1, 3, 4, 6, 7, 9, 10, 12)
    keys: dict[str, tuple[int, ...]] = {}
    c_in = in_channels
    for i, c in zip(indices, widths, strict=True):
        keys[f"base.{i}.conv.weight"] = (c, c_in, 3, 3)
        keys[f"base.{i}.conv.bias"] = (c,)
        for p in ("weight", "bias", "running_mean", "running_var"):
            keys[f"base.{i}.norm.{p}"] = (c,)
        keys[f"base.{i}.norm.num_batches_tracked"] = ()
        c_in = c
    keys["base.13.weight"] = (320, 160, 3, 3)
    keys["base.13.bias"] = (320,)
    keys["classifier.0.weight"] = (num_classes, 320)
    keys["classifier.0.bias"] = (num_classes,)
    return keys


def gm_state_dict(seed: int = 3, num_classes: int = 7) -> dict[str, torch.Tensor]:
    """Random original-GestaltMatcher-layout state_dict (values from a randomised FaceRecogNet)."""
    net = randomise(FaceRecogNet(1), seed)
    sd = {f"{k}": v for k, v in net.state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    sd["classifier.0.weight"] = torch.randn(num_classes, 320, generator=gen) * 0.05
    sd["classifier.0.bias"] = torch.randn(num_classes, generator=gen) * 0.05
    return sd


def save_bytes(obj: object) -> bytes:
    """``torch.save`` into bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def onnx_model(path: Path) -> onnx.ModelProto:
    """Load an ONNX file."""
    return onnx.load(str(path))
