"""The study database: SQLite in WAL mode, one row per answer, saved the moment it is given.

Schema (version :data:`SCHEMA_VERSION`, kept in ``PRAGMA user_version``)::

    meta(key TEXT PRIMARY KEY, value TEXT)            -- study name and fingerprint
    answers(rater TEXT, case_id TEXT, arm TEXT, item TEXT, method TEXT, value TEXT,
            answered_at TEXT,                         -- ISO 8601 UTC
            PRIMARY KEY (rater, case_id, item, method))

An answer given again (a rater changing a rating, or a resumed session) replaces the earlier one
(upsert), so a rater has at most one value per case, item and map. Rater ids are pseudonyms; no
image bytes are ever stored (only image ids). Every call opens its own connection with a busy
timeout, so several raters (sessions, threads, processes) can write at once.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from gmx._io import UTC_MICROSECONDS, utc_now
from gmx.errors import GmxError

SCHEMA_VERSION = 1
#: Seconds a writer waits for another one's lock before giving up.
BUSY_TIMEOUT_S = 10.0
#: How ``answered_at`` is written: ISO 8601 UTC to the microsecond (``2026-01-31T12:00:00.000123Z``).
ANSWER_TIME_FORMAT = UTC_MICROSECONDS
EXPORT_COLUMNS: tuple[str, ...] = (
    "rater",
    "case_id",
    "arm",
    "item",
    "method",
    "value",
    "answered_at",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    rater TEXT NOT NULL,
    case_id TEXT NOT NULL,
    arm TEXT NOT NULL,
    item TEXT NOT NULL,
    method TEXT NOT NULL DEFAULT '',
    value TEXT NOT NULL,
    answered_at TEXT NOT NULL,
    PRIMARY KEY (rater, case_id, item, method)
);
"""


class StudyStoreError(GmxError):
    """The study database cannot be used (other schema version, another study's answers)."""


@dataclass(frozen=True)
class Answer:
    """One stored answer (a row of ``answers``)."""

    rater: str
    case_id: str
    arm: str
    item: str
    method: str
    value: str
    answered_at: str


class StudyStore:
    """The answers of one study in one SQLite file (created on first use)."""

    def __init__(self, path: str | Path, *, study_name: str = "", fingerprint: str = "") -> None:
        """Open (creating if needed) the database.

        Args:
            path: the ``.sqlite`` file.
            study_name, fingerprint: recorded on creation; a database made for another study
                fingerprint is refused (its raters' plans would not match).

        Raises:
            StudyStoreError: another schema version or another study.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StudyStoreError(
                    f"{self.path}: study database schema {version}, this gmx reads {SCHEMA_VERSION}"
                )
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if fingerprint:
                row = con.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
                if row is None:
                    con.executemany(
                        "INSERT INTO meta(key, value) VALUES (?, ?)",
                        [("fingerprint", fingerprint), ("study_name", study_name)],
                    )
                elif row[0] != fingerprint:
                    raise StudyStoreError(
                        f"{self.path} holds answers of another study definition (fingerprint "
                        f"{row[0]}, this study {fingerprint}); use a new database file"
                    )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)) as con, con:
            con.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            yield con

    def meta(self) -> dict[str, str]:
        """The ``meta`` table."""
        with self._connect() as con:
            return dict(con.execute("SELECT key, value FROM meta").fetchall())

    def save(
        self,
        rater: str,
        case_id: str,
        arm: str,
        item: str,
        value: str | int | float,
        *,
        method: str = "",
        answered_at: str | None = None,
    ) -> None:
        """Store one answer now (replacing the rater's earlier value for the same key)."""
        self.save_many([Answer(rater, case_id, arm, item, method, str(value),
                               answered_at or utc_now(ANSWER_TIME_FORMAT))])  # fmt: skip

    def save_many(self, answers: Iterable[Answer]) -> None:
        """Store several answers in one transaction (upsert)."""
        rows = [tuple(asdict(a).values()) for a in answers]
        with self._connect() as con:
            con.executemany(
                "INSERT INTO answers(rater, case_id, arm, item, method, value, answered_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(rater, case_id, item, method) DO UPDATE "
                "SET arm=excluded.arm, value=excluded.value, answered_at=excluded.answered_at",
                rows,
            )

    def answers(self, rater: str | None = None) -> list[Answer]:
        """All answers (of one rater), ordered by time then key."""
        sql = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM answers"
        args: tuple[str, ...] = ()
        if rater is not None:
            sql += " WHERE rater = ?"
            args = (rater,)
        sql += " ORDER BY answered_at, rater, case_id, item, method"
        with self._connect() as con:
            return [Answer(*r) for r in con.execute(sql, args).fetchall()]

    def raters(self) -> list[str]:
        """The rater ids with at least one answer, sorted."""
        with self._connect() as con:
            return [r[0] for r in con.execute("SELECT DISTINCT rater FROM answers ORDER BY rater")]


def to_csv(answers: Sequence[Answer]) -> str:
    """The answers as CSV (one row per answer, :data:`EXPORT_COLUMNS`)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXPORT_COLUMNS)
    for a in answers:
        w.writerow(asdict(a).values())
    return buf.getvalue()


def to_json(answers: Sequence[Answer], meta: dict[str, str] | None = None) -> str:
    """Tidy JSON: ``{"schema_version", "meta", "answers": [{column: value}, ...]}``; numeric
    answers are numbers, the regions item is its JSON object."""
    rows = []
    for a in answers:
        d = asdict(a)
        d["value"] = _typed(a.value)
        rows.append(d)
    return json.dumps(
        {"schema_version": SCHEMA_VERSION, "meta": meta or {}, "answers": rows}, indent=1
    )


def _typed(value: str) -> object:
    try:
        return int(value)
    except ValueError:
        pass
    if value.startswith(("{", "[")):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


__all__ = [
    "ANSWER_TIME_FORMAT",
    "BUSY_TIMEOUT_S",
    "EXPORT_COLUMNS",
    "SCHEMA_VERSION",
    "Answer",
    "StudyStore",
    "StudyStoreError",
    "to_csv",
    "to_json",
]
