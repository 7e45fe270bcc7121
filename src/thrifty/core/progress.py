"""Progress reporting for long work: a rich bar on a terminal, periodic plain lines otherwise, or nothing; and
the peak-memory reading long jobs print beside their wall time."""

from __future__ import annotations

import os
import resource
import sys
import time
from typing import TextIO


class Progress:
    """Count finished units of work and show it. Use as a context manager; call ``advance()`` per unit.

    On a TTY it draws a rich progress bar; elsewhere (CI, pipes) it prints one line at most every
    ``every_s`` seconds and a final line. ``THRIFTY_PROGRESS=0`` silences it.
    """

    def __init__(self, total: int, desc: str, stream: TextIO | None = None, every_s: float = 10.0,
                 enabled: bool | None = None) -> None:
        self.total = max(0, int(total))
        self.desc = desc
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.enabled = os.environ.get("THRIFTY_PROGRESS", "1") != "0" if enabled is None else enabled
        self.done = 0
        self.note = ""
        self._bar = None
        self._task = None
        self._t0 = time.monotonic()
        self._last = self._t0

    def __enter__(self) -> Progress:
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                                     transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.desc, total=self.total, note="")
        return self

    def advance(self, n: int = 1, note: str = "") -> None:
        """Mark ``n`` more units done; ``note`` is a short status shown beside the bar."""
        self.done += n
        self.note = note or self.note
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=n, note=self.note)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_s = f", eta {eta:.0f}s" if eta == eta else ""
        note = f" — {self.note}" if self.note else ""
        self.stream.write(f"{self.desc}: {self.done}/{self.total} ({elapsed:.0f}s{eta_s}){note}\n")
        self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self.enabled:
            self._line()


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

