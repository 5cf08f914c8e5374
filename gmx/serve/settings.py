"""What ``gmx serve`` listens on and how much it accepts: the ``[serve]`` table of the config.

Kept free of FastAPI so that the command line can refuse an unsafe address before anything loads.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from gmx.config import GmxConfig
from gmx.errors import ConfigError

#: Environment variable holding the access token (overrides ``[serve] token``).
TOKEN_ENV = "GMX_SERVE_TOKEN"
#: Shortest accepted token (characters).
MIN_TOKEN_LENGTH = 16
#: Addresses that only this machine can reach.
LOOPBACK_NAMES = ("localhost",)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Default faces per forward pass on a CPU / on a GPU. On the 2-core CPU box a forward pass got dearer
#: per face beyond a few faces (benchmarks/serve.py, real-size ensemble at 16 clients: 1.89x
#: one-at-a-time with batches of at most 4, 1.15x with 16); a GPU gains from large batches.
CPU_MAX_BATCH = 4
GPU_MAX_BATCH = 16


@dataclass(frozen=True)
class ServeSettings:
    """Limits and switches of the service (defaults fit a department server with one CPU box).

    Attributes:
        host: address to bind; anything but loopback requires :attr:`token`.
        port: TCP port.
        token: bearer token every request must carry (``None``: no check, loopback only).
        max_body_bytes: largest request body (the base64 photo and the JSON around it); more: 413.
        max_pixels: largest photo (``width * height``, read from the header before decoding);
            more: 413. ``None``: :data:`gmx.align.DEFAULT_MAX_PIXELS`.
        timeout_s: a ``/predict``, ``/encode`` or ``/crop`` request not answered within this many
            seconds gets 504 (its queued work is dropped).
        explain_timeout_s: the same for ``/explain`` (its engine stops between batches).
        max_pending: requests admitted at once (queued or running); more: 503 with Retry-After.
        max_explain_pending: ``/explain`` requests admitted at once (they run one at a time).
        max_batch: most faces in one forward pass per model (``None``: :data:`CPU_MAX_BATCH` on a
            CPU, :data:`GPU_MAX_BATCH` on a GPU).
        batch_window_ms: how long the batcher waits for more faces after the first one (0: take
            what is queued when the model is free).
        batching: micro-batch and overlap alignment with encoding; ``False`` answers one request
            at a time (the baseline of ``benchmarks/serve.py``).
        body_read_timeout_s: a client that takes longer to send its body gets 408.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_body_bytes: int = 20_000_000
    max_pixels: int | None = None
    timeout_s: float = 60.0
    explain_timeout_s: float = 300.0
    max_pending: int = 64
    max_explain_pending: int = 2
    max_batch: int | None = None
    batch_window_ms: float = 2.0
    batching: bool = True
    body_read_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_pending", "max_explain_pending"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"[serve] {name} must be at least 1, got {getattr(self, name)}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise ConfigError(f"[serve] max_pixels must be at least 1, got {self.max_pixels}")
        if self.max_batch is not None and self.max_batch < 1:
            raise ConfigError(f"[serve] max_batch must be at least 1, got {self.max_batch}")
        for name in ("timeout_s", "explain_timeout_s", "body_read_timeout_s"):
            if float(getattr(self, name)) <= 0:
                raise ConfigError(f"[serve] {name} must be positive, got {getattr(self, name)}")
        if self.batch_window_ms < 0:
            raise ConfigError(f"[serve] batch_window_ms must be >= 0, got {self.batch_window_ms}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"[serve] port must be 0-65535, got {self.port}")
        if self.token is not None and (
            len(self.token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in self.token)
        ):
            raise ConfigError(
                f"the access token must be at least {MIN_TOKEN_LENGTH} characters without spaces "
                f"(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')."
            )

    @classmethod
    def from_config(
        cls,
        config: GmxConfig,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ServeSettings:
        """Settings from ``config.serve`` (the ``[serve]`` table), then :data:`TOKEN_ENV`, then
        ``overrides`` that are not ``None`` (command-line options).

        Raises:
            ConfigError: for an unknown key or a value out of range.
        """
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        given = {k: v for k, v in overrides.items() if v is not None}
        for key in {**dict(config.serve), **given}:
            if key not in known:
                raise ConfigError(f"[serve] {key} is not a setting of gmx serve")
        values.update(config.serve)
        if env.get(TOKEN_ENV, "").strip():
            values["token"] = env[TOKEN_ENV].strip()
        values.update(given)
        return cls(**values)

    def with_overrides(self, **changes: Any) -> ServeSettings:
        """A copy with some settings changed."""
        return replace(self, **changes)

    def batch_size_for(self, device_type: str) -> int:
        """:attr:`max_batch`, or the default for a ``torch.device.type`` (``cpu``, ``cuda``, ...)."""
        if self.max_batch is not None:
            return self.max_batch
        return CPU_MAX_BATCH if device_type == "cpu" else GPU_MAX_BATCH

    @property
    def loopback(self) -> bool:
        """True when :attr:`host` is reachable from this machine only."""
        return is_loopback(self.host)

    def check_exposure(self) -> None:
        """Refuse to listen beyond this machine without a token.

        Raises:
            ConfigError: if :attr:`host` is not loopback and there is no token.
        """
        if not self.loopback and not self.token:
            raise ConfigError(
                f"gmx serve would listen on {self.host}, which other machines can reach, without "
                f"an access token. Set one with --token, the {TOKEN_ENV} environment variable or "
                "[serve] token in the config file (clients send 'Authorization: Bearer <token>'), "
                "or listen on 127.0.0.1."
            )


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); ``0.0.0.0``, ``::``
    and every other address or name count as reachable from outside."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


__all__ = [
    "CPU_MAX_BATCH",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "GPU_MAX_BATCH",
    "MIN_TOKEN_LENGTH",
    "TOKEN_ENV",
    "ServeSettings",
    "is_loopback",
]
