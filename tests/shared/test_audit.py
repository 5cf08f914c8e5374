from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from gmx.audit import (
    SCHEMA_VERSION,
    AuditEntry,
    AuditError,
    AuditLog,
    analysis_entry,
    entries_csv,
    entries_json,
    parse_since,
)
from gmx.cli import main

SHA_A = hashlib.sha256(b"photo a").hexdigest()
SHA_B = hashlib.sha256(b"photo b").hexdigest()


def _entry(at: str, user: str, sha: str = SHA_A) -> AuditEntry:
    return AuditEntry(
        at_utc=at,
        user=user,
        photo_sha256=sha,
        face_index=0,
        model_set="tiny",
        model_fingerprints=("f1", "f2"),
        ensemble_fingerprint="e" * 64,
        gallery="tiny gallery",
        gallery_file="tiny.sqlite",
        gmx_version="0.1.0",
    )


@pytest.fixture()
def log_with_rows(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "sub" / "audit.sqlite")
    log.record(_entry("2026-11-28T23:59:59Z", "alice"))
    log.record(_entry("2026-11-29T08:00:00Z", "bob", SHA_B))
    log.record(_entry("2026-11-29T09:30:00Z", "alice", SHA_B))
    return log


def test_schema_version_wal_and_columns(tmp_path: Path):
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    assert log.schema_version == SCHEMA_VERSION == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [r[1] for r in db.execute("PRAGMA table_info(analyses)")]
    assert columns == ["id", *AuditEntry.__dataclass_fields__]
    AuditLog(path)  # opening again keeps the file


def test_rows_round_trip_and_filter(log_with_rows: AuditLog):
    rows = log_with_rows.entries()
    assert [(r.user, r.photo_sha256) for r in rows] == [
        ("alice", SHA_A),
        ("bob", SHA_B),
        ("alice", SHA_B),
    ]
    assert rows[0] == _entry("2026-11-28T23:59:59Z", "alice")
    assert [r.at_utc for r in log_with_rows.entries(since=parse_since("2026-11-29"))] == [
        "2026-11-29T08:00:00Z",
        "2026-11-29T09:30:00Z",
    ]
    assert [
        r.at_utc for r in log_with_rows.entries(user="alice", since="2026-11-29T09:00:00Z")
    ] == ["2026-11-29T09:30:00Z"]
    assert log_with_rows.entries(user="carol") == []


def test_since_is_utc():
    assert parse_since("2026-11-29") == "2026-11-29T00:00:00Z"
    assert parse_since("2026-11-29T10:00+02:00") == "2026-11-29T08:00:00Z"
    assert parse_since("2026-11-29T10:00:05Z") == "2026-11-29T10:00:05Z"
    with pytest.raises(ValueError, match="not a date or time"):
        parse_since("yesterday")


def test_an_entry_holds_a_hash_not_a_photo():
    with pytest.raises(ValueError, match="64 lower-case hex"):
        _entry("2026-11-29T08:00:00Z", "alice", sha="not a hash")
    with pytest.raises(ValueError, match="needs a user"):
        _entry("2026-11-29T08:00:00Z", "")


def test_refuses_other_files_and_newer_schemas(tmp_path: Path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(AuditError, match="not a gmx audit log"):
        AuditLog(other)
    newer = tmp_path / "newer.sqlite"
    AuditLog(newer)
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 2")
    with pytest.raises(AuditError, match="schema version 2, newer"):
        AuditLog(newer)
    with pytest.raises(AuditError, match="does not exist"):
        AuditLog(tmp_path / "missing.sqlite", create=False)
    (tmp_path / "text.sqlite").write_text("not sqlite at all, just some text " * 10)
    with pytest.raises(AuditError):
        AuditLog(tmp_path / "text.sqlite")


def test_analysis_entry_names_the_models_and_gallery():
    diagnoser = SimpleNamespace(
        models=[SimpleNamespace(fingerprint="m1"), SimpleNamespace(fingerprint="m2")],
        ensemble=SimpleNamespace(fingerprint="ens"),
        gallery=SimpleNamespace(name="GMDB 1.0.3"),
    )
    entry = analysis_entry(
        diagnoser,
        user="alice",
        photo_sha256=SHA_A,
        face_index=1,
        model_set="arc",
        gallery_file="g.sqlite",
        at_utc="2026-11-29T08:00:00Z",
    )
    assert entry.model_fingerprints == ("m1", "m2") and entry.ensemble_fingerprint == "ens"
    assert entry.gallery == "GMDB 1.0.3" and entry.face_index == 1 and entry.model_set == "arc"


def test_csv_and_json(log_with_rows: AuditLog):
    rows = log_with_rows.entries()
    table = list(csv.DictReader(io.StringIO(entries_csv(rows))))
    assert [r["user"] for r in table] == ["alice", "bob", "alice"]
    assert table[0]["model_fingerprints"] == "f1;f2"
    data = json.loads(entries_json(rows))
    assert data[1]["photo_sha256"] == SHA_B and data[1]["model_fingerprints"] == ["f1", "f2"]


def test_gmx_audit_command(log_with_rows: AuditLog, capsys, monkeypatch):
    db = str(log_with_rows.path)
    assert main(["audit", "--db", db, "--format", "json", "--user", "alice"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["photo_sha256"] for d in data] == [SHA_A, SHA_B]
    assert main(["audit", "--db", db, "--since", "2026-11-29T08:00Z"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("at_utc,user,photo_sha256") and len(lines) == 3
    assert main(["audit", "--db", db, "--since", "soon"]) == 2
    assert main(["audit", "--db", str(log_with_rows.path.parent / "none.sqlite")]) == 2
    assert not (log_with_rows.path.parent / "none.sqlite").exists()


def test_gmx_audit_finds_the_log_of_the_configuration(tmp_path: Path, capsys, monkeypatch):
    (tmp_path / "gmx.toml").write_text('[shared]\naudit_log = "a.sqlite"\n')
    AuditLog(tmp_path / "a.sqlite").record(_entry("2026-11-29T08:00:00Z", "alice"))
    monkeypatch.setenv("GMX_CONFIG", str(tmp_path / "gmx.toml"))
    assert main(["audit", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["user"] == "alice"
    monkeypatch.delenv("GMX_CONFIG")
    assert main(["audit"]) == 2


def test_gmx_hash_password_from_stdin(capsys, monkeypatch):
    from gmx.passwords import verify_password

    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pass\n"))
    assert main(["hash-password", "--stdin", "--user", "dr.alice"]) == 0
    line = capsys.readouterr().out.strip()
    name, value = line.split(" = ")
    assert name == '"dr.alice"' and verify_password("s3cret pass", json.loads(value))
    monkeypatch.setattr("sys.stdin", io.StringIO("other\n"))
    assert main(["passwd", "--stdin"]) == 0
    assert verify_password("other", capsys.readouterr().out.strip())
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["hash-password", "--stdin"]) == 2
