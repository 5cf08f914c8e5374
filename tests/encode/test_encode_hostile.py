"""Hostile model files: crafted ONNX graphs and model cards end in a ModelLoadError, quickly.

Every file here is built with the ``onnx`` helper API (or by editing a real export), the way an
attacker or a broken converter would produce it. Each must be refused with a ModelLoadError whose
message is a plain sentence, in bounded time, without allocating what the file merely declares.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import gmx.encode.load as load_module
from gmx.encode import GestaltModel, ModelCard, card_path_for, iresnet, load_model, save_model
from gmx.errors import ModelLoadError

from ._encode_upstream import ArcCheckpoint

#: Seconds any hostile file may take to be refused (a generous bound on a loaded 2-core box;
#: measured refusals take milliseconds).
REFUSE_WITHIN_S = 10.0


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the main thread when the block runs longer than ``seconds``."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _refused(path: Path, plain_message: Callable[[BaseException | str], str]) -> str:
    """Load ``path``; assert a ModelLoadError with a plain message in bounded time."""
    t0 = time.perf_counter()
    with _deadline(REFUSE_WITHIN_S), pytest.raises(ModelLoadError) as info:
        load_model(path, device="cpu")
    assert time.perf_counter() - t0 < REFUSE_WITHIN_S
    return plain_message(info.value)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def _graph(nodes: list, initializers: list | None = None) -> onnx.ModelProto:
    inp = helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])
    return helper.make_model(helper.make_graph(nodes, "hostile", [inp], [out], initializers or []))


def _weight(name: str, shape: tuple[int, ...]) -> TensorProto:
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def _declared_only(name: str, dims: list[int], data_type: int = TensorProto.FLOAT) -> TensorProto:
    """A tensor that declares ``dims`` but stores no data (the helper API refuses to build one)."""
    t = TensorProto()
    t.name = name
    t.data_type = data_type
    t.dims.extend(dims)
    return t


# ------------------------------------------------------------------------------- crafted graphs


def test_identity_cycle_is_refused_not_looped_forever(
    tmp_path: Path, plain_message: Callable[[BaseException | str], str]
) -> None:
    """Two Identity nodes feeding each other (the reported ~100-byte file) used to hang."""
    model = _graph(
        [
            helper.make_node("Identity", ["a"], ["b"]),
            helper.make_node("Identity", ["b"], ["a"]),
            helper.make_node("PRelu", ["data", "a"], ["out"]),
        ]
    )
    path = _save(model, tmp_path / "cycle.onnx")
    assert path.stat().st_size < 200
    assert "cycle" in _refused(path, plain_message)


def _conv_missing_weight() -> onnx.ModelProto:
    return _graph([helper.make_node("Conv", ["data"], ["out"])])


def _dangling_input() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Conv", ["data", "nowhere"], ["out"])],
    )


def _huge_declared_dims() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Conv", ["data", "w"], ["out"])],
        [_declared_only("w", [100_000, 100_000, 3, 3])],
    )


def _declared_dims_exceed_data() -> onnx.ModelProto:
    w = _weight("w", (4, 3, 3, 3))
    w.dims[0] = 400  # the data holds 4 x 3 x 3 x 3 floats
    return _graph([helper.make_node("Conv", ["data", "w"], ["out"])], [w])


def _string_initializer() -> onnx.ModelProto:
    w = helper.make_tensor("w", TensorProto.STRING, [1], [b"x"])
    return _graph([helper.make_node("Conv", ["data", "w"], ["out"])], [w])


def _wrong_rank_conv_weight() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Conv", ["data", "w"], ["out"])],
        [_weight("w", (4,))],
    )


def _wrong_attribute_type() -> onnx.ModelProto:
    const = helper.make_node("Constant", [], ["c"])
    const.attribute.append(helper.make_attribute("value", 1.5))  # a FLOAT, not a TENSOR
    return _graph([const, helper.make_node("PRelu", ["data", "c"], ["out"])])


def _output_redefines_weight() -> onnx.ModelProto:
    return _graph(
        [
            helper.make_node("Identity", ["data"], ["w"]),
            helper.make_node("Conv", ["data", "w"], ["out"]),
        ],
        [_weight("w", (4, 3, 3, 3))],
    )


def _too_many_nodes() -> onnx.ModelProto:
    names = ["data"] + [f"t{i}" for i in range(25_000)]  # > gmx.encode.formats.MAX_ONNX_NODES
    nodes = [helper.make_node("Identity", [a], [b]) for a, b in itertools.pairwise(names)]
    return _graph(nodes)


def _gemm_missing_bias() -> onnx.ModelProto:
    return _graph(
        [helper.make_node("Gemm", ["data", "w"], ["out"])],
        [_weight("w", (4, 8))],
    )


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (_conv_missing_weight, "needs 2"),
        (_dangling_input, "dangling"),
        (_huge_declared_dims, "elements"),
        (_declared_dims_exceed_data, "stores"),
        (_string_initializer, "element type"),
        (_wrong_rank_conv_weight, "Conv weight"),
        (_wrong_attribute_type, "wrong type"),
        (_output_redefines_weight, "already defined"),
        (_too_many_nodes, "nodes"),
        (_gemm_missing_bias, "needs 3"),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)).strip("_"),
)
def test_crafted_graphs_are_refused_plainly(
    tmp_path: Path,
    build: Callable[[], onnx.ModelProto],
    expected: str,
    plain_message: Callable[[BaseException | str], str],
) -> None:
    path = _save(build(), tmp_path / "crafted.onnx")
    assert expected in _refused(path, plain_message)


# ---------------------------------------------------------------------- edited real exports


def _edited(arc_ckpt: ArcCheckpoint, edit: Callable[[onnx.ModelProto], None]) -> onnx.ModelProto:
    model = onnx.load(str(arc_ckpt.onnx_path))
    edit(model)
    return model


def _drop_first_conv(model: onnx.ModelProto) -> None:
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    model.graph.node.remove(conv)


def _reverse_nodes(model: onnx.ModelProto) -> None:
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))


def _bn_scale_wrong_length(model: onnx.ModelProto) -> None:
    bn = next(n for n in model.graph.node if n.op_type == "BatchNormalization")
    init = next(i for i in model.graph.initializer if i.name == bn.input[1])
    init.CopyFrom(numpy_helper.from_array(np.ones(3, np.float32), init.name))


def _prelu_slope_float64_matrix(model: onnx.ModelProto) -> None:
    prelu = next(n for n in model.graph.node if n.op_type == "PRelu")
    init = next(i for i in model.graph.initializer if i.name == prelu.input[1])
    init.CopyFrom(numpy_helper.from_array(np.ones((5, 7), np.float64), init.name))


def _gemm_weight_1d(model: onnx.ModelProto) -> None:
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    init = next(i for i in model.graph.initializer if i.name == gemm.input[1])
    init.CopyFrom(numpy_helper.from_array(np.ones(16, np.float32), init.name))


@pytest.mark.parametrize(
    "edit",
    [
        _drop_first_conv,
        _reverse_nodes,
        _bn_scale_wrong_length,
        _prelu_slope_float64_matrix,
        _gemm_weight_1d,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_edited_real_exports_are_refused_plainly(
    arc_ckpt: ArcCheckpoint,
    tmp_path: Path,
    edit: Callable[[onnx.ModelProto], None],
    plain_message: Callable[[BaseException | str], str],
) -> None:
    path = _save(_edited(arc_ckpt, edit), tmp_path / "edited.onnx")
    _refused(path, plain_message)


def test_the_unedited_export_still_loads(arc_ckpt: ArcCheckpoint) -> None:
    """The checks refuse nothing a real exporter writes."""
    loaded = load_model(arc_ckpt.onnx_path, device="cpu")
    assert loaded.card.source_format == "insightface-onnx"


@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.77, 0.999])
def test_truncated_protobuf_is_refused(
    arc_ckpt: ArcCheckpoint,
    tmp_path: Path,
    fraction: float,
    plain_message: Callable[[BaseException | str], str],
) -> None:
    data = arc_ckpt.onnx_path.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    _refused(path, plain_message)


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_are_refused(
    tmp_path: Path, seed: int, plain_message: Callable[[BaseException | str], str]
) -> None:
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 2048, np.uint8).tobytes())
    _refused(path, plain_message)


# -------------------------------------------------------------------------------- model cards


@pytest.fixture
def gmx_model(tmp_path: Path) -> Path:
    model = GestaltModel(iresnet((1, 1, 1, 1), (4, 4, 4, 4), 8))
    card = ModelCard(name="tiny", architecture="iresnet[1,1,1,1]x[4,4,4,4]", embedding_dim=8)
    return save_model(model, card, tmp_path / "m.pt")


@pytest.fixture
def no_real_build(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail if load_model builds a network from a card anywhere but on the ``meta`` device."""
    devices: list[str] = []
    real = load_module.build_backbone

    def spy(card: ModelCard) -> torch.nn.Module:
        device = str(torch.get_default_device())
        devices.append(device)
        if device != "meta":
            raise AssertionError(f"a {card.architecture} network was allocated from the card")
        return real(card)

    monkeypatch.setattr(load_module, "build_backbone", spy)
    return devices


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"architecture": "iresnet100", "layers": None, "widths": None}, "do not fit"),
        ({"input_size": 448}, "do not fit"),  # a 28x28 last map: a 16x larger fc layer
        ({"input_size": 160_000}, "input_size"),
        ({"embedding_dim": 10**9}, "embedding_dim"),
        ({"architecture": "iresnet[1,1,1,1]x[4,4,4,100000]", "widths": None}, "widths"),
        ({"mean": [float("nan")] * 3}, "finite"),
    ],
)
def test_card_is_checked_before_a_network_is_allocated(
    gmx_model: Path,
    no_real_build: list[str],
    changes: dict[str, object],
    expected: str,
    plain_message: Callable[[BaseException | str], str],
) -> None:
    card_file = card_path_for(gmx_model)
    data = json.loads(card_file.read_text())
    data.update({k: v for k, v in changes.items() if v is not None})
    for k in (k for k, v in changes.items() if v is None):
        data.pop(k)
    card_file.write_text(json.dumps(data))
    assert expected in _refused(gmx_model, plain_message)
    assert set(no_real_build) <= {"meta"}


def test_broken_checkpoint_and_card_messages_are_plain(
    gmx_model: Path, tmp_path: Path, plain_message: Callable[[BaseException | str], str]
) -> None:
    card_file = card_path_for(gmx_model)
    card = card_file.read_text()
    card_file.write_text(card[: len(card) // 2])
    assert "line" in _refused(gmx_model, plain_message)
    card_file.write_bytes(b"\xff\xfe{}")
    assert "not UTF-8" in _refused(gmx_model, plain_message)
    card_file.write_text(card)
    data = gmx_model.read_bytes()
    gmx_model.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in _refused(gmx_model, plain_message)
