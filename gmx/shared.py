"""The app on a shared server: when shared mode is on, the model sets an administrator listed, the
sign-in settings, and the checks that keep a browser from opening anything else (``docs/shared.md``).

Shared mode is on when the configuration file says ``[shared] enabled = true`` and, whatever it
says, whenever the app listens beyond this machine (Streamlit's ``server.address`` is not a loopback
address). In shared mode:

- only the configuration's ``[model_sets.NAME]`` can be used, chosen by name; :meth:`SharedConfig.
  check_listed` is called by the app's loading code, so no path from a browser is ever opened;
- a sign-in is required (``[signin]``: built-in passwords or the identity provider of Streamlit's
  ``st.login``); without one the app refuses to start (:func:`startup_problems`);
- every analysis is written to the audit log (:mod:`gmx.audit`).

Example (paths relative to the file)::

    [shared]
    enabled = true
    audit_log = "/var/lib/gmx/audit.sqlite"   # default: gmx-audit.sqlite beside this file

    [signin]
    method = "password"                        # or "oidc"
    [signin.users]
    alice = "scrypt$32768$8$1$..."             # from `gmx hash-password`

    [model_sets."GM-Arc + GMDB 1.0.3"]
    models = ["/data/gm/glint360k_r50_e10.pt", "/data/gm/glint360k_r100_e15.pt"]
    gallery = "/data/gm/gmdb_gallery.sqlite"
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gmx.config import CONFIG_ENV, GmxConfig, load_config, read_config_file
from gmx.errors import ConfigError

#: Host names that mean "this machine only" (besides loopback IP addresses).
LOOPBACK_NAMES: tuple[str, ...] = ("localhost", "localhost.localdomain", "ip6-localhost")
#: Name of the one set offered when the configuration lists none (its models and gallery).
DEFAULT_SET_NAME = "default"
#: The audit log's file name beside the configuration file when ``[shared] audit_log`` is not set.
DEFAULT_AUDIT_LOG = "gmx-audit.sqlite"
#: Sign-in methods: gmx's own password form, or Streamlit's OpenID Connect (``st.login``).
SIGNIN_METHODS: tuple[str, ...] = ("password", "oidc")
#: Where Streamlit's ``st.login`` finds the identity provider (docs/shared.md).
SECRETS_FILE = ".streamlit/secrets.toml"


class NotListedError(ConfigError):
    """In shared mode, a configuration that is not one of the administrator's model sets."""


def listens_beyond_localhost(address: str | None) -> bool:
    """Whether a server bound to ``address`` can be reached from other machines.

    ``None`` or ``""`` (Streamlit's default: every interface), ``0.0.0.0``, ``::`` and any
    non-loopback name or address are; ``localhost`` and ``127.x.x.x`` / ``::1`` are not.
    """
    if not address or not address.strip():
        return True
    host = address.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost: reachable under that name
        return True


@dataclass(frozen=True)
class ModelSet:
    """One model/gallery set the administrator listed: its name and the configuration it selects."""

    name: str
    config: GmxConfig


