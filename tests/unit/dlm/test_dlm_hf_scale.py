"""Scaling `dlm rl --hf-model` up: gradient checkpointing (on, recomputing, same losses), DiFFPO's γ head on a Hugging
Face backbone, and a real two-process run (torchrun, CPU gloo) that follows the one-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _dlm_hf_tiny import rl_config, write_user_files

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.loop import train_rl

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # PEFT / transformers 5 renames
SMALL = {"n_eval": 2, "gen_len": 4, "max_prompt_len": 32, "lora_r": 4, "lora_alpha": 8.0,
         "prompts_per_step": 2, "group_size": 3, "mu": 2, "eval_every": 2, "checkpoint_every": 2,
         "rollout_temperature": 1.5, "lr": 1e-2, "pair_prompts": 8, "pair_samples": 4, "pair_batch": 2}


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    return write_user_files(tmp_path_factory.mktemp("hf_scale"))


def _cfg(user_files, run, algo="diffu_grpo", steps=2, **extra):
    return rl_config(user_files, run, algo=algo, steps=steps, **{**SMALL, **extra})


def _records(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def _adapter(run):
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoint" / "adapter.safetensors"))


@pytest.fixture()
def spy(monkeypatch):
    from thrifty.dlm import hf_train

    seen, real = [], hf_train.hf_setup
    monkeypatch.setattr(hf_train, "hf_setup", lambda cfg, device=None: seen.append(real(cfg, device)) or seen[-1])
    return seen


def test_gradient_checkpointing_recomputes_and_trains_to_the_same_losses(user_files, tmp_path, spy):
    train_rl(_cfg(user_files, tmp_path / "plain", steps=4), progress=False)
    train_rl(_cfg(user_files, tmp_path / "ckpt", steps=4, gradient_checkpointing=True), progress=False)
    plain, ckpt = _records(tmp_path / "plain"), _records(tmp_path / "ckpt")
    assert "checkpointing_modules" not in plain[0] and ckpt[0]["checkpointing_modules"] >= 2  # BERT: both layers
    assert [r["step"] for r in ckpt] == [r["step"] for r in plain] == [0, 2, 4]
    for a, b in zip(plain[1:], ckpt[1:], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-7) and b["reward"] == a["reward"]
    a, b = _adapter(tmp_path / "plain"), _adapter(tmp_path / "ckpt")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # the layers really recompute in the backward pass: the attention of layer 0 runs twice per training forward
    policy = spy[1].policy
    attention = policy.model.get_base_model().bert.encoder.layer[0].attention
    calls = []
    handle = attention.register_forward_hook(lambda *_: calls.append(1))
    x = torch.tensor([spy[1].task.prompt_ids(spy[1].task.examples("test", 1)[0]) + [policy.mask_id] * 4])
    logits = policy(x)
    forward_calls = len(calls)
    logits.float().logsumexp(-1).sum().backward()
    handle.remove()
    assert forward_calls == 1 and len(calls) == 2
    assert not policy.training and not attention.training  # dropout stays off


def test_gradient_checkpointing_is_for_hf_runs_only():
    with pytest.raises(ConfigError, match="gradient_checkpointing is for hf_model"):
        DlmRLConfig(gradient_checkpointing=True)


def test_the_diffpo_gamma_head_trains_on_a_hugging_face_backbone(user_files, tmp_path, spy):
    from safetensors.torch import load_file

    from thrifty.dlm.rl.rollout import SamplerHead, hidden_size

    run = tmp_path / "joint"
    train_rl(_cfg(user_files, run, "diffpo", steps=4, joint_sampler=True, nfe_price=0.1), progress=False)
    assert hidden_size(spy[0].policy) == 32  # the BERT config's hidden_size
    records = _records(run)
    assert all("gamma_mean" in r for r in records[1:]) and "eval_adaptive_nfe" in records[-1]
    head = load_file(str(run / "checkpoint" / "head.safetensors"))
    fresh = SamplerHead(32, DlmRLConfig().gamma_grid, torch.Generator().manual_seed(3)).state_dict()
    assert head["proj.weight"].shape == (5, 32) and not torch.equal(head["proj.weight"], fresh["proj.weight"])
    assert (run / "adapter").is_dir()


def test_two_processes_follow_one_process_on_an_hf_model(user_files, tmp_path):
    """dTRPO with the deterministic replay scores: both runs build the same pairs from the shared generator and
    draw the same global minibatches; each process scores half, and the averaged LoRA gradients equal the
    one-process gradients up to rounding."""
    from safetensors.torch import load_file

    extra = {"pref_estimator": "replay"}
    model, prompts, rewards = user_files
    train_rl(_cfg(user_files, tmp_path / "one", "dtrpo", steps=3, **extra), progress=False)
    sets = [a for k, v in {**SMALL, **extra}.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "thrifty.cli.main", "dlm", "rl", "--algo", "dtrpo", "--hf-model", str(model),
                           "--prompts-file", str(prompts), "--reward", f"{rewards}:match_target", "--run-dir",
                           str(tmp_path / "two"), "--steps", "3", *sets],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = (load_file(str(tmp_path / r / "pairs.safetensors")) for r in ("one", "two"))
    assert all(torch.equal(one[k], two[k]) for k in one) and len(one["prompt_ids"]) >= 2
    a, b = _adapter(tmp_path / "one"), _adapter(tmp_path / "two")
    assert any(bool(v.abs().sum() > 0) for k, v in a.items() if "lora_B" in k)  # it trained
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    ra, rb = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert [r["step"] for r in rb] == [r["step"] for r in ra] == [0, 1, 2, 3]  # logged once, by the main process
    assert rb[-1]["eval_reward"] == pytest.approx(ra[-1]["eval_reward"])
