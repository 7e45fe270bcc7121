"""Masked-diffusion SFT on 4×4 Sudoku: checkpoints resume exactly, the log never repeats a step, evaluation works."""

from __future__ import annotations

import json

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.sft import DlmSFTConfig, encode, train_sft

TINY = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_train": 50, "n_eval": 4, "batch_size": 8,
        "eval_every": 1000}


def _weights(run):
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoint" / "model.safetensors"))


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    straight = tmp_path / "straight"
    res = train_sft(DlmSFTConfig(run_dir=str(straight), steps=6, checkpoint_every=3, **TINY), progress=False)
    assert res["step"] == 6 and 0.0 <= res["reward"] <= 1.0 and res["nfe"] == 16.0
    halves = tmp_path / "halves"
    train_sft(DlmSFTConfig(run_dir=str(halves), steps=3, checkpoint_every=3, **TINY), progress=False)
    with (halves / "metrics.jsonl").open("a") as f:  # a crash after step 4 logged, before its checkpoint
        f.write(json.dumps({"step": 4, "loss": 0.0}) + "\n")
    train_sft(DlmSFTConfig(run_dir=str(halves), steps=6, checkpoint_every=3, **TINY), progress=False)
    a, b = _weights(straight), _weights(halves)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(ln)["step"] for ln in (halves / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert not (halves / "checkpoint.tmp").exists() and (halves / "config.yaml").exists()


def test_encoding_and_bad_configs():
    assert encode("1200340000000000") == [1, 2, 0, 0, 3, 4] + [0] * 10 + [5] + [6] * 16
    with pytest.raises(ConfigError, match="task"):
        DlmSFTConfig(task="chess")
    with pytest.raises(ConfigError, match="steps"):
        DlmSFTConfig(steps=0)
