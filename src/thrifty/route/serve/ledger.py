"""The decision ledger: every routed request as a ``decision`` record in a run store, written off the request path.

:meth:`Ledger.write` only enqueues (the request never waits on the disk); one writer thread commits queued
entries in batches (one transaction each) and :meth:`Ledger.close` drains the queue before returning, so a clean
shutdown loses nothing. Each entry is keyed by its request id and tagged with the router, the action, the
answering model and the day, so ``RunStore.records("decision", router=...)`` reads the traffic back.

The ledger holds conversations: a store it creates is readable by its owner only (mode 0600, which SQLite gives
its WAL and shared-memory files too).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from thrifty.core.store import RunStore, record_key

log = logging.getLogger("thrifty.server")

_STOP = object()


def _owner_only(path: Path) -> None:
    """Make a store (and any WAL/shared-memory file it has yet) readable and writable by its owner only."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


class Ledger:
    """Asynchronous, batched writer of decision records (see the module notes)."""

    def __init__(self, store: str | Path, batch: int = 256) -> None:
        self.path = Path(store)
        new = not self.path.exists()
        self._store = RunStore(self.path)
        if new:
            _owner_only(self.path)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._batch = max(1, int(batch))
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="thrifty-ledger", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def write(self, entry: dict[str, Any]) -> None:
        """Queue one decision (``entry["request_id"]`` is its address)."""
        self._queue.put(entry)

    def _run(self) -> None:
        done = False
        while not done:
            items = [self._queue.get()]
            while len(items) < self._batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if any(it is _STOP for it in items):
                done = True
                items = [it for it in items if it is not _STOP]
            if items:
                self._commit(items)

    def _commit(self, items: list[dict[str, Any]]) -> None:
        rows = []
        for e in items:
            day = time.strftime("%Y-%m-%d", time.gmtime(float(e.get("time", time.time()))))
            tags = {"router": e.get("router"), "action": e.get("action"), "model": e.get("model"), "day": day}
            rows.append(("decision", record_key("decision", {"request_id": e["request_id"]}), e, tags))
        try:
            self.written += self._store.put_many(rows)
        except Exception as exc:  # the ledger must never take the server down; count and say so
            self.failed += len(rows)
            log.error("ledger: %d decisions not written (%s)", len(rows), exc)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, then stop the writer and close the store."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
        self._store.close()


__all__ = ["Ledger"]
