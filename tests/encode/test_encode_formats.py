"""Proof of compatibility: checkpoints made the upstream way load in gmx and give the same outputs."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from onnx2torch import convert
from torch import nn
from torch.nn import functional as F

from gmx.encode import IResNet, iresnet50, load_model
from gmx.encode.iresnet import IBasicBlock
from gmx.errors import ModelLoadError

from ._encode_upstream import (
    N_CLASSES,
    ArcCheckpoint,
    arc_replica,
    export_onnx,
    gm_state_dict,
    gm_upstream_keys,
    randomise,
)

TOL = 1e-4

_ARC_KEY = re.compile(
    r"^(base\.Conv_\d+\.(weight|bias)"
    r"|base\.BatchNormalization_\d+\.(weight|bias|running_mean|running_var|num_batches_tracked)"
    r"|base\.initializers\.onnx_initializer_\d+"
    r"|features\.Gemm_0\.(weight|bias)"
    r"|features\.BatchNormalization_\d+\.(weight|bias|running_mean|running_var|num_batches_tracked)"
    r"|classifier\.1\.(weight|bias))$"
)


def _n_blocks(layers: tuple[int, ...]) -> int:
    return sum(layers)


def _check_arc_keys(sd: dict[str, torch.Tensor], layers: tuple[int, ...]) -> None:
    """The documented key pattern, with counts fixed by the depth."""
    assert all(_ARC_KEY.match(k) for k in sd), [k for k in sd if not _ARC_KEY.match(k)][:5]
    n = _n_blocks(layers)
    convs = {int(m[1]) for k in sd if (m := re.match(r"base\.Conv_(\d+)\.weight", k))}
    bns = {int(m[1]) for k in sd if (m := re.match(r"base\.BatchNormalization_(\d+)\.weight", k))}
    inits = [k for k in sd if k.startswith("base.initializers.")]
    assert convs == set(range(1 + 2 * n + 4))  # stem + 2 per block + 4 downsamples
    assert bns == set(range(n + 1))  # leading bn1 of each block + final bn2
    assert len(inits) == n + 1  # PReLU slopes: stem + one per block
    assert f"features.BatchNormalization_{n + 1}.weight" in sd
    assert all(f"base.Conv_{i}.bias" in sd for i in convs)  # BN folded into every conv


def test_arc_state_dict_has_the_documented_key_pattern(arc_ckpt: ArcCheckpoint) -> None:
    sd = torch.load(arc_ckpt.state_dict_path, weights_only=True)
    _check_arc_keys(sd, arc_ckpt.net.layers_spec)
    assert sd["classifier.1.weight"].shape == (N_CLASSES, arc_ckpt.net.embedding_dim)


def test_arc_state_dict_embeddings_match_onnx2torch_graph(
    arc_ckpt: ArcCheckpoint, faces: torch.Tensor
) -> None:
    loaded = load_model(arc_ckpt.state_dict_path, device="cpu")
    with torch.no_grad():
        logits, reps = arc_ckpt.replica(faces)
        emb = loaded.model.embed(faces)
        assert torch.allclose(emb, reps, atol=TOL, rtol=0)
        assert torch.allclose(loaded.model.logits(faces), logits, atol=TOL, rtol=0)
        maps = loaded.model.backbone.forward_maps(faces)
        assert maps.shape == (3, 32, 7, 7)
        assert torch.allclose(loaded.model.backbone.head(maps), emb, atol=1e-6, rtol=0)
    card = loaded.card
    assert card.source_format == "gestaltmatcher-arc"
    assert card.architecture == "iresnet[2,1,3,1]x[8,16,24,32]"
    assert (card.embedding_dim, loaded.model.num_classes) == (16, N_CLASSES)
    assert not loaded.model.training
    # Folded BNs became conv + identity BN; the layout stays insightface's.
    assert isinstance(loaded.model.backbone, IResNet)
    assert set(loaded.model.backbone.state_dict()) == set(
        IResNet((2, 1, 3, 1), (8, 16, 24, 32), 16).state_dict()
    )


def test_arc_r100_key_pattern_and_mapping_on_a_narrow_r100(
    tmp_path: Path, faces: torch.Tensor
) -> None:
    layers = (3, 13, 30, 3)
    net = randomise(IResNet(layers, (4, 8, 8, 16), 8), seed=11)
    replica = arc_replica(export_onnx(net, tmp_path / "r100_narrow.onnx"), 3)
    sd = replica.state_dict()
    _check_arc_keys(sd, layers)
    assert "features.BatchNormalization_50.weight" in sd  # upstream's "magic value" for r100
    torch.save(sd, tmp_path / "r100_narrow_e3.pt")
    loaded = load_model(tmp_path / "r100_narrow_e3.pt", device="cpu")
    assert loaded.card.architecture == "iresnet[3,13,30,3]x[4,8,8,16]"
    with torch.no_grad():
        logits, reps = replica(faces)
        assert torch.allclose(loaded.model.embed(faces), reps, atol=TOL, rtol=0)
        assert torch.allclose(loaded.model.logits(faces), logits, atol=TOL, rtol=0)


@pytest.mark.slow
def test_arc_real_r50_layout(tmp_path: Path) -> None:
    net = randomise(iresnet50(), seed=5)
    replica = arc_replica(export_onnx(net, tmp_path / "glint360k_r50.onnx"), 204)
    sd = replica.state_dict()
    _check_arc_keys(sd, (3, 4, 14, 3))
    assert "features.BatchNormalization_25.weight" in sd  # upstream's "magic value" for r50
    assert sd["features.Gemm_0.weight"].shape == (512, 25088)
    torch.save(sd, tmp_path / "r50_e1.pt")
    loaded = load_model(tmp_path / "r50_e1.pt", device="cpu")
    assert loaded.card.architecture == "iresnet50"
    # The mapping table of docs/models.md, checked on a few rows.
    native = loaded.model.backbone.state_dict()
    for ours, theirs in [
        ("conv1.weight", "base.Conv_0.weight"),
        ("bn1.bias", "base.Conv_0.bias"),
        ("layer3.0.conv1.weight", "base.Conv_17.weight"),
        ("layer3.0.downsample.0.weight", "base.Conv_19.weight"),
        ("layer3.0.downsample.1.bias", "base.Conv_19.bias"),
        ("layer4.0.bn1.running_var", "base.BatchNormalization_21.running_var"),
        ("bn2.weight", "base.BatchNormalization_24.weight"),
        ("fc.weight", "features.Gemm_0.weight"),
        ("features.running_mean", "features.BatchNormalization_25.running_mean"),
    ]:
        assert torch.equal(native[ours], sd[theirs]), (ours, theirs)
    assert torch.equal(
        native["layer4.0.prelu.weight"], sd["base.initializers.onnx_initializer_22"].flatten()
    )
    del sd, native
    x = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        logits, reps = replica(x)
        assert torch.allclose(loaded.model.embed(x), reps, atol=TOL, rtol=0)
        assert torch.allclose(loaded.model.logits(x), logits, atol=TOL, rtol=0)


@pytest.mark.parametrize("shift", [1, 2])
def test_arc_mapping_does_not_depend_on_where_the_downsample_conv_sits(
    arc_ckpt: ArcCheckpoint, tmp_path: Path, faces: torch.Tensor, shift: int
) -> None:
    """Another topological order may put a block's 1x1 downsample conv between (shift 1) or
    before (shift 2) its 3x3 convs; torch.onnx puts it after them."""
    sd = torch.load(arc_ckpt.state_dict_path, weights_only=True)
    n_convs = len([k for k in sd if re.match(r"base\.Conv_\d+\.weight", k)])
    order = list(range(n_convs))
    for i in range(1, n_convs):
        if sd[f"base.Conv_{i}.weight"].shape[-1] == 1:
            order.insert(i - shift, order.pop(i))
    assert order != list(range(n_convs))
    renamed = {k: v for k, v in sd.items() if not k.startswith("base.Conv_")}
    for new, old in enumerate(order):
        for p in ("weight", "bias"):
            renamed[f"base.Conv_{new}.{p}"] = sd[f"base.Conv_{old}.{p}"]
    assert renamed[f"base.Conv_{3 - shift}.weight"].shape[-1] == 1
    torch.save(renamed, tmp_path / "reordered.pt")
    loaded = load_model(tmp_path / "reordered.pt", device="cpu")
    with torch.no_grad():
        assert torch.allclose(loaded.model.embed(faces), arc_ckpt.replica(faces)[1], atol=TOL)


def test_onnx_folded_matches_onnx2torch_and_source(
    arc_ckpt: ArcCheckpoint, faces: torch.Tensor
) -> None:
    loaded = load_model(arc_ckpt.onnx_path, device="cpu")
    assert loaded.card.source_format == "insightface-onnx"
    assert loaded.model.classifier is None
    graph = convert(str(arc_ckpt.onnx_path)).eval()
    with torch.no_grad():
        emb = loaded.model.embed(faces)
        assert torch.allclose(emb, graph(faces), atol=TOL, rtol=0)
        assert torch.allclose(emb, arc_ckpt.net(faces), atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="no classifier"):
        loaded.model.logits(faces)


def test_onnx_with_unfolded_batchnorm_is_exact(tmp_path: Path, faces: torch.Tensor) -> None:
    import onnx

    net = randomise(IResNet((1, 2, 1, 1), (8, 8, 16, 16), 8), seed=2)
    path = export_onnx(net, tmp_path / "unfolded.onnx", fold_bn=False)
    ops = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    assert ops["BatchNormalization"] > sum((1, 2, 1, 1)) + 2  # BN after convs kept as nodes
    loaded = load_model(path, device="cpu")
    with torch.no_grad():
        assert torch.allclose(loaded.model.embed(faces), net(faces), atol=1e-5, rtol=0)
    # Unfolded weights are the native weights: same fingerprint as the source network.
    from gmx.encode import GestaltModel, weights_fingerprint

    assert loaded.fingerprint == weights_fingerprint(GestaltModel(net))


def test_insightface_state_dict_loads(tmp_path: Path, faces: torch.Tensor) -> None:
    net = randomise(IResNet((1, 1, 2, 1), (8, 8, 16, 16), 8), seed=4)
    torch.save(net.state_dict(), tmp_path / "backbone.pth")
    loaded = load_model(tmp_path / "backbone.pth", device="cpu")
    assert loaded.card.source_format == "insightface-state-dict"
    with torch.no_grad():
        assert torch.equal(loaded.model.embed(faces), net(faces))


def _reference_facerecognet(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Functional FaceRecogNet written from the upstream facts, independent of gmx's module."""
    for i in range(13):
        if i in (2, 5, 8, 11):
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            continue
        x = F.conv2d(x, sd[f"base.{i}.conv.weight"], sd[f"base.{i}.conv.bias"], padding=1)
        x = F.batch_norm(
            x,
            sd[f"base.{i}.norm.running_mean"],
            sd[f"base.{i}.norm.running_var"],
            sd[f"base.{i}.norm.weight"],
            sd[f"base.{i}.norm.bias"],
            eps=1e-5,
        )
        x = F.relu(x)
    x = F.conv2d(x, sd["base.13.weight"], sd["base.13.bias"], padding=1)
    return F.avg_pool2d(x, 7).flatten(1)


