from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading

import pytest

from gmx.study import StudyStore, StudyStoreError, to_csv, to_json
from gmx.study.store import SCHEMA_VERSION


def test_schema_wal_and_upsert(tmp_path):
    db = tmp_path / "a.sqlite"
    st = StudyStore(db, study_name="s", fingerprint="f1")
    st.save("R01", "c1", "ai", "initial_guess", "SYN:0001")
    st.save("R01", "c1", "ai", "initial_guess", "SYN:0002")  # changed answer replaces
    st.save("R01", "c1", "ai+maps", "likert:trust", 4, method="gradcam")
    st.save("R01", "c1", "ai+maps", "likert:trust", 2, method="hirescam")
    rows = st.answers()
    assert [(a.item, a.method, a.value) for a in rows] == [
        ("initial_guess", "", "SYN:0002"),
        ("likert:trust", "gradcam", "4"),
        ("likert:trust", "hirescam", "2"),
    ]
    assert all(a.answered_at.endswith("Z") for a in rows)
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        # no blobs anywhere: every stored value is text
        assert {r[0] for r in con.execute("SELECT DISTINCT typeof(value) FROM answers")} == {"text"}
    assert st.meta() == {"fingerprint": "f1", "study_name": "s"}
    assert StudyStore(db, fingerprint="f1").raters() == ["R01"]


def test_other_study_and_schema_refused(tmp_path):
    db = tmp_path / "a.sqlite"
    StudyStore(db, fingerprint="f1")
    with pytest.raises(StudyStoreError, match="another study"):
        StudyStore(db, fingerprint="f2")
    with sqlite3.connect(db) as con:
        con.execute("PRAGMA user_version=99")
    with pytest.raises(StudyStoreError, match="schema 99"):
        StudyStore(db)


def test_concurrent_raters_never_lose_or_mix_answers(tmp_path):
    db = tmp_path / "a.sqlite"
    StudyStore(db, fingerprint="f")

    def rater(name: str) -> None:
        st = StudyStore(db, fingerprint="f")  # its own connections
        for i in range(40):
            st.save(name, f"c{i}", "ai", "initial_confidence", i % 5 + 1)

    threads = [threading.Thread(target=rater, args=(f"R{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = StudyStore(db)
    assert len(st.answers()) == 160
    for k in range(4):
        mine = st.answers(f"R{k}")
        assert len(mine) == 40 and {a.rater for a in mine} == {f"R{k}"}


def test_exports(tmp_path):
    st = StudyStore(tmp_path / "a.sqlite", fingerprint="f")
    st.save("R01", "c1", "ai", "initial_confidence", 3, answered_at="2026-01-01T00:00:00Z")
    st.save("R01", "c1", "ai", "regions", '{"points": [[1.0, 2.0]], "cells": []}',
            answered_at="2026-01-01T00:00:01Z")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(to_csv(st.answers()))))
    assert rows[0] == {"rater": "R01", "case_id": "c1", "arm": "ai", "item": "initial_confidence",
                       "method": "", "value": "3", "answered_at": "2026-01-01T00:00:00Z"}  # fmt: skip
    doc = json.loads(to_json(st.answers(), st.meta()))
    assert doc["schema_version"] == SCHEMA_VERSION and doc["meta"]["fingerprint"] == "f"
    assert doc["answers"][0]["value"] == 3
    assert doc["answers"][1]["value"] == {"points": [[1.0, 2.0]], "cells": []}
