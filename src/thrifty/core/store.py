"""The run store: content-addressed records (generations, scores, grades, predictions, decisions) in SQLite/WAL.

Every record is keyed by a hash of what produced it (model id, params, prompt, version...). A record is committed
the moment it is computed, so a run killed at any point — SIGKILL included — resumes where it stopped, recomputing
only the records it had not finished, and never stores one key twice (first write wins).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.core.errors import DataError
from thrifty.core.types import canonical_json, content_hash, to_jsonable

KINDS = ("generation", "score", "grade", "prediction", "decision")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Record:
    """One stored record: its kind, address, value and free-form tags (model, task, run...)."""

    kind: str
    key: str
    value: Any
    tags: dict[str, Any]
    created: float


def record_key(kind: str, fields: Any) -> str:
    """The content address of a record of ``kind`` produced from ``fields``."""
    _check_kind(kind)
    return content_hash({"kind": kind, "fields": fields})


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise DataError(f"unknown record kind {kind!r}; choose one of {', '.join(KINDS)}")


class RunStore:
    """A SQLite file of records, safe to share between threads of one process and between processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills; WAL keeps commits
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM info WHERE name='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: not a usable thrifty store ({exc})") from None
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise DataError(f"{self.path}: store schema {row[0]} is not the supported {SCHEMA_VERSION}")
        self._lock = threading.Lock()

    # -- basic operations -------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> Any | None:
        """The stored value for (kind, key), or None."""
        _check_kind(kind)
        with self._lock:
            row = self._db.execute("SELECT value FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, kind: str, key: str, value: Any, tags: dict[str, Any] | None = None) -> bool:
        """Store a record in its own committed transaction; returns False if the key existed (kept as is)."""
        _check_kind(kind)
        payload = canonical_json(value)
        tag_json = canonical_json(tags or {})
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO records (kind, key, value, tags, created) VALUES (?, ?, ?, ?, ?)",
                (kind, key, payload, tag_json, time.time()),
            )
        return cur.rowcount == 1

    def put_many(self, rows: list[tuple[str, str, Any, dict[str, Any] | None]]) -> int:
        """Store (kind, key, value, tags) rows in one committed transaction; returns how many were new (existing
        keys are kept as they are). All or nothing: a failure stores none of them."""
        prepared = []
        for kind, key, value, tags in rows:
            _check_kind(kind)
            prepared.append((kind, key, canonical_json(value), canonical_json(tags or {}), time.time()))
        with self._lock:
            before = self._db.total_changes
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR IGNORE INTO records (kind, key, value, tags, created) "
                                     "VALUES (?, ?, ?, ?, ?)", prepared)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._db.total_changes - before

    def get_or_compute(
        self, kind: str, fields: Any, compute: Callable[[], Any], tags: dict[str, Any] | None = None
    ) -> tuple[Any, bool]:
        """Return (value, hit). On a miss, run ``compute()``, commit its result, and return it.

        The returned value is always the stored one (JSON round-tripped), so a hit and a miss look the same.
        If two workers race on one key, the first committed value wins and both return it.
        """
        key = record_key(kind, fields)
        found = self.get(kind, key)
        if found is not None:
            return found, True
        value = to_jsonable(compute())
        self.put(kind, key, value, tags)
        return self.get(kind, key), False

    def tags(self, kind: str, key: str) -> dict[str, Any] | None:
        """The tags stored with (kind, key), or None when there is no such record."""
        _check_kind(kind)
        with self._lock:
            row = self._db.execute("SELECT tags FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def has(self, kind: str, key: str) -> bool:
        """Whether (kind, key) is stored."""
        _check_kind(kind)
        with self._lock:
            row = self._db.execute("SELECT 1 FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
        return row is not None

    def count(self, kind: str | None = None, **tags: Any) -> int:
        """Number of records, optionally of one kind and with the given tag values."""
        sql, args = self._where(kind, tags)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM records{sql}", args).fetchone()[0])

    def records(self, kind: str | None = None, **tags: Any) -> Iterator[Record]:
        """Records in insertion-time order, optionally filtered by kind and exact tag values."""
        sql, args = self._where(kind, tags)
        with self._lock:
            rows = self._db.execute(
                f"SELECT kind, key, value, tags, created FROM records{sql} ORDER BY created, key", args
            ).fetchall()
        for k, key, value, tag_json, created in rows:
            yield Record(k, key, json.loads(value), json.loads(tag_json), created)

    def _where(self, kind: str | None, tags: dict[str, Any]) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if kind is not None:
            _check_kind(kind)
            clauses.append("kind=?")
            args.append(kind)
        for name, value in tags.items():
            if not name.isidentifier():
                raise DataError(f"invalid tag name {name!r}")
            clauses.append(f"json_extract(tags, '$.{name}') = ?")
            args.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def close(self) -> None:
        """Close the connection (records are already committed)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
