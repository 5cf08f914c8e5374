"""gmx format round trip and the refusals of load_model."""

from __future__ import annotations

import dataclasses
import json
import pickle
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from gmx.encode import (
    GestaltModel,
    ModelCard,
    UnsafePickleWarning,
    card_path_for,
    iresnet,
    load_model,
    save_model,
)
from gmx.errors import ModelLoadError

from ._encode_upstream import ArcCheckpoint, save_bytes

# ---------------------------------------------------------------------------------------- gmx format


def test_gmx_round_trip(arc_ckpt: ArcCheckpoint, tmp_path: Path, faces: torch.Tensor) -> None:
    loaded = load_model(arc_ckpt.state_dict_path, device="cpu")
    card = dataclasses.replace(
        loaded.card,
        name="gm-arc-small",
        classes=tuple(f"OMIM:{100000 + i}" for i in range(5)),
        version="1.0.3-test",
        clinical_use_statement="Research use only.",
    )
    out = save_model(loaded, card, tmp_path / "models" / "small.pt")
    assert out == tmp_path / "models" / "small.pt"
    assert card_path_for(out).name == "small.card.json"
    sd = torch.load(out, weights_only=True)
    assert all(k.startswith(("backbone.", "classifier.")) for k in sd)
    again = load_model(out, device="cpu")
    assert again.card == card
    assert again.fingerprint == loaded.fingerprint
    via_card = load_model(card_path_for(out), device="cpu")
    assert via_card.fingerprint == loaded.fingerprint
    with torch.no_grad():
        assert torch.equal(again.model.embed(faces), loaded.model.embed(faces))
        assert torch.equal(again.model.logits(faces), loaded.model.logits(faces))


def test_gmx_bare_module_needs_a_card(tmp_path: Path) -> None:
    model = GestaltModel(iresnet((1, 1, 1, 1), (4, 4, 4, 4), 8))
    with pytest.raises(ValueError, match="needs a card"):
        save_model(model, None, tmp_path / "m.pt")
    card = ModelCard(name="tiny", architecture="iresnet[1,1,1,1]x[4,4,4,4]", embedding_dim=8)
    with pytest.raises(ValueError, match=r"\.pt"):
        save_model(model, card, tmp_path / "m.pth")
    wrong = dataclasses.replace(card, architecture="iresnet50", layers=None, widths=None)
    with pytest.raises(ValueError, match="iresnet50"):
        save_model(model, wrong, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="classes"):
        save_model(model, dataclasses.replace(card, classes=("a", "b")), tmp_path / "m.pt")
    save_model(model, card, tmp_path / "m.pt")
    assert load_model(tmp_path / "m.pt").card == card


def test_gmx_weights_without_card_refused(tmp_path: Path) -> None:
    model = GestaltModel(iresnet((1, 1, 1, 1), (4, 4, 4, 4), 8))
    torch.save(model.state_dict(), tmp_path / "orphan.pt")
    with pytest.raises(ModelLoadError, match=r"orphan\.card\.json"):
        load_model(tmp_path / "orphan.pt")


def test_gmx_card_that_does_not_match_weights_refused(tmp_path: Path) -> None:
    model = GestaltModel(iresnet((1, 1, 1, 1), (4, 4, 4, 4), 8))
    card = ModelCard(name="tiny", architecture="iresnet[1,1,1,1]x[4,4,4,4]", embedding_dim=8)
    path = save_model(model, card, tmp_path / "m.pt")
    # Other weights of the same shape: the stored fingerprint catches the swap.
    other = GestaltModel(iresnet((1, 1, 1, 1), (4, 4, 4, 4), 8))
    torch.save(other.state_dict(), path)
    with pytest.raises(ModelLoadError, match="fingerprint"):
        load_model(path)
    # A card edited to another architecture.
    data = json.loads(card_path_for(path).read_text())
    data["architecture"] = "iresnet[1,1,2,1]x[4,4,4,4]"
    data["layers"] = [1, 1, 2, 1]
    card_path_for(path).write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_model(path)
    card_path_for(path).write_text('{"name": "x", "architecture": "resnet9"}')
    with pytest.raises(ModelLoadError, match="resnet9"):
        load_model(path)
    card_path_for(path).write_text('{"name": "x", "architecture": "iresnet50", "colour": "RGB"}')
    with pytest.raises(ModelLoadError, match="colour"):
        load_model(path)