def test_original_gestaltmatcher_state_dict(tmp_path: Path) -> None:
    sd = gm_state_dict(num_classes=7)
    expected = gm_upstream_keys(1, 7)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    torch.save(sd, tmp_path / "s101_gmdb_aug_adam_DeepGestalt_e355_ReLU_bs280.pt")
    loaded = load_model(
        tmp_path / "s101_gmdb_aug_adam_DeepGestalt_e355_ReLU_bs280.pt", device="cpu"
    )
    card = loaded.card
    assert (card.architecture, card.channels, card.input_size, card.embedding_dim) == (
        "facerecognet",
        1,
        100,
        320,
    )
    x = torch.rand(2, 1, 100, 100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = _reference_facerecognet(sd, x)
        assert torch.allclose(loaded.model.embed(x), ref, atol=1e-5, rtol=0)
        logits = ref @ sd["classifier.0.weight"].T + sd["classifier.0.bias"]
        assert torch.allclose(loaded.model.logits(x), logits, atol=1e-5, rtol=0)


def test_device_argument_uses_select_device(arc_ckpt: ArcCheckpoint) -> None:
    loaded = load_model(arc_ckpt.onnx_path, device=torch.device("cpu"))
    assert loaded.device == torch.device("cpu")
    with pytest.raises(ValueError, match="device"):
        load_model(arc_ckpt.onnx_path, device="nonsense-device")


def test_blocks_are_native_ibasicblocks(arc_ckpt: ArcCheckpoint) -> None:
    loaded = load_model(arc_ckpt.state_dict_path, device="cpu")
    blocks = [m for m in loaded.model.modules() if isinstance(m, IBasicBlock)]
    assert len(blocks) == sum(arc_ckpt.net.layers_spec)
    # Un-folded BN after a conv is the identity plus the folded bias.
    bn = blocks[0].bn2
    x = torch.randn(1, bn.num_features, 3, 3)
    with torch.no_grad():
        assert torch.allclose(bn(x), x + bn.bias.view(1, -1, 1, 1), atol=1e-6)


def test_shape_mismatch_is_refused(arc_ckpt: ArcCheckpoint, tmp_path: Path) -> None:
    sd = torch.load(arc_ckpt.state_dict_path, weights_only=True)
    sd["classifier.1.bias"] = torch.zeros(N_CLASSES + 1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(ModelLoadError, match="classifier"):
        load_model(tmp_path / "bad.pt")
    sd = torch.load(arc_ckpt.state_dict_path, weights_only=True)
    sd["features.Gemm_0.weight"] = sd["features.Gemm_0.weight"][:, :-49]
    torch.save(sd, tmp_path / "bad_gemm.pt")
    with pytest.raises(ModelLoadError, match=r"do not fit|not a square map"):
        load_model(tmp_path / "bad_gemm.pt")


def test_unexpected_arc_keys_are_listed(arc_ckpt: ArcCheckpoint, tmp_path: Path) -> None:
    sd = torch.load(arc_ckpt.state_dict_path, weights_only=True)
    sd["base.Relu_0.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "extra.pt")
    with pytest.raises(ModelLoadError, match=r"base\.Relu_0\.weight"):
        load_model(tmp_path / "extra.pt")


def test_onnx_that_is_not_an_iresnet_is_refused(tmp_path: Path) -> None:
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    plain(torch.zeros(1, 3, 112, 112))
    path = export_onnx(plain, tmp_path / "plain.onnx")
    with pytest.raises(ModelLoadError, match="Relu"):
        load_model(path)

    class Normalised(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = randomise(IResNet((1, 1, 1, 1), (4, 4, 4, 4), 4), 0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x - 127.5) * 0.0078125)

    path = export_onnx(Normalised(), tmp_path / "mxnet_like.onnx")
    with pytest.raises(ModelLoadError, match="input normalisation"):
        load_model(path)


def test_onnx_with_too_few_convs_is_refused(tmp_path: Path) -> None:
    class Stemless(nn.Module):
        """An iResNet missing its second stage's convs: conv count does not fit."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(4)
            self.prelu = nn.PReLU(4)
            self.block = IBasicBlock(4, 4, stride=16)
            self.bn2 = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4 * 49, 4)
            self.features = nn.BatchNorm1d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.bn2(self.block(self.prelu(self.bn(self.conv(x)))))
            return self.features(self.fc(torch.flatten(x, 1)))

    path = export_onnx(randomise(Stemless(), 0), tmp_path / "one_stage.onnx")
    with pytest.raises(ModelLoadError, match="stages"):
        load_model(path)


def test_onnx_conv_bias_before_bn_and_untransposed_gemm(
    tmp_path: Path, faces: torch.Tensor
) -> None:
    """Graph variants the loader claims to handle: a conv with bias followed by its own BN (bias
    moved into the BN's running mean) and a Gemm with transB=0."""
    import copy

    import onnx
    from onnx import helper, numpy_helper

    net = randomise(IResNet((1, 1, 1, 1), (8, 8, 16, 16), 8), seed=6)
    proto = onnx.load(str(export_onnx(net, tmp_path / "unfolded.onnx", fold_bn=False)))
    bias = torch.randn(8, generator=torch.Generator().manual_seed(0))
    stem = next(n for n in proto.graph.node if n.op_type == "Conv")
    proto.graph.initializer.append(numpy_helper.from_array(bias.numpy(), "stem_bias"))
    stem.input.append("stem_bias")
    gemm = next(n for n in proto.graph.node if n.op_type == "Gemm")
    weight = next(i for i in proto.graph.initializer if i.name == gemm.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight).T.copy(), weight.name))
    for attr in gemm.attribute:
        if attr.name == "transB":
            attr.CopyFrom(helper.make_attribute("transB", 0))
    onnx.save(proto, str(tmp_path / "edited.onnx"))
    loaded = load_model(tmp_path / "edited.onnx", device="cpu")
    expected = copy.deepcopy(net)
    with torch.no_grad():
        expected.bn1.running_mean -= bias
        assert torch.allclose(loaded.model.embed(faces), expected(faces), atol=1e-5, rtol=0)
        assert not torch.allclose(loaded.model.embed(faces), net(faces), atol=1e-3)
