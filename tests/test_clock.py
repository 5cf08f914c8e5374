"""One clock for stored times (``gmx._io.utc_now``): the audit log writes seconds, the study
database microseconds, both as before, so files written by earlier versions still parse."""

from __future__ import annotations

import ast
import re
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import gmx
from gmx._io import UTC_MICROSECONDS, UTC_SECONDS, utc_now
from gmx.audit import TIME_FORMAT, AuditLog, analysis_entry, parse_since
from gmx.study import StudyStore
from gmx.study.store import ANSWER_TIME_FORMAT

SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MICROSECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_one_utc_now_in_the_library() -> None:
    """Once two: gmx/audit.py (seconds) and gmx/study/store.py (microseconds)."""
    package = Path(gmx.__file__).resolve().parent
    where = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name == "utc_now"
    ]
    assert where == ["_io.py"]


def test_the_two_formats_are_the_stored_ones() -> None:
    assert TIME_FORMAT == UTC_SECONDS == "%Y-%m-%dT%H:%M:%SZ"
    assert ANSWER_TIME_FORMAT == UTC_MICROSECONDS == "%Y-%m-%dT%H:%M:%S.%fZ"
    assert SECONDS.match(utc_now()) and SECONDS.match(utc_now(UTC_SECONDS))
    assert MICROSECONDS.match(utc_now(UTC_MICROSECONDS))
    # what earlier versions wrote still parses with the same formats
    datetime.strptime("2026-11-29T08:00:00Z", TIME_FORMAT)
    datetime.strptime("2026-01-31T12:00:00.000123Z", ANSWER_TIME_FORMAT)
    assert parse_since("2026-11-29T08:00+01:00") == "2026-11-29T07:00:00Z"


def test_audit_entries_are_stamped_to_the_second(tmp_path: Path) -> None:
    diagnoser = SimpleNamespace(
        models=[SimpleNamespace(fingerprint="m1")],
        ensemble=SimpleNamespace(fingerprint="ens"),
        gallery=SimpleNamespace(name="g"),
    )
    entry = analysis_entry(
        diagnoser, user="u", photo_sha256="a" * 64, face_index=0, model_set="s", gallery_file="f"
    )
    assert SECONDS.match(entry.at_utc)
    log = AuditLog(tmp_path / "audit.sqlite")
    log.record(entry)
    assert [e.at_utc for e in log.entries()] == [entry.at_utc]


def test_study_answers_are_stamped_to_the_microsecond(tmp_path: Path) -> None:
    st = StudyStore(tmp_path / "a.sqlite", study_name="s", fingerprint="f")
    st.save("R01", "c1", "ai", "initial_guess", "SYN:1")
    st.save("R01", "c2", "ai", "initial_guess", "SYN:2", answered_at="2026-01-31T12:00:00.000123Z")
    got = {a.case_id: a.answered_at for a in st.answers()}
    assert MICROSECONDS.match(got["c1"]) and got["c2"] == "2026-01-31T12:00:00.000123Z"