def test_sidecar_card_applies_to_foreign_formats(arc_ckpt: ArcCheckpoint, tmp_path: Path) -> None:
    target = tmp_path / "arc_e1.pt"
    target.write_bytes(arc_ckpt.state_dict_path.read_bytes())
    card = ModelCard(
        name="m0",
        architecture="iresnet[2,1,3,1]x[8,16,24,32]",
        embedding_dim=16,
        colour_order="BGR",
        classes=tuple("abcde"),
        source_format="gestaltmatcher-arc",
    )
    card_path_for(target).write_text(card.to_json())
    loaded = load_model(target)
    assert loaded.card == card
    card_path_for(target).write_text(dataclasses.replace(card, classes=("a",)).to_json())
    with pytest.raises(ModelLoadError, match="classes"):
        load_model(target)


# ------------------------------------------------------------------------------------------ pickles


def test_whole_module_pickle_refused_with_conversion_snippet(
    arc_ckpt: ArcCheckpoint, tmp_path: Path
) -> None:
    path = tmp_path / "s1_glint360k_r50_512d_gmdb__v1.0.3_bs64_size112_channels3_last_model.pth"
    torch.save(arc_ckpt.replica, path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    message = str(info.value)
    assert "not a plain state_dict" in message
    assert "torch.save(model.state_dict()" in message
    assert "allow_pickle=True" in message


def test_allow_pickle_warns_and_loads(
    arc_ckpt: ArcCheckpoint, tmp_path: Path, faces: torch.Tensor
) -> None:
    path = tmp_path / "last_model.pth"
    torch.save(arc_ckpt.replica, path)
    with pytest.warns(UnsafePickleWarning, match="allow_pickle"):
        loaded = load_model(path, device="cpu", allow_pickle=True)
    assert loaded.card.source_format == "gestaltmatcher-arc"
    with torch.no_grad():
        assert torch.allclose(loaded.model.embed(faces), arc_ckpt.replica(faces)[1], atol=1e-4)


def test_pickle_of_missing_code_explains(tmp_path: Path) -> None:
    module = types.ModuleType("gmx_test_vanishing_module")

    class Vanishing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

    Vanishing.__module__ = module.__name__
    Vanishing.__qualname__ = "Vanishing"
    module.Vanishing = Vanishing  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        torch.save(Vanishing(), tmp_path / "v.pth")
    finally:
        del sys.modules[module.__name__]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafePickleWarning)
        with pytest.raises(ModelLoadError, match="needs the code"):
            load_model(tmp_path / "v.pth", allow_pickle=True)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_plain_pickle_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    with pytest.raises(ModelLoadError, match="pickled Python object"):
        load_model(path)


# ------------------------------------------------------------------------------------------ garbage


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", "empty"),
        (b"hello, this is a text file\n", "neither a torch checkpoint nor an ONNX"),
        (bytes(range(256)) * 4, "neither a torch checkpoint nor an ONNX"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "neither a torch checkpoint nor an ONNX"),
    ],
)
def test_non_model_files_refused(tmp_path: Path, content: bytes, pattern: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=pattern):
        load_model(path)


def test_missing_file_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path)


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_checkpoint_refused(
    arc_ckpt: ArcCheckpoint, tmp_path: Path, legacy: bool
) -> None:
    sd = torch.load(arc_ckpt.state_dict_path, weights_only=True)
    full = tmp_path / "full.pt"
    torch.save(sd, full, _use_new_zipfile_serialization=not legacy)
    data = full.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        load_model(cut)


def test_truncated_onnx_refused(arc_ckpt: ArcCheckpoint, tmp_path: Path) -> None:
    data = arc_ckpt.onnx_path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelLoadError):
        load_model(cut)


def test_unknown_state_dict_layout_lists_keys(tmp_path: Path) -> None:
    sd = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).state_dict()
    path = tmp_path / "mlp.pt"
    path.write_bytes(save_bytes(sd))
    with pytest.raises(ModelLoadError, match=r"unknown state_dict layout.*'0\.weight'"):
        load_model(path)


def test_non_tensor_checkpoint_refused(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(ModelLoadError, match="not a state_dict"):
        load_model(path)
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ModelLoadError, match="list"):
        load_model(path)


def test_wrapped_and_dataparallel_state_dicts_load(
    arc_ckpt: ArcCheckpoint, tmp_path: Path, faces: torch.Tensor
) -> None:
    sd = torch.load(arc_ckpt.state_dict_path, weights_only=True)
    wrapped = {"epoch": 7, "state_dict": {f"module.{k}": v for k, v in sd.items()}}
    torch.save(wrapped, tmp_path / "wrapped.pt")
    loaded = load_model(tmp_path / "wrapped.pt", device="cpu")
    with torch.no_grad():
        assert torch.allclose(loaded.model.embed(faces), arc_ckpt.replica(faces)[1], atol=1e-4)
