"""The no-dependency TensorBoard writer is read by the real `tensorboard` package (dev extra): every scalar of
every step comes back, resumed runs included."""

from __future__ import annotations

import pytest

from thrifty.core.metrics_log import MetricsLog

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _scalars(log_dir):
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_reads_the_event_files_a_training_run_writes(tmp_path):
    with MetricsLog(tmp_path, tensorboard=True) as log:
        for step in range(1, 4):
            log.write({"step": step, "loss": 1.0 / step, "reward": 0.25 * step, "note": "text is skipped"})
    got = _scalars(tmp_path / "tb")
    assert set(got) == {"loss", "reward"}
    assert [s for s, _ in got["loss"]] == [1, 2, 3]
    assert [v for _, v in got["loss"]] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [v for _, v in got["reward"]] == pytest.approx([0.25, 0.5, 0.75])
