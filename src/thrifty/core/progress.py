"""Progress reporting for long work: a rich bar on a terminal, periodic plain lines otherwise, or nothing; and
the peak-memory reading long jobs print beside their wall time."""

from __future__ import annotations

import atexit
import os
import resource
import sys
import time
from typing import TextIO


class Progress:
    """Count finished units of work and show it. Use as a context manager; call ``advance()`` per unit.

    On a TTY it draws a rich progress bar; elsewhere (CI, pipes) it prints one line at most every
    ``every_s`` seconds and a final line. ``THRIFTY_PROGRESS=0`` silences it. ``start`` units count as done
    already (a resumed run) but not towards the rate the ETA comes from. A training loop that cannot wrap itself
    in ``with`` may call :meth:`open` and :meth:`close`.
    """

    def __init__(self, total: int, desc: str, stream: TextIO | None = None, every_s: float = 10.0,
                 enabled: bool | None = None, start: int = 0) -> None:
        self.total = max(0, int(total))
        self.desc = desc
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.enabled = os.environ.get("THRIFTY_PROGRESS", "1") != "0" if enabled is None else enabled
        self.start = max(0, int(start))
        self.done = self.start
        self.note = ""
        self._bar = None
        self._task = None
        self._closed = False
        self._written: tuple[int, str] | None = None
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
            self._task = self._bar.add_task(self.desc, total=self.total, completed=self.start, note="")
            atexit.register(self._stop_bar)  # a run that dies mid-loop still gives the terminal back
        return self

    def open(self) -> Progress:
        """Start showing progress (the same as entering the ``with`` block)."""
        return self.__enter__()

    def advance(self, n: int = 1, note: str = "", force: bool = False) -> None:
        """Mark ``n`` more units done; ``note`` is a short status shown beside the bar. ``force`` writes a line
        now (an evaluation's result), kept above the bar on a terminal."""
        self.done += n
        self.note = note or self.note
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=n, note=self.note)
            if force:
                self._bar.console.print(self.line(), markup=False, highlight=False)
            return
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            self._write()

    def line(self) -> str:
        """The plain progress line: done/total, elapsed, the ETA at the rate of this run so far, and the note."""
        elapsed = time.monotonic() - self._t0
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = max(0.0, self.total - self.done) / rate if rate > 0 else float("nan")
        eta_s = f", eta {eta:.0f}s" if eta == eta else ""
        note = f" — {self.note}" if self.note else ""
        return f"{self.desc}: {self.done}/{self.total} ({elapsed:.0f}s{eta_s}){note}"

    def _write(self) -> None:
        self._written = (self.done, self.note)
        self.stream.write(self.line() + "\n")
        self.stream.flush()

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            atexit.unregister(self._stop_bar)

    def __exit__(self, *exc: object) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._stop_bar()
        elif self.enabled and self._written != (self.done, self.note):  # not the line just written again
            self._write()

    def close(self) -> None:
        """Stop showing progress (the same as leaving the ``with`` block): the final line, or the bar stopped."""
        self.__exit__(None, None, None)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

