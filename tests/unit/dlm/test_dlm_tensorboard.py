"""`tensorboard: true` on tiny SFT and RL runs: the event files under <run_dir>/tb hold exactly what metrics.jsonl
holds (every numeric field, float32-rounded, at the record's step)."""

from __future__ import annotations

import json
import math
import struct

from thrifty.core.tb_events import read_events
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.loop import train_rl
from thrifty.dlm.sft import DlmSFTConfig, train_sft

TINY = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_train": 50, "n_eval": 4, "batch_size": 8,
        "eval_every": 2, "steps": 3, "checkpoint_every": 3}
SMALL_RL = {"algo": "sft", "n_train": 40, "n_eval": 4, "eval_every": 2, "checkpoint_every": 2, "sft_batch": 4,
            "steps": 3}


def _expected(run):
    """(step, scalars) per metrics.jsonl record, as the event files should hold them."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out.append((rec.pop("step"), {k: struct.unpack("<f", struct.pack("<f", v))[0] for k, v in rec.items()
                                      if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}))
    return out


def _logged(run):
    files = sorted((run / "tb").iterdir())
    return [(e["step"], e["scalars"]) for f in files for e in read_events(f)]


def test_sft_and_rl_runs_mirror_their_metrics_to_tensorboard(tmp_path):
    sft = tmp_path / "sft"
    train_sft(DlmSFTConfig(run_dir=str(sft), tensorboard=True, **TINY), progress=False)
    logged, expected = _logged(sft), _expected(sft)
    assert [s for s, _ in logged] == [1, 2, 3] and logged == expected
    assert "eval_reward" in logged[1][1] and "loss" in logged[0][1]

    rl = tmp_path / "rl"
    rl.mkdir()
    (rl / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1}\n')  # an attempt that died before its checkpoint
    train_rl(DlmRLConfig(init_run=str(sft), run_dir=str(rl), tensorboard=True, **SMALL_RL), progress=False)
    logged, expected = _logged(rl), _expected(rl)
    assert [s for s, _ in logged] == [0, 1, 2, 3] and logged == expected
    assert "eval_reward" in logged[0][1] and "cpu_s" in logged[1][1]


def test_no_event_files_unless_asked(tmp_path):
    train_sft(DlmSFTConfig(run_dir=str(tmp_path), **{**TINY, "steps": 1}), progress=False)
    assert (tmp_path / "metrics.jsonl").is_file() and not (tmp_path / "tb").exists()
