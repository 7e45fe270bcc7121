"""`dlm rl --hf-model` on a tiny random BERT masked LM saved offline: LoRA trains, the base model stays bit for bit,
the reference is the adapter-off model, the adapter is what the checkpoint saves, and it reloads with PEFT."""

from __future__ import annotations

import json

import pytest
import torch
from _dlm_hf_tiny import rl_config, write_user_files

from thrifty.dlm.rl.loop import train_rl

pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")  # PEFT ↔ transformers 5
SMALL = {"n_eval": 2, "gen_len": 4, "max_prompt_len": 32, "lora_r": 4, "lora_alpha": 8.0,
         "prompts_per_step": 2, "group_size": 3, "mu": 2, "eval_every": 2, "checkpoint_every": 2,
         "rollout_temperature": 1.5, "lr": 1e-2, "pair_prompts": 4, "pair_samples": 4, "pair_batch": 2}


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    return write_user_files(tmp_path_factory.mktemp("hf_rl"))


def _cfg(user_files, run, algo="diffu_grpo", steps=4, **extra):
    return rl_config(user_files, run, algo=algo, steps=steps, **{**SMALL, **extra})


@pytest.fixture()
def spy(monkeypatch):
    """Keeps the in-memory policy and reference the loop trains (the loop imports hf_setup when it runs)."""
    from thrifty.dlm import hf_train

    seen = []
    real = hf_train.hf_setup

    def recording(cfg, device=None):
        seen.append(real(cfg, device))
        return seen[-1]

    monkeypatch.setattr(hf_train, "hf_setup", recording)
    return seen


@pytest.mark.parametrize("algo", ["diffu_grpo", "dtrpo", "diffpo", "vrpo"])
def test_lora_trains_the_base_stays_and_the_reference_is_the_adapter_off_model(user_files, tmp_path, spy, algo):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForMaskedLM

    run = tmp_path / "rl"
    res = train_rl(_cfg(user_files, run, algo), progress=False)
    assert res["step"] == 4 and res["forward"]["rows"] > 0
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["lora_modules"] == 13 and records[0]["prompt_len"] > 0  # 2 layers × 6 linears + MLM transform
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records[1:])
    hf = spy[0]
    base = AutoModelForMaskedLM.from_pretrained(user_files[0]).eval()
    peft_model = hf.policy.model
    # the base weights are bit-identical to the checkpoint on disk; only LoRA weights moved
    trained_base = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                    for k, v in peft_model.state_dict().items() if "lora_" not in k}
    original = base.state_dict()
    assert set(original) <= set(trained_base) and all(torch.equal(original[k], trained_base[k]) for k in original)
    lora = {k: v for k, v in peft_model.state_dict().items() if "lora_B" in k}
    assert lora and any(bool(v.abs().sum() > 0) for v in lora.values())  # PEFT starts B at zero: it trained
    assert "cls.predictions.decoder" not in " ".join(peft_model.targeted_module_names)  # the output head is not LoRA'd
    # the reference is the base model (the adapter off), and differs from the trained policy
    x = torch.tensor([hf.task.prompt_ids(hf.task.examples("test", 1)[0]) + [hf.task.vocab.mask_id] * 4])
    with torch.no_grad():
        ref, plain = hf.ref(x), base(input_ids=x).logits
        hf.policy.eval()
        policy = hf.policy(x)
    assert torch.equal(ref, plain) and not torch.allclose(policy, plain)
    assert hf.policy.model.active_adapters == ["default"]  # the adapter is back on after the reference call
    # the checkpoint saves the adapter only; <run>/adapter reloads with PEFT and gives the trained policy
    ck = load_file(str(run / "checkpoint" / "adapter.safetensors"))
    assert ck and all("lora_" in k for k in ck) and not (run / "checkpoint" / "model.safetensors").exists()
    reloaded = PeftModel.from_pretrained(AutoModelForMaskedLM.from_pretrained(user_files[0]), run / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=x).logits, policy, atol=1e-6)
    if algo in ("dtrpo", "vrpo"):
        assert (run / "pairs.safetensors").is_file() and records[0]["pairs"] >= 1


def test_an_hf_run_resumes_exactly(user_files, tmp_path):
    from safetensors.torch import load_file

    train_rl(_cfg(user_files, tmp_path / "a"), progress=False)
    train_rl(_cfg(user_files, tmp_path / "b", steps=2), progress=False)
    train_rl(_cfg(user_files, tmp_path / "b"), progress=False)
    a, b = (load_file(str(tmp_path / r / "checkpoint" / "adapter.safetensors")) for r in ("a", "b"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 2, 4]


def test_dlm_rl_cli_takes_a_model_a_prompt_file_and_rewards(user_files, tmp_path, capsys):
    from thrifty.cli.main import main

    model, prompts, rewards = user_files
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    argv = ["dlm", "rl", "--algo", "diffu_grpo", "--hf-model", str(model), "--prompts-file", str(prompts),
            "--reward", f"{rewards}:match_target", "--reward", f"{rewards}:skip_all", "--run-dir",
            str(tmp_path / "rl"), "--steps", "2", *sets]
    assert main(argv) == 0
    assert "diffu_grpo: step 2" in capsys.readouterr().out
    saved = (tmp_path / "rl" / "config.yaml").read_text()
    assert "match_target" in saved and "skip_all" in saved and (tmp_path / "rl" / "adapter").is_dir()
    assert main([*argv[:-len(sets) - 4], "--reward", f"{rewards}:nope", "--run-dir", str(tmp_path / "x")]) == 1
    assert "has no attribute 'nope'" in capsys.readouterr().err
