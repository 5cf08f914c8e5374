"""ServeSettings, the [serve] config table and the `gmx serve` command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gmx.cli import main
from gmx.config import load_config
from gmx.errors import ConfigError
from gmx.serve.settings import TOKEN_ENV, ServeSettings, is_loopback

TOKEN = "another-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("gmx.example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_beyond_loopback_needs_a_token() -> None:
    ServeSettings().check_exposure()
    with pytest.raises(ConfigError, match="without an access token"):
        ServeSettings(host="0.0.0.0").check_exposure()
    ServeSettings(host="0.0.0.0", token=TOKEN).check_exposure()
    with pytest.raises(ConfigError, match="at least 16"):
        ServeSettings(token="short")


def test_settings_from_config_file_env_and_overrides(tmp_path: Path) -> None:
    toml = tmp_path / "gmx.toml"
    toml.write_text(
        '[serve]\nhost = "0.0.0.0"\nport = 9001\nmax_body_bytes = 1000\nmax_pixels = 5000\n'
        "timeout_s = 7\nbatching = false\n"
    )
    cfg = load_config({"GMX_CONFIG": str(toml)})
    s = ServeSettings.from_config(cfg, environ={})
    assert (s.host, s.port, s.max_body_bytes, s.max_pixels, s.timeout_s, s.batching) == (
        "0.0.0.0",
        9001,
        1000,
        5000,
        7,
        False,
    )
    assert s.token is None
    s = ServeSettings.from_config(cfg, environ={TOKEN_ENV: TOKEN}, port=9002, host=None)
    assert (s.token, s.port, s.host) == (TOKEN, 9002, "0.0.0.0")
    s = ServeSettings.from_config(cfg, environ={TOKEN_ENV: TOKEN}, token="x" * 20)
    assert s.token == "x" * 20  # the command line wins


def test_config_rejects_bad_serve_values(tmp_path: Path) -> None:
    toml = tmp_path / "gmx.toml"
    toml.write_text('[serve]\nhots = "0.0.0.0"\n')
    with pytest.raises(ConfigError, match="hots"):
        load_config({"GMX_CONFIG": str(toml)})
    toml.write_text("[serve]\nmax_body_bytes = -3\n")
    with pytest.raises(ConfigError, match="max_body_bytes"):
        load_config({"GMX_CONFIG": str(toml)})


def test_cli_refuses_open_address_without_token(monkeypatch, caplog) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    t0 = time.perf_counter()
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert time.perf_counter() - t0 < 10  # refused before any model loads
    assert "without an access token" in caplog.text


@pytest.mark.slow
def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    """`gmx serve` in its own process, on a free port, with a token from the environment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        TOKEN_ENV: TOKEN,
        "PYTHONPATH": str(ROOT),
        "GMX_THREADS": "1",
    }
    env.pop("GMX_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gmx.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/status", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "gmx serve did not start"
                time.sleep(0.25)
        assert r.status_code == 401
        ok = httpx.get(
            f"http://127.0.0.1:{port}/status", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert ok.json()["status"] == "running"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    # uvicorn shuts down cleanly, then re-raises SIGTERM (exit status -15)
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out
    assert "Traceback" not in out
