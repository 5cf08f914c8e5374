"""Helpers of the shared-server tests: a configuration file with two model sets and one user."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "correct horse battery staple"


@functools.cache
def alice_hash() -> str:
    """alice's hash of :data:`PASSWORD` (computed once per test process)."""
    from gmx.passwords import hash_password

    return hash_password(PASSWORD)


@dataclass(frozen=True)
class SharedFiles:
    folder: Path
    config: Path
    audit: Path


def write_shared_config(
    folder: Path,
    *,
    signin: str | None,
    enabled: bool = True,
    models: Path | None = None,
    gallery: Path | None = None,
) -> SharedFiles:
    """A GMX_CONFIG file for shared mode in ``folder`` (sets "tiny" and "tiny, no flip")."""
    models = models or folder / "a.pt"
    gallery = gallery or folder / "g.sqlite"
    text = (
        f'[runtime]\ndevice = "cpu"\n[shared]\nenabled = {str(enabled).lower()}\n'
        'audit_log = "audit/log.sqlite"\n'
    )
    if signin is not None:
        text += signin
    text += (
        f'[model_sets.tiny]\nmodels = ["{models}"]\ngallery = "{gallery}"\n'
        f'[model_sets."tiny, no flip"]\nmodels = ["{models}"]\ngallery = "{gallery}"\n'
        "flip = false\n"
    )
    config = folder / "gmx.toml"
    config.write_text(text)
    return SharedFiles(folder, config, folder / "audit" / "log.sqlite")


def password_signin(hash_: str | None = None) -> str:
    """A ``[signin]`` section with the user alice (:data:`PASSWORD`)."""
    return f'[signin]\nmethod = "password"\n[signin.users]\nalice = "{hash_ or alice_hash()}"\n'