@dataclass(frozen=True)
class SignIn:
    """How users sign in.

    Attributes:
        method: ``password`` (gmx's form, :attr:`users`) or ``oidc`` (Streamlit's ``st.login``).
        users: user name -> password hash (:mod:`gmx.passwords`), for ``password``.
        provider: the ``[auth.NAME]`` section of ``.streamlit/secrets.toml`` for ``oidc`` (``None``:
            the ``[auth]`` section itself).
        allowed_domains: for ``oidc``, e-mail domains allowed in (empty with
            :attr:`allowed_emails` empty: anyone the identity provider signs in).
        allowed_emails: for ``oidc``, single addresses allowed in.
    """

    method: str
    users: Mapping[str, str] = field(default_factory=dict)
    provider: str | None = None
    allowed_domains: tuple[str, ...] = ()
    allowed_emails: tuple[str, ...] = ()

    def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s (built-in passwords; an unknown name costs as long as
        a wrong password: :func:`gmx.passwords.verify_password`)."""
        from gmx.passwords import verify_password

        return verify_password(password, self.users.get(name))

    def allows_email(self, email: str | None) -> bool:
        """Whether an identity-provider user with this e-mail may use the app."""
        if not self.allowed_domains and not self.allowed_emails:
            return True
        if not email or "@" not in email:
            return False
        address = email.strip().lower()
        domain = address.rsplit("@", 1)[1]
        return address in {e.lower() for e in self.allowed_emails} or domain in {
            d.lower().lstrip("@") for d in self.allowed_domains
        }


@dataclass(frozen=True)
class SharedConfig:
    """The shared-server part of the configuration.

    Attributes:
        enabled: ``[shared] enabled`` (shared mode is also on beyond localhost: :meth:`is_on`).
        sets: the listed model sets, the first being the default (never empty: without
            ``[model_sets]`` the one set is the ordinary configuration, named ``default``).
        signin: the sign-in, or ``None`` when none is configured.
        audit_log: the audit log file (``None`` without a configuration file).
        source: where this came from, for messages.
    """

    enabled: bool = False
    sets: tuple[ModelSet, ...] = (ModelSet(DEFAULT_SET_NAME, GmxConfig()),)
    signin: SignIn | None = None
    audit_log: Path | None = None
    source: str = "no configuration file"

    def is_on(self, address: str | None) -> bool:
        """Whether shared mode is on for a server bound to ``address``."""
        return self.enabled or listens_beyond_localhost(address)

    @property
    def default(self) -> ModelSet:
        """The set a new session starts with (the first listed)."""
        return self.sets[0]

    @property
    def names(self) -> tuple[str, ...]:
        """The set names, in the order listed."""
        return tuple(s.name for s in self.sets)

    def set_named(self, name: str) -> ModelSet:
        """The listed set called ``name``.

        Raises:
            NotListedError: no set has this name.
        """
        for s in self.sets:
            if s.name == name:
                return s
        raise NotListedError(
            f"there is no model set named {name!r} (listed: {', '.join(self.names)})."
        )

    def check_listed(self, cfg: GmxConfig) -> ModelSet:
        """The listed set whose configuration ``cfg`` is, exactly (models, gallery, TTA, device...).

        Raises:
            NotListedError: ``cfg`` is not a listed set; nothing of it may be opened.
        """
        for s in self.sets:
            if s.config == cfg:
                return s
        raise NotListedError(
            "on this shared server only the model sets the administrator listed can be used "
            f"({', '.join(self.names)}); choose one by name in the settings."
        )


def _paths(base: Path, values: list[str]) -> tuple[Path, ...]:
    return tuple((base / Path(v).expanduser()).resolve() for v in values)


def _model_set(name: str, entry: Mapping[str, Any], base: Path, fallback: GmxConfig) -> ModelSet:
    return ModelSet(
        name,
        fallback.with_overrides(
            model_paths=_paths(base, entry["models"]),
            gallery_path=_paths(base, [entry["gallery"]])[0],
            flip=entry.get("flip", fallback.flip),
            grey=entry.get("grey", fallback.grey),
            photos_visible=entry.get("photos_visible"),
            source=f"model set “{name}”",
        ),
    )


def _signin(table: Mapping[str, Any] | None) -> SignIn | None:
    if not table:
        return None
    return SignIn(
        method=table.get("method", "password"),
        users=dict(table.get("users", {})),
        provider=table.get("provider"),
        allowed_domains=tuple(table.get("allowed_domains", ())),
        allowed_emails=tuple(table.get("allowed_emails", ())),
    )


def load_shared_config(environ: Mapping[str, str] | None = None) -> SharedConfig:
    """The shared-server settings of the ``GMX_CONFIG`` file (defaults without one).

    Raises:
        ConfigError: the file cannot be read or has a wrong key or value (see
            :func:`gmx.config.load_config`).
    """
    env = os.environ if environ is None else environ
    base_config = load_config(env)
    if not env.get(CONFIG_ENV):
        return SharedConfig(sets=(ModelSet(DEFAULT_SET_NAME, base_config),))
    path = Path(env[CONFIG_ENV]).expanduser()
    data = read_config_file(path)
    folder = path.parent
    shared = data.get("shared", {})
    listed = data.get("model_sets", {})
    sets = tuple(_model_set(n, e, folder, base_config) for n, e in listed.items())
    audit = shared.get("audit_log", DEFAULT_AUDIT_LOG)
    return SharedConfig(
        enabled=bool(shared.get("enabled", False)),
        sets=sets or (ModelSet(DEFAULT_SET_NAME, base_config),),
        signin=_signin(data.get("signin")),
        audit_log=(folder / Path(audit).expanduser()).resolve(),
        source=str(path),
    )


def startup_problems(shared: SharedConfig, address: str | None) -> list[str]:
    """Why the app must not start in shared mode (empty when it may, or when shared mode is off).

    Checks that a sign-in is configured (with at least one user for passwords) and that the audit
    log can be opened; the identity provider of ``oidc`` is checked by the app (it lives in
    Streamlit's secrets).
    """
    if not shared.is_on(address):
        return []
    why = (
        "shared mode is on ([shared] enabled = true)"
        if shared.enabled
        else f"the app listens beyond this machine (server.address = {address or 'all interfaces'})"
    )
    where = (
        shared.source if shared.audit_log is not None else f"a configuration file ({CONFIG_ENV})"
    )
    problems: list[str] = []
    if shared.signin is None:
        problems.append(
            f"Shared mode needs a sign-in, and none is configured: {why}. Add a [signin] section "
            f'to {where}: method = "password" with [signin.users] (hashes from '
            '`gmx hash-password`), or method = "oidc" with your identity provider in '
            ".streamlit/secrets.toml (docs/shared.md). To use the app alone, run it on localhost."
        )
    elif shared.signin.method == "password" and not shared.signin.users:
        problems.append(
            f'[signin] method = "password" in {shared.source} lists no users: add '
            '[signin.users] with name = "<hash from `gmx hash-password`>".'
        )
    if shared.audit_log is None:
        problems.append("Shared mode needs a configuration file (GMX_CONFIG) for the audit log.")
    else:
        from gmx.audit import AuditError, AuditLog

        try:
            AuditLog(shared.audit_log)
        except AuditError as exc:
            problems.append(f"Shared mode writes an audit log, and {exc}")
    return problems


def oidc_problems(signin: SignIn, auth: Mapping[str, Any] | None, *, authlib: bool) -> list[str]:
    """Why Streamlit's ``st.login`` cannot sign users in for ``signin`` (empty when it can, or when
    ``signin`` is not ``oidc``).

    Args:
        signin: the configured sign-in.
        auth: the ``[auth]`` section of Streamlit's secrets (``None``: there is none).
        authlib: whether Authlib (which ``st.login`` needs) is installed.
    """
    if signin.method != "oidc":
        return []
    found: list[str] = []
    if not authlib:
        found.append(
            '[signin] method = "oidc" uses Streamlit\'s st.login, which needs Authlib: '
            "pip install 'gmx[oidc]' (it installs Authlib)."
        )
    if not auth:
        found.append(
            f'[signin] method = "oidc" needs the identity provider in an [auth] section of '
            f"{SECRETS_FILE} (docs/shared.md)."
        )
    elif signin.provider and signin.provider not in auth:
        found.append(
            f"[signin] provider = {signin.provider!r}, but {SECRETS_FILE} has no "
            f"[auth.{signin.provider}] section."
        )
    return found


__all__ = [
    "DEFAULT_AUDIT_LOG",
    "DEFAULT_SET_NAME",
    "SECRETS_FILE",
    "SIGNIN_METHODS",
    "ModelSet",
    "NotListedError",
    "SharedConfig",
    "SignIn",
    "listens_beyond_localhost",
    "load_shared_config",
    "oidc_problems",
    "startup_problems",
]
