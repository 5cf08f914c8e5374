"""Which models and gallery gmx uses: the embedded demo by default, real GestaltMatcher files on request.

Resolution order (first wins): explicit arguments, the TOML file named by ``GMX_CONFIG``, the
environment variables ``GMX_MODELS`` (paths separated by ``os.pathsep``), ``GMX_GALLERY``,
``GMX_DEVICE``, ``GMX_THREADS``, and finally the embedded demo under ``models/demo``.

Example ``gmx.toml`` for real GestaltMatcher-Arc weights and a GMDB gallery built with them::

    [models]
    paths = ["/data/gm/glint360k_r50_e10.pt", "/data/gm/glint360k_r100_e15.pt", "/data/gm/glint360k_r100.onnx"]
    flip = true
    grey = true

    [gallery]
    path = "/data/gm/gmdb_gallery.sqlite"
    photos_visible = false

    [runtime]
    device = "auto"
    threads = 0        # torch CPU threads; 0: one per two cores (gmx.device.auto_threads)

    [serve]            # `gmx serve` (docs/serve.md); every key optional
    host = "127.0.0.1" # any other address requires a token (or GMX_SERVE_TOKEN)
    max_body_bytes = 20000000

The same file configures the app on a shared server (``[shared]``, ``[signin]``,
``[model_sets.NAME]``): see :mod:`gmx.shared` and ``docs/shared.md``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gmx.errors import ConfigError

#: Root of the repository checkout (gmx is installed editable; models/ sits beside gmx/).
PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent

#: Folder of the embedded synthetic demo (model, gallery, example faces).
DEMO_DIR: Path = PROJECT_ROOT / "models" / "demo"
DEMO_MODEL: Path = DEMO_DIR / "gmx-demo-iresnet.pt"
DEMO_GALLERY: Path = DEMO_DIR / "gallery.sqlite"

CONFIG_ENV = "GMX_CONFIG"
MODELS_ENV = "GMX_MODELS"
GALLERY_ENV = "GMX_GALLERY"
THREADS_ENV = "GMX_THREADS"


@dataclass(frozen=True)
class GmxConfig:
    """Everything that selects what gmx runs on.

    Attributes:
        model_paths: checkpoint files, one per ensemble member (any format gmx.encode reads).
        gallery_path: gallery SQLite file embedded with exactly these models and TTA flags.
        flip: use mirrored test-time variants.
        grey: use grey test-time variants.
        device: ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
        precision: ``fp32`` (exact) or ``bf16`` (faster encoder passes, slightly different
            embeddings).
        threads: torch CPU threads (process-wide); ``0`` is automatic, one per two cores
            (:func:`gmx.device.auto_threads`).
        photos_visible: gallery photos may be shown (``None``: as the gallery says).
        serve: the ``[serve]`` table as written (keys of :data:`CONFIG_SCHEMA`); read it with
            :meth:`gmx.serve.ServeSettings.from_config`.
        source: where this configuration came from, for display ("embedded demo", a file path, ...).
    """

    model_paths: tuple[Path, ...] = (DEMO_MODEL,)
    gallery_path: Path = DEMO_GALLERY
    flip: bool = True
    grey: bool = True
    device: str = "auto"
    precision: str = "fp32"
    threads: int = 0
    photos_visible: bool | None = None
    serve: Mapping[str, Any] = field(default_factory=dict)
    source: str = "embedded demo"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_demo(self) -> bool:
        """True when both the models and the gallery are the embedded synthetic demo."""
        return self.model_paths == (DEMO_MODEL,) and self.gallery_path == DEMO_GALLERY

    def with_overrides(self, **changes: Any) -> GmxConfig:
        """A copy with some fields changed (paths given as strings are converted)."""
        if "model_paths" in changes:
            changes["model_paths"] = tuple(Path(p) for p in changes["model_paths"])
        if "gallery_path" in changes:
            changes["gallery_path"] = Path(changes["gallery_path"])
        return replace(self, **changes)


#: What a ``GMX_CONFIG`` file may hold: section -> key -> (kind, how to write it). Kinds: ``bool``,
#: ``path`` (a non-empty string), ``paths`` (a non-empty list of them), or a tuple of the allowed
#: strings / a compiled pattern for free strings.
_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_HOST_PATTERN = re.compile(r"[A-Za-z0-9.:\-\[\]]+")
_TOKEN_PATTERN = re.compile(r"[!-~]{16,}")  # printable ASCII without spaces, at least 16
CONFIG_SCHEMA: dict[str, dict[str, tuple[object, str]]] = {
    "models": {
        "paths": ("paths", 'a list of model files, e.g. paths = ["a.pt", "b.onnx"]'),
        "flip": ("bool", "true or false (a TOML boolean, without quotes)"),
        "grey": ("bool", "true or false (a TOML boolean, without quotes)"),
    },
    "gallery": {
        "path": ("path", 'a gallery file, e.g. path = "gallery.sqlite"'),
        "photos_visible": ("bool", "true or false (a TOML boolean, without quotes)"),
    },
    "runtime": {
        "device": (_DEVICE_PATTERN, '"auto", "cpu", "cuda", "cuda:N" or "mps"'),
        "precision": (("fp32", "bf16"), '"fp32" or "bf16"'),
        "threads": ("count", "0 (automatic) or a positive whole number, e.g. threads = 1"),
    },
    # The app on a shared server (gmx.shared, docs/shared.md).
    "shared": {
        "enabled": ("bool", "true or false (a TOML boolean, without quotes)"),
        "audit_log": ("path", 'the audit log file, e.g. audit_log = "/var/lib/gmx/audit.sqlite"'),
    },
    "signin": {
        "method": (("password", "oidc"), '"password" or "oidc"'),
        "provider": (
            re.compile(r"[A-Za-z0-9_\-]+"),
            'the name of an [auth.NAME] section of .streamlit/secrets.toml, e.g. "microsoft"',
        ),
        "allowed_domains": ("strings", 'a list of e-mail domains, e.g. ["uni-bonn.de"]'),
        "allowed_emails": ("strings", 'a list of e-mail addresses, e.g. ["a@uni-bonn.de"]'),
        "users": (
            "users",
            'a table of user names and hashes from `gmx hash-password`, e.g. alice = "scrypt$..."',
        ),
    },
    # ``[model_sets.NAME]`` tables, each checked against MODEL_SET_SCHEMA.
    "model_sets": {},
    "serve": {
        "host": (_HOST_PATTERN, 'an address to listen on, e.g. host = "127.0.0.1"'),
        "port": ("count", "a port number, e.g. port = 8000"),
        "token": (_TOKEN_PATTERN, "at least 16 printable characters without spaces"),
        "max_body_bytes": ("count", "a whole number of bytes, e.g. max_body_bytes = 20000000"),
        "max_pixels": ("count", "a whole number of pixels, e.g. max_pixels = 40000000"),
        "timeout_s": ("count", "whole seconds per request, e.g. timeout_s = 60"),
        "explain_timeout_s": ("count", "whole seconds per /explain request, e.g. 300"),
        "max_pending": ("count", "requests admitted at once, e.g. max_pending = 64"),
        "max_batch": ("count", "faces per forward pass, e.g. max_batch = 16"),
        "batch_window_ms": ("count", "milliseconds to wait for more faces, e.g. 2"),
        "batching": ("bool", "true or false (a TOML boolean, without quotes)"),
    },
}
#: Keys of one ``[model_sets.NAME]`` table (``models`` and ``gallery`` are required).
MODEL_SET_SCHEMA: dict[str, tuple[object, str]] = {
    "models": CONFIG_SCHEMA["models"]["paths"],
    "gallery": CONFIG_SCHEMA["gallery"]["path"],
    "flip": CONFIG_SCHEMA["models"]["flip"],
    "grey": CONFIG_SCHEMA["models"]["grey"],
    "photos_visible": CONFIG_SCHEMA["gallery"]["photos_visible"],
}
MODEL_SET_REQUIRED = ("models", "gallery")


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """The parsed file and its text; every failure is a :class:`ConfigError` naming the file."""
    if path.is_dir():
        raise ConfigError(f"{CONFIG_ENV} points to {path}, which is a folder; name a .toml file.")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{CONFIG_ENV} points to {path}, which does not exist.") from exc
    except OSError as exc:
        raise ConfigError(
            f"config file {path} cannot be read ({exc.strerror or 'input/output error'})."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text, so not valid TOML.") from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's message ends with "(at line L, column C)"; put the place first.
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)$", message)
        if where:
            message = message[: where.start()].strip()
            raise ConfigError(
                f"config file {path}, line {where[1]}, column {where[2]}: not valid TOML "
                f"({message})."
            ) from exc
        raise ConfigError(f"config file {path} is not valid TOML ({message}).") from exc


def _key_line(text: str, section: str, key: str | None) -> int | None:
    """1-based line where ``[section]`` (``key is None``) or its ``key`` is written, if found."""
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.split("#", 1)[0].strip()
        header = re.fullmatch(r"\[\s*([A-Za-z0-9_\-\.\"']+)\s*\]", stripped)
        if header:
            current = header[1].strip("\"'")
            if key is None and current == section:
                return number
            continue
        name = re.match(r"([A-Za-z0-9_\-\.\"']+)\s*=", stripped)
        if name is None:
            continue
        dotted = name[1].replace('"', "").replace("'", "")
        full = f"{current}.{dotted}" if current else dotted
        target = section if key is None else f"{section}.{key}"
        if full == target or (key is None and full.startswith(section + ".")):
            return number
    return None


def _describe(value: object) -> str:
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "list"}
    kind = kinds.get(type(value), "table" if isinstance(value, dict) else type(value).__name__)
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"the {kind} {shown}"


def _check_value(value: object, kind: object) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "path":
        return isinstance(value, str) and bool(value.strip())
    if kind == "paths":
        return (
            isinstance(value, list)
            and bool(value)
            and all(isinstance(v, str) and v.strip() for v in value)
        )
    if kind == "strings":
        return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
    if kind == "users":
        return isinstance(value, dict) and all(
            isinstance(v, str) and _is_password_hash(v) for v in value.values()
        )
    if kind == "count":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if isinstance(kind, re.Pattern):
        return isinstance(value, str) and kind.fullmatch(value) is not None
    return isinstance(value, str) and value in kind  # type: ignore[operator]


def _is_password_hash(text: str) -> bool:
    from gmx.passwords import parse_hash

    try:
        parse_hash(text)
    except ValueError:
        return False
    return True


def validate_config_data(data: Mapping[str, Any], path: Path, text: str = "") -> None:
    """Check a parsed ``GMX_CONFIG`` file against :data:`CONFIG_SCHEMA`.

    Args:
        data: the parsed TOML.
        path: the file, for messages.
        text: the file's text, to find the line of an offending key.

    Raises:
        ConfigError: naming the file, the key, the line (when found), what was given and what to
            write instead; also for unknown sections and keys (usually typos).
    """

    def fail(section: str, key: str | None, problem: str) -> ConfigError:
        line = _key_line(text, section, key)
        place = f"{path}, line {line}" if line else str(path)
        what = f"[{section}]" + (f" {key}" if key else "")
        return ConfigError(f"config file {place}: {what} {problem}")

    for section, table in data.items():
        schema = CONFIG_SCHEMA.get(section)
        if schema is None:
            raise fail(
                section, None, f"is not a known section (known: {', '.join(CONFIG_SCHEMA)})."
            )
        if not isinstance(table, dict):
            raise fail(
                section,
                None,
                f"must be a table (a [{section}] header followed by keys), not {_describe(table)}.",
            )
        if section == "model_sets":
            _validate_model_sets(table, fail)
            continue
        for key, value in table.items():
            if key not in schema:
                raise fail(section, key, f"is not a known key (known: {', '.join(schema)}).")
            kind, expected = schema[key]
            if not _check_value(value, kind):
                if kind == "users" and isinstance(value, dict):  # never repeat a password
                    bad = [n for n, v in value.items() if not _check_value({n: v}, kind)]
                    raise fail(
                        section,
                        key,
                        f"must be {expected}; the entry of {bad[0]!r} is not such a hash "
                        "(its value is not repeated here).",
                    )
                raise fail(section, key, f"must be {expected}, not {_describe(value)}.")


def _validate_model_sets(table: Mapping[str, Any], fail: Callable[..., ConfigError]) -> None:
    """Each ``[model_sets.NAME]`` is a table of :data:`MODEL_SET_SCHEMA` keys with a model list and
    a gallery."""
    for name, entry in table.items():
        section = f"model_sets.{name}"
        if not name.strip():
            raise fail(section, None, "needs a name (the text after model_sets.).")
        if not isinstance(entry, dict):
            raise fail(
                section,
                None,
                f"must be a table (a [{section}] header followed by models = [...] and "
                f"gallery = ...), not {_describe(entry)}.",
            )
        for key, value in entry.items():
            if key not in MODEL_SET_SCHEMA:
                raise fail(
                    section, key, f"is not a known key (known: {', '.join(MODEL_SET_SCHEMA)})."
                )
            kind, expected = MODEL_SET_SCHEMA[key]
            if not _check_value(value, kind):
                raise fail(section, key, f"must be {expected}, not {_describe(value)}.")
        for key in MODEL_SET_REQUIRED:
            if key not in entry:
                raise fail(section, None, f"has no {key} (write {MODEL_SET_SCHEMA[key][1]}).")


def read_config_file(path: Path) -> dict[str, Any]:
    """The parsed ``GMX_CONFIG`` file, checked by :func:`validate_config_data`.

    Raises:
        ConfigError: the file is missing, unreadable, not TOML, or has a wrong key or value.
    """
    data, text = _read_toml(path)
    validate_config_data(data, path, text)
    return data


def _from_toml(path: Path) -> dict[str, Any]:
    data = read_config_file(path)
    base = path.parent
    out: dict[str, Any] = {"source": str(path)}
    models = data.get("models", {})
    if "paths" in models:
        out["model_paths"] = tuple((base / Path(p).expanduser()).resolve() for p in models["paths"])
    for key in ("flip", "grey"):
        if key in models:
            out[key] = models[key]
    gallery = data.get("gallery", {})
    if "path" in gallery:
        out["gallery_path"] = (base / Path(gallery["path"]).expanduser()).resolve()
    if "photos_visible" in gallery:
        out["photos_visible"] = gallery["photos_visible"]
    if "serve" in data:
        out["serve"] = dict(data["serve"])
    runtime = data.get("runtime", {})
    for key in ("device", "precision", "threads"):
        if key in runtime:
            out[key] = runtime[key]
    return out


def load_config(environ: Mapping[str, str] | None = None) -> GmxConfig:
    """Build the configuration from ``GMX_CONFIG`` / ``GMX_MODELS`` / ``GMX_GALLERY`` / ``GMX_DEVICE``
    / ``GMX_THREADS``.

    Args:
        environ: environment to read (defaults to ``os.environ``).

    Raises:
        ConfigError: (a ``ValueError``) if the named config file is missing, a folder, unreadable,
            not valid TOML, or has an unknown key or a value of the wrong type; the message names
            the file, the key and the line; or if ``GMX_THREADS`` is not a whole number >= 0.
    """
    env = os.environ if environ is None else environ
    fields: dict[str, Any] = {}
    if env.get(CONFIG_ENV):
        fields.update(_from_toml(Path(env[CONFIG_ENV]).expanduser()))
    if env.get(MODELS_ENV):
        paths = [p for p in env[MODELS_ENV].split(os.pathsep) if p]
        fields["model_paths"] = tuple(Path(p).expanduser() for p in paths)
        fields["source"] = f"${MODELS_ENV}"
    if env.get(GALLERY_ENV):
        fields["gallery_path"] = Path(env[GALLERY_ENV]).expanduser()
        fields["source"] = f"${GALLERY_ENV}"
    if env.get("GMX_DEVICE"):
        fields["device"] = env["GMX_DEVICE"]
    if env.get(THREADS_ENV, "").strip():
        text = env[THREADS_ENV].strip()
        if not text.isdigit():
            raise ConfigError(
                f"{THREADS_ENV}={text!r}: write 0 (automatic) or a positive whole number of threads."
            )
        fields["threads"] = int(text)
    return GmxConfig(**fields)


def from_cli_args(args: Any, environ: Mapping[str, str] | None = None) -> GmxConfig:
    """:func:`load_config`, overridden by command-line options (``gmx`` and ``gmx batch``).

    Reads the attributes ``models``, ``gallery``, ``no_flip``, ``no_grey``, ``device`` and
    ``precision`` of ``args`` (an ``argparse.Namespace``) where present and set.
    """
    cfg = load_config(environ)
    changes: dict[str, object] = {}
    if getattr(args, "models", None):
        changes["model_paths"] = args.models
        changes["source"] = "command line"
    if getattr(args, "gallery", None):
        changes["gallery_path"] = args.gallery
        changes["source"] = "command line"
    if getattr(args, "no_flip", False):
        changes["flip"] = False
    if getattr(args, "no_grey", False):
        changes["grey"] = False
    if getattr(args, "device", None):
        changes["device"] = args.device
    if getattr(args, "precision", None):
        changes["precision"] = args.precision
    return cfg.with_overrides(**changes) if changes else cfg


__all__ = [
    "CONFIG_ENV",
    "CONFIG_SCHEMA",
    "DEMO_DIR",
    "DEMO_GALLERY",
    "DEMO_MODEL",
    "GALLERY_ENV",
    "MODELS_ENV",
    "MODEL_SET_SCHEMA",
    "PROJECT_ROOT",
    "THREADS_ENV",
    "GmxConfig",
    "from_cli_args",
    "load_config",
    "read_config_file",
    "validate_config_data",
]
