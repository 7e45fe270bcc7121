"""The run store: content-addressed records (generations, scores, grades, predictions, decisions) in SQLite/WAL.

Every record is keyed by a hash of what produced it (model id, params, prompt, version...). A record is committed
the moment it is computed, so a run killed at any point — SIGKILL included — resumes where it stopped, recomputing
only the records it had not finished, and never stores one key twice (first write wins). Stores hold whole
conversations, so a new one is created readable by its owner only (0600); stores filled in shards merge into one
(:func:`merge_stores`) without duplicates, because equal keys mean equal inputs.
"""

from __future__ import annotations

import contextlib
import json
import os
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
# Tags the readers filter on (model and split for generations, scores and grades; router for decisions). The
# expressions are written exactly as `_where` writes them, which is what lets SQLite match an index to a query.
INDEXED_TAGS = ("model", "split", "router")
_INDEXES = "".join(f"CREATE INDEX IF NOT EXISTS records_{t} ON records (kind, json_extract(tags, '$.{t}'));\n"
                   for t in INDEXED_TAGS)


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
        if not self.path.exists():
            _create(self.path)
        elif self.path.is_file() and self.path.stat().st_size == 0:
            raise DataError(f"{self.path}: empty file, not a thrifty store (delete it to start a new store)")
        self._lock = threading.Lock()
        with self._sql("not a usable thrifty store"):
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
            _check_integrity(self._db, self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process kills; WAL keeps commits
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA + _INDEXES)
            row = self._db.execute("SELECT value FROM info WHERE name='schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT OR IGNORE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        if row is not None and int(row[0]) != SCHEMA_VERSION:
            raise DataError(f"{self.path}: store schema {row[0]} is not the supported {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _sql(self, what: str = "store error") -> Iterator[None]:
        """Turn an SQLite failure (a corrupted file, a full disk, a lock held too long) into one line naming
        the file."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: {what} ({exc})") from None

    # -- basic operations -------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> Any | None:
        """The stored value for (kind, key), or None."""
        _check_kind(kind)
        with self._lock, self._sql():
            row = self._db.execute("SELECT value FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, kind: str, key: str, value: Any, tags: dict[str, Any] | None = None) -> bool:
        """Store a record in its own committed transaction; returns False if the key existed (kept as is)."""
        _check_kind(kind)
        payload = canonical_json(value)
        tag_json = canonical_json(tags or {})
        with self._lock, self._sql():
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
        with self._lock, self._sql():
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
        with self._lock, self._sql():
            row = self._db.execute("SELECT tags FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
        return None if row is None else json.loads(row[0])

    def has(self, kind: str, key: str) -> bool:
        """Whether (kind, key) is stored."""
        _check_kind(kind)
        with self._lock, self._sql():
            row = self._db.execute("SELECT 1 FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
        return row is not None

    def count(self, kind: str | None = None, **tags: Any) -> int:
        """Number of records, optionally of one kind and with the given tag values."""
        sql, args = self._where(kind, tags)
        with self._lock, self._sql():
            return int(self._db.execute(f"SELECT COUNT(*) FROM records{sql}", args).fetchone()[0])

    def records(self, kind: str | None = None, **tags: Any) -> Iterator[Record]:
        """Records in insertion-time order, optionally filtered by kind and exact tag values."""
        sql, args = self._where(kind, tags)
        with self._lock, self._sql():
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
        # Without statistics SQLite prefers the primary key's kind prefix over a tag index; name the index.
        indexed = next((t for t in INDEXED_TAGS if t in tags), None) if kind is not None else None
        hint = f" INDEXED BY records_{indexed}" if indexed else ""
        return hint + (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def merge_from(self, path: str | Path) -> dict[str, Any]:
        """Copy every record of the store at ``path`` that this one lacks, in one transaction; keys already here
        keep their value. Returns the counts: records read, added, and already present (with a different value)."""
        src = Path(path)
        _check_readable(src)
        with self._lock, self._sql(f"cannot merge {src}"):
            self._db.execute("ATTACH DATABASE ? AS src", (str(src),))
            try:
                read = self._db.execute("SELECT COUNT(*) FROM src.records").fetchone()[0]
                differing = self._db.execute(
                    "SELECT COUNT(*) FROM src.records s JOIN main.records m ON m.kind = s.kind AND m.key = s.key "
                    "WHERE m.value != s.value").fetchone()[0]
                before = self._db.total_changes
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("INSERT OR IGNORE INTO main.records (kind, key, value, tags, created) "
                                     "SELECT kind, key, value, tags, created FROM src.records")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                added = self._db.total_changes - before
            finally:
                self._db.execute("DETACH DATABASE src")
        return {"path": str(src), "records": int(read), "added": int(added), "present": int(read - added),
                "differing": int(differing)}

    def close(self) -> None:
        """Close the connection (records are already committed)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_stores(sources: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Merge run stores (shards of one run, runs of several machines) into the new store ``out``; where two hold
    one key, the earlier source's value is kept. Refuses an existing ``out``; on any failure ``out`` is removed.
    Returns the counts per source and the number of records ``out`` holds."""
    dest = Path(out)
    if not sources:
        raise DataError("nothing to merge: name at least one store")
    if dest.exists():
        raise DataError(f"{dest}: already exists; merge into a new file")
    for src in sources:
        _check_readable(Path(src))
    try:
        with RunStore(dest) as store:
            merged = [store.merge_from(src) for src in sources]
            total = store.count()
    except BaseException:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        raise
    return {"out": str(dest), "sources": merged, "records": total}


def _create(path: Path) -> None:
    """Make a new, empty store at ``path`` that only its owner can read. It is built under a temporary name and
    linked into place, so no one ever opens a half-made (empty) store; if another process wins the race, its
    store is kept."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        try:
            db = sqlite3.connect(tmp, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")  # writes the header: the file is no longer empty
                db.executescript(_SCHEMA + _INDEXES)
                db.execute("INSERT INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{path}: cannot create a store ({exc})") from None
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_integrity(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a store whose pages are damaged (``PRAGMA quick_check``), naming the file."""
    rows = db.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        raise DataError(f"{path}: store is corrupted (quick_check: {rows[0][0] if rows else 'no answer'}); "
                        "restore it from a copy")


def _check_readable(path: Path) -> None:
    """Refuse what is not an intact store of this schema before reading it (opened read-only: no file touched)."""
    if not path.is_file():
        raise DataError(f"{path}: no such store")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file, not a thrifty store")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            _check_integrity(db, path)
            row = db.execute("SELECT value FROM info WHERE name='schema_version'").fetchone()
            db.execute("SELECT kind, key, value, tags, created FROM records LIMIT 0")
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a usable thrifty store ({exc})") from None
    if row is None or int(row[0]) != SCHEMA_VERSION:
        raise DataError(f"{path}: store schema {row[0] if row else 'unknown'} is not the supported {SCHEMA_VERSION}")
