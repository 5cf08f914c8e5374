"""``gmx app``: start the Streamlit app, after checking its configuration (``docs/shared.md``).

    gmx app [--config gmx.toml] [-- STREAMLIT OPTIONS]
    gmx app --config /etc/gmx/gmx.toml -- --server.address 0.0.0.0 --server.port 8501

Before Streamlit starts, the launcher reads the gmx configuration (every key is checked, as by
every gmx command) and works out the address Streamlit will listen on, as Streamlit does: a
``--server.address`` option, else ``STREAMLIT_SERVER_ADDRESS``, else ``[server] address`` of the
``.streamlit/config.toml`` files (the one next to ``app.py`` over the current folder's over the
home folder's). When that makes the app shared (:mod:`gmx.shared`) and no sign-in
is configured, or the audit log cannot be opened, or ``st.login``'s identity provider is missing,
it says why and exits with status 2 without starting anything. Otherwise it replaces itself with
``python -m streamlit run app.py``, passing the checked address explicitly, so the server listens
exactly where the check assumed. The pages check again on every run (:func:`ui.auth.gate`): a
configuration edited while the app runs cannot open it either.

The launcher never imports Streamlit (gmx is a library without it); it reads Streamlit's TOML files
itself.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from gmx.config import CONFIG_ENV
from gmx.errors import ConfigError

log = logging.getLogger("gmx")

#: The app's entry script: ``app.py`` of the gmx checkout this package was installed from.
APP_SCRIPT = Path(__file__).resolve().parent.parent / "app.py"
#: Streamlit's option for the address it listens on, as a command-line flag and a variable.
ADDRESS_FLAG = "--server.address"
ADDRESS_ENV = "STREAMLIT_SERVER_ADDRESS"
#: Streamlit's own folder of configuration and secrets files.
STREAMLIT_FOLDER = ".streamlit"
#: The least Authlib that Streamlit's ``st.login`` accepts, and the first Streamlit with it.
AUTHLIB_MIN = (1, 3, 2)
STREAMLIT_LOGIN_MIN = (1, 42)


class LaunchRefused(ConfigError):
    """The app must not start with this configuration (the message lists every reason)."""


@dataclass(frozen=True)
class Launch:
    """How the app is started.

    Attributes:
        argv: the command (``python -m streamlit run app.py ...``).
        env: its environment (``GMX_CONFIG`` made absolute).
        address: the address checked and passed to Streamlit (``None``: every interface).
        shared: whether the app runs in shared mode.
        summary: one line for the log: mode, sign-in, audit log.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    address: str | None
    shared: bool
    summary: str


