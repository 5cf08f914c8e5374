"""``gmx app``: the configuration is checked before Streamlit starts; a shared app without a
sign-in is refused with status 2 and starts nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import gmx
from gmx import app_cli
from gmx.app_cli import (
    APP_SCRIPT,
    LaunchRefused,
    flag_value,
    plan_launch,
    streamlit_address,
    streamlit_files,
)
from gmx.cli import main
from tests.shared.helpers import password_signin, write_shared_config

ROOT = Path(gmx.__file__).resolve().parents[1]


@pytest.fixture()
def launched(monkeypatch) -> list[app_cli.Launch]:
    """Every launch ``gmx app`` would exec (nothing is started)."""
    calls: list[app_cli.Launch] = []
    monkeypatch.setattr(app_cli, "exec_streamlit", calls.append)
    monkeypatch.delenv("GMX_CONFIG", raising=False)
    monkeypatch.delenv(app_cli.ADDRESS_ENV, raising=False)
    return calls


def _oidc(files, extra: str = "") -> None:
    text = files.config.read_text()
    start, end = text.index("[signin]"), text.index("[model_sets.tiny]")
    files.config.write_text(text[:start] + f'[signin]\nmethod = "oidc"\n{extra}' + text[end:])


@pytest.mark.parametrize(
    ("signin", "enabled", "streamlit_args", "needle"),
    [
        (None, True, [], "needs a sign-in, and none is configured: shared mode is on"),
        (None, False, ["--", "--server.address", "0.0.0.0"], "server.address = 0.0.0.0"),
        (None, False, ["--", "--server.address=::"], "server.address = ::"),
        ('[signin]\nmethod = "password"\n', True, [], "lists no users"),
    ],
)
def test_shared_app_without_a_sign_in_is_refused_before_start(
    tmp_path, launched, caplog, signin, enabled, streamlit_args, needle
):
    files = write_shared_config(tmp_path, signin=signin, enabled=enabled)
    code = main(["app", "--config", str(files.config), *streamlit_args])
    assert code == 2 and not launched
    assert needle in caplog.text and "the app was not started" in caplog.text


def test_address_from_the_environment_makes_the_app_shared(tmp_path, launched, caplog, monkeypatch):
    files = write_shared_config(tmp_path, signin=None, enabled=False)
    assert main(["app", "--config", str(files.config)]) == 0  # localhost (app's config.toml)
    (launch,) = launched
    assert not launch.shared and launch.address == "localhost"
    monkeypatch.setenv(app_cli.ADDRESS_ENV, "0.0.0.0")
    assert main(["app", "--config", str(files.config)]) == 2 and len(launched) == 1
    assert "server.address = 0.0.0.0" in caplog.text


def test_without_a_configuration_file_beyond_localhost_is_refused(launched, caplog):
    assert main(["app", "--", "--server.address", "0.0.0.0"]) == 2 and not launched
    assert "a configuration file (GMX_CONFIG)" in caplog.text  # not "to no configuration file"


def test_oidc_without_identity_provider_is_refused(tmp_path, launched, caplog, monkeypatch):
    files = write_shared_config(tmp_path, signin=password_signin())
    _oidc(files)
    monkeypatch.setattr(app_cli, "authlib_installed", lambda: True)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.streamlit/secrets.toml
    monkeypatch.chdir(tmp_path)
    assert main(["app", "--config", str(files.config)]) == 2 and not launched
    assert "[auth] section of .streamlit/secrets.toml" in caplog.text


def test_oidc_with_secrets_and_authlib_starts(tmp_path, launched, monkeypatch):
    files = write_shared_config(tmp_path, signin=password_signin())
    _oidc(files, 'provider = "hospital"\n')
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text('[auth]\nredirect_uri = "x"\n[auth.other]\nclient_id = "a"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(app_cli, "authlib_installed", lambda: True)
    with pytest.raises(LaunchRefused, match=r"no \[auth.hospital\] section"):
        plan_launch([], {"GMX_CONFIG": str(files.config)})
    secrets.write_text('[auth]\nredirect_uri = "x"\n[auth.hospital]\nclient_id = "a"\n')
    assert plan_launch([], {"GMX_CONFIG": str(files.config)}).shared
    monkeypatch.setattr(app_cli, "authlib_installed", lambda: False)
    with pytest.raises(LaunchRefused, match="needs Authlib"):
        plan_launch([], {"GMX_CONFIG": str(files.config)})


def test_shared_app_with_passwords_starts_on_the_checked_address(tmp_path, launched, monkeypatch):
    files = write_shared_config(tmp_path, signin=password_signin(), enabled=False)
    monkeypatch.chdir(tmp_path)
    args = [
        "app",
        "--config",
        "gmx.toml",
        "--",
        "--server.address",
        "0.0.0.0",
        "--server.port",
        "1",
    ]
    assert main(args) == 0
    (launch,) = launched
    assert launch.shared and launch.address == "0.0.0.0"
    assert launch.argv[:5] == (sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT))
    assert launch.argv[5:] == ("--server.address", "0.0.0.0", "--server.port", "1")
    assert launch.env["GMX_CONFIG"] == str(files.config)  # made absolute
    assert "sign-in password" in launch.summary and str(files.audit) in launch.summary


def test_address_from_a_config_file_is_passed_to_streamlit(tmp_path, launched, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["app"]) == 0
    (launch,) = launched
    # app.py's .streamlit/config.toml says localhost: passed explicitly, so Streamlit cannot
    # listen anywhere else than where the check assumed
    assert launch.argv[5:] == ("--server.address", "localhost") and not launch.shared
    assert "GMX_CONFIG" not in launch.env


def test_a_bad_configuration_is_refused_before_start(tmp_path, launched, caplog):
    bad = tmp_path / "gmx.toml"
    bad.write_text("[shared]\nenabeld = true\n")
    assert main(["app", "--config", str(bad)]) == 2 and not launched
    assert "enabeld" in caplog.text
    assert main(["app", "--config", str(tmp_path / "missing.toml")]) == 2
    assert not launched


def test_flag_value_forms():
    assert flag_value(["--server.address", "a"], "--server.address") == "a"
    assert flag_value(["--server.address=b", "--x", "1"], "--server.address") == "b"
    assert flag_value(["--server.address=b", "--server.address", "c"], "--server.address") == "c"
    assert flag_value(["--server.addressx=b", "--server.address"], "--server.address") is None


# Streamlit's own command line up to the point where its configuration is loaded (the environment
# variable becomes a flag in its click options, then the files are read), then the address it has.
_STREAMLIT_SAYS = (
    "import json, sys\n"
    "from streamlit import config\n"
    "from streamlit.web import cli\n"
    "def stop():\n"
    "    print(json.dumps(config.get_option('server.address')))\n"
    "    raise SystemExit(0)\n"
    "cli.check_credentials = stop\n"
    "cli.main(['run', *sys.argv[1:]], prog_name='streamlit')\n"
)


@pytest.mark.parametrize(
    ("home", "cwd", "script", "env", "flag"),
    [
        (None, None, None, None, None),
        ("10.0.0.1", None, None, None, None),
        ("10.0.0.1", "10.0.0.2", None, None, None),
        ("10.0.0.1", "10.0.0.2", "10.0.0.3", None, None),
        (None, "10.0.0.2", None, "10.0.0.4", None),
        ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"),
    ],
)
def test_address_is_resolved_as_streamlit_resolves_it(tmp_path, home, cwd, script, env, flag):
    """The launcher's reading of Streamlit's files, variable and flag, against Streamlit's own."""
    folders = {"home": tmp_path / "home", "cwd": tmp_path / "cwd", "script": tmp_path / "app"}
    for name, address in (("home", home), ("cwd", cwd), ("script", script)):
        folders[name].mkdir()
        if address is not None:
            (folders[name] / ".streamlit").mkdir()
            config = f'[server]\naddress = "{address}"\n'
            (folders[name] / ".streamlit" / "config.toml").write_text(config)
    app = folders["script"] / "app.py"
    app.write_text("")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    environ["HOME"] = str(folders["home"])
    if env is not None:
        environ[app_cli.ADDRESS_ENV] = env
    args = ["--server.address", flag] if flag is not None else []
    said = subprocess.run(
        [sys.executable, "-c", _STREAMLIT_SAYS, *args, str(app)],
        cwd=folders["cwd"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert said.returncode == 0, said.stderr
    files = streamlit_files("config.toml", script=app, cwd=folders["cwd"], home=folders["home"])
    assert streamlit_address(args, environ, files) == json.loads(said.stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gmx_app(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env |= {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("GMX_CONFIG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "gmx.cli", "app", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_gmx_app_refuses_in_a_real_process(tmp_path):
    files = write_shared_config(tmp_path, signin=None)
    proc = _gmx_app(tmp_path, "--config", str(files.config))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "the app was not started" in err and "needs a sign-in" in err
    assert "Streamlit" not in err and "Local URL" not in err


@pytest.mark.slow
def test_gmx_app_starts_streamlit_in_a_real_process(tmp_path):
    """The launcher execs Streamlit on the checked address; its log still reaches stderr."""
    port = _free_port()
    proc = _gmx_app(tmp_path, "--", "--server.port", str(port), "--server.headless", "true")
    try:
        deadline = time.monotonic() + 120
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                healthy = (
                    httpx.get(f"http://localhost:{port}/_stcore/health", timeout=2).text == "ok"
                )
            except httpx.HTTPError:
                healthy = False
            if healthy:
                break
            time.sleep(0.5)
        assert healthy, proc.poll()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert "gmx app: one-user mode on localhost" in err
    assert f"localhost:{port}" in out + err  # Streamlit's own start-up lines
