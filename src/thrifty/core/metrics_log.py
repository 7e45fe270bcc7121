"""A training run's metric log: one JSON line per record in ``<run_dir>/metrics.jsonl``, optionally mirrored to
TensorBoard event files under ``<run_dir>/tb/`` (``tensorboard --logdir <run_dir>/tb``; no tensorboard package needed).

On resume the JSON log is cut back to the checkpoint's step (:func:`~thrifty.core.checkpoint.trim_metrics`), so it
never repeats a step. Event files are append-only: a resumed run starts a new one beside the old, and steps logged
after the checkpoint by the interrupted run stay in the old file. TensorBoard reads a folder's event files in name
(= start time) order and, when steps go back, shows the resumed run's points in place of the stale ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thrifty.core.checkpoint import trim_metrics
from thrifty.core.tb_events import EventWriter


class MetricsLog:
    """Append records to ``<run_dir>/metrics.jsonl``; ``resume_step`` (when given) first drops the lines logged after
    it. With ``tensorboard``, every numeric field but ``step`` of each record also goes to ``<run_dir>/tb/`` at the
    record's ``step`` (the event file is created at the first record). Call :meth:`flush` before a checkpoint and
    :meth:`close` at the end, or use ``with``."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = False) -> None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is not None:
            trim_metrics(self.path, resume_step)
        self._file = self.path.open("a")
        self.tb_dir = Path(run_dir) / "tb" if tensorboard else None
        self.tb: EventWriter | None = None

    def write(self, record: dict[str, Any]) -> None:
        """One JSON line (and, with TensorBoard, one event at ``record["step"]``)."""
        self._file.write(json.dumps(record) + "\n")
        if self.tb_dir is not None:
            self.tb = self.tb or EventWriter(self.tb_dir)
            self.tb.add_scalars(int(record["step"]), {k: v for k, v in record.items() if k != "step"})

    def flush(self) -> None:
        self._file.flush()
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        self._file.close()
        if self.tb is not None:
            self.tb.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MetricsLog"]
