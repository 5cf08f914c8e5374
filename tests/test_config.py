from __future__ import annotations

from pathlib import Path

import pytest

from gmx.config import DEMO_GALLERY, DEMO_MODEL, GmxConfig, load_config


def test_default_is_demo():
    cfg = load_config({})
    assert cfg.is_demo
    assert cfg.model_paths == (DEMO_MODEL,) and cfg.gallery_path == DEMO_GALLERY


def test_toml_config_paths_are_relative_to_the_file(tmp_path: Path):
    (tmp_path / "gmx.toml").write_text(
        '[models]\npaths = ["a.pt", "b.onnx"]\nflip = false\n'
        '[gallery]\npath = "g.sqlite"\nphotos_visible = false\n[runtime]\ndevice = "cpu"\n'
    )
    cfg = load_config({"GMX_CONFIG": str(tmp_path / "gmx.toml")})
    assert cfg.model_paths == (tmp_path / "a.pt", tmp_path / "b.onnx")
    assert cfg.gallery_path == tmp_path / "g.sqlite"
    assert cfg.flip is False and cfg.grey is True
    assert cfg.photos_visible is False and cfg.device == "cpu"
    assert not cfg.is_demo


def test_env_paths_override(tmp_path: Path):
    cfg = load_config(
        {"GMX_MODELS": f"{tmp_path}/x.pt:{tmp_path}/y.pt", "GMX_GALLERY": "/g.sqlite"}
    )
    assert cfg.model_paths == (tmp_path / "x.pt", tmp_path / "y.pt")
    assert cfg.gallery_path == Path("/g.sqlite")


def test_missing_or_bad_config_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config({"GMX_CONFIG": str(tmp_path / "nope.toml")})
    (tmp_path / "bad.toml").write_text("[models\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config({"GMX_CONFIG": str(tmp_path / "bad.toml")})


def test_with_overrides_converts_paths():
    cfg = GmxConfig().with_overrides(model_paths=["m.pt"], gallery_path="g.sqlite")
    assert cfg.model_paths == (Path("m.pt"),) and cfg.gallery_path == Path("g.sqlite")


def test_command_line_overrides_the_environment(tmp_path: Path):
    import argparse

    from gmx.config import from_cli_args

    env = {"GMX_MODELS": str(tmp_path / "env.pt"), "GMX_DEVICE": "cuda"}
    args = argparse.Namespace(
        models=[tmp_path / "cli.pt"], gallery=None, no_grey=True, device="cpu"
    )
    cfg = from_cli_args(args, env)
    assert cfg.model_paths == (tmp_path / "cli.pt",) and cfg.source == "command line"
    assert cfg.device == "cpu" and cfg.grey is False and cfg.flip is True
    untouched = from_cli_args(argparse.Namespace(), env)
    assert untouched == load_config(env)
