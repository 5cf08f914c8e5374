from __future__ import annotations

from pathlib import Path

import pytest

from gmx.config import DEMO_GALLERY, DEMO_MODEL, GmxConfig, load_config
from gmx.errors import ConfigError


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


def _config_file(tmp_path: Path, text: str) -> dict[str, str]:
    (tmp_path / "gmx.toml").write_text(text)
    return {"GMX_CONFIG": str(tmp_path / "gmx.toml")}


@pytest.mark.parametrize(
    ("text", "line", "key", "hint"),
    [
        (
            '[models]\npaths = ["a.pt"]\n\n[gallery]\nphotos_visible = "false"\n',
            5,
            "photos_visible",
            "true or false",
        ),
        ('[models]\nflip = "false"\n', 2, "flip", "true or false"),
        ("[models]\ngrey = 0\n", 2, "grey", "true or false"),
        ('# my models\n[models]\npaths = "x.pt"\n', 3, "paths", "a list of model files"),
        ("[models]\npaths = []\n", 2, "paths", "a list of model files"),
        ("[gallery]\npath = 3\n", 2, "path", "a gallery file"),
        ('[runtime]\ndevice = "gpu"\n', 2, "device", '"cuda:N"'),
        ('[runtime]\nprecision = "fp16"\n', 2, "precision", '"bf16"'),
        ("models = 3\n", 1, "[models]", "must be a table"),
        ("[gallery]\nphoto_visible = false\n", 2, "photo_visible", "not a known key"),
        ('[modles]\npaths = ["a.pt"]\n', 1, "[modles]", "not a known section"),
    ],
    ids=[
        "photos_visible-string",
        "flip-string",
        "grey-int",
        "paths-string",
        "paths-empty",
        "gallery-path-int",
        "device-unknown",
        "precision-unknown",
        "section-not-table",
        "key-typo",
        "section-typo",
    ],
)
def test_config_values_of_the_wrong_type_name_file_key_and_line(
    tmp_path: Path, text: str, line: int, key: str, hint: str, plain_message
) -> None:
    env = _config_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(env)
    message = plain_message(info.value)
    assert str(tmp_path / "gmx.toml") in message
    assert f"line {line}" in message and key in message and hint in message


def test_string_booleans_never_become_true(tmp_path: Path) -> None:
    """photos_visible = "false" used to be bool("false") == True: restricted photos were shown."""
    env = _config_file(tmp_path, '[gallery]\nphotos_visible = "false"\n')
    with pytest.raises(ValueError, match="photos_visible"):  # ConfigError is a ValueError
        load_config(env)
    env = _config_file(tmp_path, "[gallery]\nphotos_visible = false\n[models]\nflip = false\n")
    cfg = load_config(env)
    assert cfg.photos_visible is False and cfg.flip is False


def test_malformed_toml_names_file_and_line(tmp_path: Path, plain_message) -> None:
    env = _config_file(tmp_path, '[models]\npaths = ["a.pt"]\nflip = tru\n')
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(env)
    assert f"{tmp_path / 'gmx.toml'}, line 3" in plain_message(info.value)


def test_config_pointing_at_a_folder_or_binary_file(tmp_path: Path, plain_message) -> None:
    with pytest.raises(ConfigError, match="folder") as info:
        load_config({"GMX_CONFIG": str(tmp_path)})
    plain_message(info.value)
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_config({"GMX_CONFIG": str(tmp_path / "bin.toml")})
    plain_message(info.value)


def test_dotted_keys_are_found_for_the_line(tmp_path: Path) -> None:
    env = _config_file(tmp_path, 'models.paths = ["a.pt"]\ngallery.photos_visible = "no"\n')
    with pytest.raises(ConfigError, match=r"line 2: \[gallery\] photos_visible"):
        load_config(env)


def test_every_documented_key_is_accepted(tmp_path: Path) -> None:
    env = _config_file(
        tmp_path,
        '[models]\npaths = ["a.pt"]\nflip = true\ngrey = false\n'
        '[gallery]\npath = "g.sqlite"\nphotos_visible = true\n'
        '[runtime]\ndevice = "cuda:1"\nprecision = "bf16"\n',
    )
    cfg = load_config(env)
    assert (cfg.flip, cfg.grey, cfg.photos_visible) == (True, False, True)
    assert (cfg.device, cfg.precision) == ("cuda:1", "bf16")


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


def test_threads_from_the_file_and_the_environment(tmp_path: Path) -> None:
    assert GmxConfig().threads == 0  # automatic
    path = tmp_path / "gmx.toml"
    path.write_text("[runtime]\nthreads = 3\n")
    assert load_config({"GMX_CONFIG": str(path)}).threads == 3
    assert load_config({"GMX_CONFIG": str(path), "GMX_THREADS": "1"}).threads == 1
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(ConfigError, match="GMX_THREADS"):
            load_config({"GMX_THREADS": bad})
    for bad in ("-2", '"1"', "true", "1.5"):
        path.write_text(f"[runtime]\nthreads = {bad}\n")
        with pytest.raises(ConfigError, match="threads must be 0"):
            load_config({"GMX_CONFIG": str(path)})


def test_thread_policy_leaves_cores_to_the_rest_of_the_app() -> None:
    import torch

    from gmx.device import auto_threads, set_threads

    assert [auto_threads(c) for c in (1, 2, 3, 4, 16)] == [1, 1, 1, 2, 8]
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        assert set_threads(0) == auto_threads() == torch.get_num_threads()
        with pytest.raises(ValueError, match="threads"):
            set_threads(-1)
    finally:
        torch.set_num_threads(before)
