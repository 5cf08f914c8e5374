"""Password hashes for the app's built-in sign-in (shared mode, ``docs/shared.md``).

A hash is one string, safe to keep in the configuration file::

    scrypt$32768$8$1$<salt, base64>$<key, base64>

scrypt (RFC 7914) from the standard library with a random 16-byte salt per password; the cost
parameters are part of the string, so an administrator can raise them later and old hashes still
verify. Comparison is constant-time (:func:`hmac.compare_digest`). ``gmx hash-password`` writes one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The scheme tag at the start of every hash this module writes.
SCHEME = "scrypt"
#: scrypt cost (N), block size (r) and parallelism (p) of new hashes: N=2^15, r=8 uses 32 MiB and
#: about 0.2 s per check on a loaded 2-core CPU (measured), cheap for a sign-in, costly to guess.
COST = 2**15
BLOCK_SIZE = 8
PARALLELISM = 1
SALT_BYTES = 16
KEY_BYTES = 32
#: Largest cost accepted from a configuration file (a typo must not exhaust the server's memory).
MAX_COST = 2**20

_HASH = re.compile(
    r"scrypt\$(?P<n>\d+)\$(?P<r>\d+)\$(?P<p>\d+)\$(?P<salt>[A-Za-z0-9+/=]+)\$(?P<key>[A-Za-z0-9+/=]+)"
)


@dataclass(frozen=True)
class PasswordHash:
    """A parsed hash: the scrypt parameters, the salt and the derived key."""

    cost: int
    block_size: int
    parallelism: int
    salt: bytes
    key: bytes

    def __str__(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        key = base64.b64encode(self.key).decode("ascii")
        return f"{SCHEME}${self.cost}${self.block_size}${self.parallelism}${salt}${key}"


def parse_hash(text: str) -> PasswordHash:
    """Read a hash written by :func:`hash_password`.

    Raises:
        ValueError: ``text`` is not such a hash (the message does not repeat it: it is a secret).
    """
    match = _HASH.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            "not a gmx password hash (expected scrypt$N$r$p$salt$key; make one with "
            "`gmx hash-password`)"
        )
    cost, block, parallel = int(match["n"]), int(match["r"]), int(match["p"])
    if cost < 2 or cost & (cost - 1) or cost > MAX_COST or not block or not parallel:
        raise ValueError(
            f"scrypt parameters N={cost}, r={block}, p={parallel} are not usable "
            f"(N a power of two up to {MAX_COST}, r and p at least 1)"
        )
    try:
        salt = base64.b64decode(match["salt"], validate=True)
        key = base64.b64decode(match["key"], validate=True)
    except binascii.Error as exc:
        raise ValueError("the salt or key of the password hash is not valid base64") from exc
    if not salt or not key:
        raise ValueError("the salt or key of the password hash is empty")
    return PasswordHash(cost, block, parallel, salt, key)


def _derive(password: str, salt: bytes, cost: int, block: int, parallel: int, size: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=cost,
        r=block,
        p=parallel,
        maxmem=2 * 128 * block * cost + 2**20,
        dklen=size,
    )


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A new hash of ``password`` with a random salt (or ``salt``, for tests).

    Raises:
        ValueError: the password is empty.
    """
    if not password:
        raise ValueError("the password is empty")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    key = _derive(password, salt, COST, BLOCK_SIZE, PARALLELISM, KEY_BYTES)
    return str(PasswordHash(COST, BLOCK_SIZE, PARALLELISM, salt, key))


#: Compared against when the user name is unknown, so that a wrong name costs as long as a wrong
#: password (no timing difference tells which names exist).
_DUMMY = PasswordHash(COST, BLOCK_SIZE, PARALLELISM, b"\0" * SALT_BYTES, b"\0" * KEY_BYTES)


def verify_password(password: str, stored: str | PasswordHash | None) -> bool:
    """Whether ``password`` matches the stored hash (constant-time compare).

    ``stored=None`` (an unknown user) does the same work and returns ``False``.
    """
    target = _DUMMY if stored is None else stored
    if isinstance(target, str):
        target = parse_hash(target)
    key = _derive(
        password, target.salt, target.cost, target.block_size, target.parallelism, len(target.key)
    )
    return hmac.compare_digest(key, target.key) and stored is not None


#: Wrong passwords allowed per user name within :data:`LOCKOUT_S` before sign-in is refused.
MAX_FAILURES = 5
#: How long (seconds) a user name stays locked after :data:`MAX_FAILURES` wrong passwords.
LOCKOUT_S = 60.0


class SignInThrottle:
    """Counts wrong passwords per user name (process-wide, thread-safe): after ``max_failures``
    within ``lockout_s`` seconds that name is refused until ``lockout_s`` after the last failure,
    whatever the password, so guessing costs time even across many browser sessions.

    Args:
        max_failures: wrong passwords allowed in a row.
        lockout_s: how long a locked name waits.
        clock: seconds, monotonic (a fake one in tests).
    """

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        lockout_s: float = LOCKOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._lockout = lockout_s
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, name: str) -> float:
        """Seconds until ``name`` may try again (0: now)."""
        with self._lock:
            now = self._clock()
            recent = [t for t in self._failures.get(name, []) if now - t < self._lockout]
            self._failures[name] = recent
            if len(recent) < self._max:
                return 0.0
            return self._lockout - (now - recent[-1])

    def failed(self, name: str) -> None:
        """Count a wrong password for ``name``."""
        with self._lock:
            self._failures.setdefault(name, []).append(self._clock())

    def succeeded(self, name: str) -> None:
        """Forget ``name``'s failures."""
        with self._lock:
            self._failures.pop(name, None)


__all__ = [
    "LOCKOUT_S",
    "MAX_FAILURES",
    "PasswordHash",
    "SignInThrottle",
    "hash_password",
    "parse_hash",
    "verify_password",
]
