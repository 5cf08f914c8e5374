"""The audit log of a shared server: who analysed which photo, when, with which models and gallery.

One SQLite file (write-ahead logging, so the app's sessions write while ``gmx audit`` reads). A row
holds the photo's SHA-256, never the photo; the signed-in user's name; the UTC time; the model set's
name, the models' weight fingerprints (ensemble order), the ensemble fingerprint; the gallery's name
and file name. The schema version is SQLite's ``user_version``; a file from a newer gmx is refused.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gmx._io import UTC_SECONDS, utc_now
from gmx.errors import GmxError

if TYPE_CHECKING:
    from gmx.pipeline import Diagnoser

#: Version of the table layout below (``PRAGMA user_version``); bump with a migration.
SCHEMA_VERSION = 1
#: Seconds a writer waits for another one (sessions write concurrently).
BUSY_TIMEOUT_S = 10.0
#: How times are written: ISO 8601 in UTC, to the second (sorts as text).
TIME_FORMAT = UTC_SECONDS

_SCHEMA = """
CREATE TABLE analyses (
    id INTEGER PRIMARY KEY,
    at_utc TEXT NOT NULL,
    user TEXT NOT NULL,
    photo_sha256 TEXT NOT NULL CHECK (length(photo_sha256) = 64),
    face_index INTEGER NOT NULL,
    model_set TEXT NOT NULL,
    model_fingerprints TEXT NOT NULL,
    ensemble_fingerprint TEXT NOT NULL,
    gallery TEXT NOT NULL,
    gallery_file TEXT NOT NULL,
    gmx_version TEXT NOT NULL
);
CREATE INDEX analyses_at ON analyses (at_utc);
CREATE INDEX analyses_user ON analyses (user);
"""
_SHA256 = re.compile(r"[0-9a-f]{64}")


class AuditError(GmxError):
    """The audit log cannot be opened, read or written (the message says which file and why)."""


@dataclass(frozen=True)
class AuditEntry:
    """One analysis.

    Attributes:
        at_utc: when, as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC).
        user: who (the signed-in name or e-mail).
        photo_sha256: the analysed photo's SHA-256 (hex); the photo itself is never stored.
        face_index: which face of the photo was ranked (0 = largest).
        model_set: the model set's name (shared mode) or the configuration's source.
        model_fingerprints: each model's weights fingerprint, ensemble order.
        ensemble_fingerprint: the ensemble's fingerprint (weights, preprocessing, TTA flags).
        gallery: the gallery's name.
        gallery_file: the gallery's file name.
        gmx_version: the gmx that ran the analysis.
    """

    at_utc: str
    user: str
    photo_sha256: str
    face_index: int
    model_set: str
    model_fingerprints: tuple[str, ...]
    ensemble_fingerprint: str
    gallery: str
    gallery_file: str
    gmx_version: str

    def __post_init__(self) -> None:
        if not _SHA256.fullmatch(self.photo_sha256):
            raise ValueError(
                f"photo_sha256 must be 64 lower-case hex digits: {self.photo_sha256!r}"
            )
        if not self.user:
            raise ValueError("an audit entry needs a user")

    def as_dict(self) -> dict[str, Any]:
        """The entry as plain JSON-ready values (fingerprints as a list)."""
        out = asdict(self)
        out["model_fingerprints"] = list(self.model_fingerprints)
        return out


def analysis_entry(
    diagnoser: Diagnoser,
    *,
    user: str,
    photo_sha256: str,
    face_index: int,
    model_set: str,
    gallery_file: str,
    at_utc: str | None = None,
) -> AuditEntry:
    """The audit entry of one analysis by ``diagnoser`` (its models' and gallery's identity)."""
    from gmx import __version__

    return AuditEntry(
        at_utc=at_utc or utc_now(TIME_FORMAT),
        user=user,
        photo_sha256=photo_sha256,
        face_index=face_index,
        model_set=model_set,
        model_fingerprints=tuple(m.fingerprint for m in diagnoser.models),
        ensemble_fingerprint=diagnoser.ensemble.fingerprint,
        gallery=diagnoser.gallery.name,
        gallery_file=gallery_file,
        gmx_version=__version__,
    )


def parse_since(text: str) -> str:
    """A date (``2026-11-29``) or time (``2026-11-29T08:00``, ``...Z``/offset) as a UTC bound in
    :data:`TIME_FORMAT`; times without an offset are UTC.

    Raises:
        ValueError: not an ISO 8601 date or time.
    """
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is not a date or time; write e.g. 2026-11-29 or 2026-11-29T08:00Z"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime(TIME_FORMAT)


class AuditLog:
    """The audit log file; creates it (and its folder) with the current schema when missing.

    Every call opens its own connection, so sessions on different threads can share one object.

    Args:
        path: the SQLite file.
        create: create a missing file (``False``: a missing file is an :class:`AuditError`).

    Raises:
        AuditError: the file cannot be created or opened, is not an audit log, or was written by a
            newer gmx.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            if not create:
                raise AuditError(f"audit log {self.path} does not exist.")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise AuditError(
                    f"cannot create the folder of the audit log {self.path} "
                    f"({exc.strerror or type(exc).__name__})."
                ) from exc
        with self._connect() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if tables:
                    raise AuditError(f"{self.path} is an SQLite file but not a gmx audit log.")
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise AuditError(
                    f"audit log {self.path} has schema version {version}, newer than this gmx "
                    f"reads ({SCHEMA_VERSION}); update gmx."
                )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open the audit log {self.path}: {exc}.") from exc
        try:
            yield db
        except sqlite3.DatabaseError as exc:
            raise AuditError(f"audit log {self.path}: {exc}.") from exc
        finally:
            db.close()

    @property
    def schema_version(self) -> int:
        """The file's schema version."""
        with self._connect() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def record(self, entry: AuditEntry) -> None:
        """Append one analysis (committed before returning)."""
        row = entry.as_dict()
        row["model_fingerprints"] = json.dumps(row["model_fingerprints"])
        columns = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self._connect() as db:
            db.execute(f"INSERT INTO analyses ({columns}) VALUES ({marks})", row)

    def entries(self, *, since: str | None = None, user: str | None = None) -> list[AuditEntry]:
        """The analyses, oldest first; only those at or after ``since`` (:data:`TIME_FORMAT`, see
        :func:`parse_since`) and of ``user`` when given."""
        where, args = [], []
        if since is not None:
            where.append("at_utc >= ?")
            args.append(since)
        if user is not None:
            where.append("user = ?")
            args.append(user)
        fields = [f for f in AuditEntry.__dataclass_fields__]
        sql = f"SELECT {', '.join(fields)} FROM analyses"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY at_utc, id", args).fetchall()
        out = []
        for row in rows:
            values = dict(zip(fields, row, strict=True))
            values["model_fingerprints"] = tuple(json.loads(values["model_fingerprints"]))
            out.append(AuditEntry(**values))
        return out


def entries_csv(entries: Sequence[AuditEntry]) -> str:
    """The entries as CSV with a header (fingerprints joined by ``;``)."""
    import csv
    import io

    buffer = io.StringIO()
    fields = list(AuditEntry.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for e in entries:
        row = e.as_dict()
        row["model_fingerprints"] = ";".join(e.model_fingerprints)
        writer.writerow(row)
    return buffer.getvalue()


def entries_json(entries: Sequence[AuditEntry]) -> str:
    """The entries as a JSON list of objects."""
    return json.dumps([e.as_dict() for e in entries], indent=2)


__all__ = [
    "SCHEMA_VERSION",
    "TIME_FORMAT",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "analysis_entry",
    "entries_csv",
    "entries_json",
    "parse_since",
    "utc_now",
]
