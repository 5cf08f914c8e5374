from __future__ import annotations

import base64
import hmac

import pytest

from gmx import passwords
from gmx.passwords import (
    SignInThrottle,
    hash_password,
    parse_hash,
    verify_password,
)

# RFC 7914, section 12, second test vector: scrypt("password", "NaCl", N=1024, r=8, p=16, 64 bytes).
RFC_KEY = bytes.fromhex(
    "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
    "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
)
RFC_HASH = (
    f"scrypt$1024$8$16${base64.b64encode(b'NaCl').decode()}${base64.b64encode(RFC_KEY).decode()}"
)


def test_rfc_7914_vector_verifies():
    assert verify_password("password", RFC_HASH)
    assert not verify_password("Password", RFC_HASH)
    parsed = parse_hash(RFC_HASH)
    assert (parsed.cost, parsed.block_size, parsed.parallelism) == (1024, 8, 16)
    assert parsed.salt == b"NaCl" and parsed.key == RFC_KEY
    assert str(parsed) == RFC_HASH


def test_hash_round_trip_with_random_salt():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # a fresh salt each time
    assert first.startswith(f"scrypt${passwords.COST}${passwords.BLOCK_SIZE}$")
    assert len(parse_hash(first).salt) == passwords.SALT_BYTES
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horse ", first)
    assert "correct" not in first


def test_fixed_salt_gives_the_documented_derivation():
    import hashlib

    salt = bytes(range(16))
    stored = hash_password("pw", salt=salt)
    key = hashlib.scrypt(b"pw", salt=salt, n=2**15, r=8, p=1, maxmem=2**26, dklen=32)
    assert (
        stored
        == f"scrypt$32768$8$1${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    )


def test_unknown_user_is_false_and_costs_a_derivation(monkeypatch):
    calls = []
    real = passwords._derive
    monkeypatch.setattr(passwords, "_derive", lambda *a: calls.append(a) or real(*a))
    assert verify_password("anything", None) is False
    assert len(calls) == 1


def test_compare_is_constant_time(monkeypatch):
    seen = []
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: seen.append((a, b)) or a == b)
    assert verify_password("password", RFC_HASH)
    assert seen and seen[0][1] == RFC_KEY


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plaintext",
        "bcrypt$10$abc$def",
        "scrypt$1000$8$1$c2FsdA==$a2V5",  # N not a power of two
        f"scrypt${2**24}$8$1$c2FsdA==$a2V5",  # N beyond MAX_COST
        "scrypt$1024$0$1$c2FsdA==$a2V5",
        "scrypt$1024$8$1$c2FsdA$a2V5",  # bad base64 padding
    ],
)
def test_parse_rejects_what_is_not_a_hash(text):
    with pytest.raises(ValueError) as info:
        parse_hash(text)
    assert text[-4:] not in str(info.value) or not text  # the secret is not repeated


def test_empty_password_is_refused():
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_throttle_locks_a_name_after_repeated_failures():
    now = [0.0]
    throttle = SignInThrottle(max_failures=3, lockout_s=60.0, clock=lambda: now[0])
    for _ in range(2):
        throttle.failed("alice")
    assert throttle.wait_s("alice") == 0.0
    throttle.failed("alice")
    assert throttle.wait_s("alice") == pytest.approx(60.0)
    assert throttle.wait_s("bob") == 0.0
    now[0] = 45.0
    assert throttle.wait_s("alice") == pytest.approx(15.0)
    now[0] = 61.0
    assert throttle.wait_s("alice") == 0.0
    throttle.failed("alice")
    throttle.succeeded("alice")
    assert throttle.wait_s("alice") == 0.0