def streamlit_files(name: str, *, script: Path, cwd: Path, home: Path) -> tuple[Path, ...]:
    """Streamlit's ``name`` files (``config.toml``, ``secrets.toml``) in rising precedence: the
    home folder's, the current folder's, the script folder's (as Streamlit reads them)."""
    found: list[Path] = []
    for folder in (home, cwd, script.parent):
        path = (folder / STREAMLIT_FOLDER / name).resolve()
        if path not in found:
            found.append(path)
    return tuple(found)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Streamlit's {path} cannot be read: {exc}") from exc


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in Streamlit options (``--flag VALUE`` or ``--flag=VALUE``; the last
    one given wins, as with Streamlit's command line)."""
    value: str | None = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def streamlit_address(
    streamlit_args: Sequence[str], environ: Mapping[str, str], config_files: Sequence[Path]
) -> str | None:
    """The address Streamlit will listen on: the flag, the variable, the last config file that
    sets ``[server] address``, else ``None`` (every interface)."""
    flagged = flag_value(streamlit_args, ADDRESS_FLAG)
    if flagged is not None:
        return flagged
    if environ.get(ADDRESS_ENV):
        return environ[ADDRESS_ENV]
    address: str | None = None
    for path in config_files:
        value = _read_toml(path).get("server", {}).get("address")
        if value is not None:
            address = str(value)
    return address


def secrets_auth(secrets_files: Sequence[Path]) -> Mapping[str, Any] | None:
    """The ``[auth]`` section Streamlit's ``st.secrets`` will have (a later file's replaces an
    earlier one's, as Streamlit merges its secrets files)."""
    auth: Mapping[str, Any] | None = None
    for path in secrets_files:
        data = _read_toml(path)
        if "auth" in data:
            auth = data["auth"]
    return auth


def _version(package: str) -> tuple[int, ...] | None:
    try:
        text = metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
    numbers: list[int] = []
    for part in text.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


def authlib_installed() -> bool:
    """Whether an Authlib that ``st.login`` accepts is installed (as Streamlit checks it)."""
    found = _version("authlib")
    return found is not None and found >= AUTHLIB_MIN


def plan_launch(
    streamlit_args: Sequence[str],
    environ: Mapping[str, str],
    *,
    config: Path | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
    script: Path = APP_SCRIPT,
) -> Launch:
    """Check the configuration and return how to start the app.

    Args:
        streamlit_args: options for ``streamlit run`` (after ``--``).
        environ: the environment (``GMX_CONFIG``, ``STREAMLIT_SERVER_ADDRESS``).
        config: the gmx configuration file (``--config``; else ``GMX_CONFIG``; else none).
        cwd, home: the current and home folders (default: this process's).
        script: the app's entry script.

    Raises:
        LaunchRefused: shared mode without a sign-in (or without a usable audit log or identity
            provider): every reason, and what to do.
        ConfigError: the gmx configuration or a Streamlit file cannot be read, or ``app.py`` is
            missing.
    """
    from gmx.shared import load_shared_config, oidc_problems, startup_problems

    if not script.is_file():
        raise ConfigError(
            f"gmx app starts {script.name} of the gmx checkout, and there is none at {script}: "
            "install gmx from its checkout (pip install -e .) or run `streamlit run app.py` there."
        )
    cwd = cwd or Path.cwd()
    home = home or Path.home()
    env = dict(environ)
    if config is not None:
        env[CONFIG_ENV] = str(config)
    if env.get(CONFIG_ENV):
        env[CONFIG_ENV] = str((cwd / Path(env[CONFIG_ENV]).expanduser()).resolve())
    shared = load_shared_config(env)  # checks every key of the file
    address = streamlit_address(
        streamlit_args, env, streamlit_files("config.toml", script=script, cwd=cwd, home=home)
    )
    problems = startup_problems(shared, address)
    signin = shared.signin
    if not problems and signin is not None and shared.is_on(address):
        streamlit = _version("streamlit")
        if signin.method == "oidc" and streamlit is not None and streamlit < STREAMLIT_LOGIN_MIN:
            problems.append('[signin] method = "oidc" needs Streamlit >= 1.42 (st.login).')
        secrets = streamlit_files("secrets.toml", script=script, cwd=cwd, home=home)
        problems += oidc_problems(signin, secrets_auth(secrets), authlib=authlib_installed())
    if problems:
        listed = (
            problems if len(problems) == 1 else [f"({i}) {p}" for i, p in enumerate(problems, 1)]
        )
        raise LaunchRefused("the app was not started: " + " ".join(listed))
    argv = [sys.executable, "-m", "streamlit", "run", str(script)]
    if flag_value(streamlit_args, ADDRESS_FLAG) is None and address is not None:
        argv += [ADDRESS_FLAG, address]  # what was checked is what Streamlit uses
    argv += list(streamlit_args)
    where = address or "every interface"
    if shared.is_on(address) and signin is not None:  # startup_problems() demands a sign-in
        summary = (
            f"shared mode on {where}: sign-in {signin.method}, audit log {shared.audit_log}, "
            f"model sets {', '.join(shared.names)}"
        )
    else:
        summary = f"one-user mode on {where} ({shared.source})"
    return Launch(tuple(argv), env, address, shared.is_on(address), summary)


def exec_streamlit(launch: Launch) -> None:
    """Replace this process with Streamlit (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    # gmx's CLI may have pointed fd 2 at a filter (quiet_native_stderr): give it back; nothing to
    # give back when no real file is behind sys.stderr
    with contextlib.suppress(AttributeError, OSError, ValueError):
        os.dup2(sys.stderr.fileno(), 2)
    os.execve(launch.argv[0], list(launch.argv), dict(launch.env))


def cmd_app(args: argparse.Namespace) -> int:
    """Check the configuration; start Streamlit, or say why not (status 2)."""
    extra = list(args.streamlit_args)
    if extra and extra[0] == "--":
        extra = extra[1:]
    launch = plan_launch(extra, os.environ, config=args.config)
    log.info("gmx app: %s", launch.summary)
    exec_streamlit(launch)
    return 0  # only when exec_streamlit is replaced (tests)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``app`` to ``gmx``'s subcommands."""
    p = sub.add_parser(
        "app",
        help="start the app (Streamlit) after checking its configuration; a shared app without "
        "a sign-in is refused",
        description="Check the gmx configuration, then start the Streamlit app. Options after "
        "-- go to `streamlit run`, e.g. gmx app --config gmx.toml -- --server.address 0.0.0.0. "
        "Exits with status 2, starting nothing, when the app would be shared (listening beyond "
        "localhost, or [shared] enabled) without a sign-in (docs/shared.md).",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"the gmx configuration file (default: ${CONFIG_ENV}; none: the embedded demo)",
    )
    p.add_argument(
        "streamlit_args",
        nargs=argparse.REMAINDER,
        metavar="-- STREAMLIT OPTIONS",
        help="options for `streamlit run`, e.g. -- --server.address 0.0.0.0 --server.port 8501",
    )
    p.set_defaults(func=cmd_app)
