"""A few steps of every algorithm on a tiny SFT model: the loop runs, logs, checkpoints and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.loop import train_rl
from thrifty.dlm.sft import DlmSFTConfig, train_sft

TINY_SFT = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_train": 60, "n_eval": 4, "batch_size": 8,
            "eval_every": 1000, "steps": 3, "checkpoint_every": 3}
SMALL = {"n_train": 40, "n_eval": 4, "eval_every": 2, "checkpoint_every": 2, "prompts_per_step": 2,
         "group_size": 3, "mu": 2, "pair_prompts": 6, "pair_samples": 4, "pair_batch": 3, "mc_n": 2,
         "sft_batch": 4, "rollout_temperature": 1.5}


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("sft")
    train_sft(DlmSFTConfig(run_dir=str(run), **TINY_SFT), progress=False)
    return run


def _weights(run, name="model"):
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoint" / f"{name}.safetensors"))


@pytest.mark.parametrize("algo,extra", [
    ("diffu_grpo", {}),
    ("diffpo", {}),
    ("diffpo", {"joint_sampler": True, "nfe_price": 0.1}),
    ("wd1", {}),
    ("diffu_grpo", {"rollout_micro_batch": 3}),
    ("dtrpo", {}),
    ("dtrpo", {"pref_estimator": "replay"}),
    ("vrpo", {}),
    ("sft", {}),
])
def test_each_algorithm_takes_steps_logs_and_changes_the_weights(sft_run, tmp_path, algo, extra):
    cfg = DlmRLConfig(algo=algo, init_run=str(sft_run), run_dir=str(tmp_path / "rl"), steps=4, **SMALL, **extra)
    res = train_rl(cfg, progress=False)
    assert res["step"] == 4 and 0.0 <= res["eval_reward"] <= 1.0 and res["forward"]["rows"] > 0
    records = [json.loads(ln) for ln in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["step"] == 0 and "eval_reward" in records[0]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records[1:])
    before, after = _weights(sft_run), _weights(tmp_path / "rl")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    if extra.get("joint_sampler"):
        assert "eval_adaptive_nfe" in records[-1] and "gamma_mean" in records[-1]
    if algo in ("dtrpo", "vrpo"):
        assert (tmp_path / "rl" / "pairs.safetensors").is_file() and records[0]["pairs"] >= 1


def test_a_resumed_run_matches_an_uninterrupted_one(sft_run, tmp_path):
    base = {"algo": "diffu_grpo", "init_run": str(sft_run), **SMALL}
    train_rl(DlmRLConfig(run_dir=str(tmp_path / "a"), steps=4, **base), progress=False)
    train_rl(DlmRLConfig(run_dir=str(tmp_path / "b"), steps=2, **base), progress=False)
    train_rl(DlmRLConfig(run_dir=str(tmp_path / "b"), steps=4, **base), progress=False)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 2, 4]


def test_sampler_only_training_leaves_the_policy_alone(sft_run, tmp_path):
    cfg = DlmRLConfig(algo="diffpo", init_run=str(sft_run), run_dir=str(tmp_path / "s"), steps=2, joint_sampler=True,
                      train_policy=False, **SMALL)
    train_rl(cfg, progress=False)
    before, after = _weights(sft_run), _weights(tmp_path / "s")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "s" / "checkpoint" / "head.safetensors").is_file()


def test_bad_configs_are_one_line_errors(sft_run):
    with pytest.raises(ConfigError, match="unknown algo"):
        DlmRLConfig(algo="ppo")
    with pytest.raises(ConfigError, match="group_size"):
        DlmRLConfig(group_size=1)
    with pytest.raises(ConfigError, match="nothing to train"):
        DlmRLConfig(train_policy=False)
    with pytest.raises(ConfigError, match="no checkpoint"):
        train_rl(DlmRLConfig(init_run=str(sft_run / "missing")), progress=False)


@pytest.mark.parametrize("algo", ["diffu_grpo", "dtrpo"])
def test_accelerate_launch_on_two_processes_shares_the_updates(sft_run, tmp_path, algo):
    import os
    import subprocess
    import sys

    sets = [a for k, v in {**SMALL, "prompts_per_step": 2, "pair_batch": 4}.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    # torchrun starts two real processes (`accelerate launch --cpu` alone would start one)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                           "thrifty.cli.main", "dlm", "rl", "--algo", algo, "--init-run", str(sft_run), "--run-dir",
                           str(tmp_path / "rl"), "--steps", "4", *sets],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert steps == ([0, 2, 4] if algo == "diffu_grpo" else [0, 1, 2, 3, 4])  # logged once, by the main process
    before, after = _weights(sft_run), _weights(tmp_path / "rl")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_dlm_pairs_writes_a_pairs_file_the_loop_can_reuse(sft_run, tmp_path, capsys):
    from thrifty.cli.main import main

    out = tmp_path / "pairs.safetensors"
    assert main(["dlm", "pairs", "--run-dir", str(sft_run), "--out", str(out), "--prompts", "6", "--samples", "4",
                 "--temperature", "1.5"]) == 0
    assert "pairs from 6 prompts" in capsys.readouterr().out and out.is_file()
    cfg = DlmRLConfig(algo="dtrpo", init_run=str(sft_run), run_dir=str(tmp_path / "rl"), steps=2, pairs_file=str(out),
                      **SMALL)
    assert train_rl(cfg, progress=False)["step"] == 2 and not (tmp_path / "rl" / "pairs.safetensors").exists()
    assert main(["dlm", "pairs", "--run-dir", str(sft_run), "--out", str(out), "--samples", "1"]) == 1
