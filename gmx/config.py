"""Which models and gallery gmx uses: the embedded demo by default, real GestaltMatcher files on request.

Resolution order (first wins): explicit arguments, the TOML file named by ``GMX_CONFIG``, the
environment variables ``GMX_MODELS`` (paths separated by ``os.pathsep``), ``GMX_GALLERY``,
``GMX_DEVICE``, and finally the embedded demo under ``models/demo``.

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
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: Root of the repository checkout (gmx is installed editable; models/ sits beside gmx/).
PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent

#: Folder of the embedded synthetic demo (model, gallery, example faces).
DEMO_DIR: Path = PROJECT_ROOT / "models" / "demo"
DEMO_MODEL: Path = DEMO_DIR / "gmx-demo-iresnet.pt"
DEMO_GALLERY: Path = DEMO_DIR / "gallery.sqlite"

CONFIG_ENV = "GMX_CONFIG"
MODELS_ENV = "GMX_MODELS"
GALLERY_ENV = "GMX_GALLERY"


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
        photos_visible: gallery photos may be shown (``None``: as the gallery says).
        source: where this configuration came from, for display ("embedded demo", a file path, ...).
    """

    model_paths: tuple[Path, ...] = (DEMO_MODEL,)
    gallery_path: Path = DEMO_GALLERY
    flip: bool = True
    grey: bool = True
    device: str = "auto"
    precision: str = "fp32"
    photos_visible: bool | None = None
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


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ValueError(f"{CONFIG_ENV} points to {path}, which does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from exc
    base = path.parent
    out: dict[str, Any] = {"source": str(path)}
    models = data.get("models", {})
    if "paths" in models:
        out["model_paths"] = tuple((base / Path(p)).resolve() for p in models["paths"])
    for key in ("flip", "grey"):
        if key in models:
            out[key] = bool(models[key])
    gallery = data.get("gallery", {})
    if "path" in gallery:
        out["gallery_path"] = (base / Path(gallery["path"])).resolve()
    if "photos_visible" in gallery:
        out["photos_visible"] = bool(gallery["photos_visible"])
    runtime = data.get("runtime", {})
    if "device" in runtime:
        out["device"] = str(runtime["device"])
    if "precision" in runtime:
        out["precision"] = str(runtime["precision"])
    return out


def load_config(environ: Mapping[str, str] | None = None) -> GmxConfig:
    """Build the configuration from ``GMX_CONFIG`` / ``GMX_MODELS`` / ``GMX_GALLERY`` / ``GMX_DEVICE``.

    Args:
        environ: environment to read (defaults to ``os.environ``).

    Raises:
        ValueError: if a named config file is missing or invalid.
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
    "DEMO_DIR",
    "DEMO_GALLERY",
    "DEMO_MODEL",
    "GALLERY_ENV",
    "MODELS_ENV",
    "PROJECT_ROOT",
    "GmxConfig",
    "from_cli_args",
    "load_config",
]
