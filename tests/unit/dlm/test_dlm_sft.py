"""Masked-diffusion SFT on 4×4 Sudoku: checkpoints resume exactly, the log never repeats a step, evaluation works."""

from __future__ import annotations

import json

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.sft import DlmSFTConfig, train_sft
from thrifty.dlm.tasks import CharVocab, DlmExample, get_task

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
    task = get_task("sudoku4")
    ex = DlmExample("1200340000000000", "1234341221434321")
    assert task.prompt_ids(ex) == [1, 2, 0, 0, 3, 4] + [0] * 10 + [5]
    assert task.answer_ids(ex) == [1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1]
    assert (task.vocab.sep_id, task.vocab.mask_id, task.vocab.size) == (5, 6, 7)
    with pytest.raises(ConfigError, match="task"):
        DlmSFTConfig(task="chess")
    with pytest.raises(ConfigError, match="steps"):
        DlmSFTConfig(steps=0)


def test_char_vocab_pads_with_eos_and_decodes_up_to_it():
    v = CharVocab("0123456789+=", eos=True)
    assert (v.sep_id, v.mask_id, v.eos_id, v.size, v.pad_id) == (12, 13, 14, 15, 14)
    assert v.encode("12+3") == [1, 2, 10, 3]
    assert v.decode([1, 2, 12, 13, 3, 14, 5]) == "123"  # SEP and MASK dropped, stops at EOS
    with pytest.raises(ConfigError, match="not in the vocabulary"):
        v.encode("1*2")
    with pytest.raises(ConfigError, match="distinct"):
        CharVocab("aa")
    with pytest.raises(ConfigError, match="unknown dlm task"):
        get_task("chess")


def test_sample_and_eval_commands_on_a_tiny_run(tmp_path, capsys):
    from thrifty.cli.main import main

    run = tmp_path / "run"
    train_sft(DlmSFTConfig(run_dir=str(run), steps=2, checkpoint_every=2, **TINY), progress=False)
    assert main(["dlm", "sample", "--run-dir", str(run), "--prompt", "1200340000000000", "--sampler", "threshold",
                 "--show-steps"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1200340000000000 -> ") and "NFE" in out[0] and out[1].startswith("  steps: ")
    assert len(out[1].split()) == 17  # "steps:" and one step per answer token
    assert main(["dlm", "sample", "--run-dir", str(run), "--prompt", "12x0"]) == 1
    assert "not in the vocabulary" in capsys.readouterr().err
    assert main(["dlm", "eval", "--run-dir", str(run), "--n", "4"]) == 0
    assert "| threshold 0.9 |" in capsys.readouterr().out and (run / "sampler_eval.png").is_file()


def test_sample_reaches_the_kv_cache_and_the_answer_constraints(tmp_path, capsys):
    from thrifty.cli.main import main

    run = tmp_path / "run"
    train_sft(DlmSFTConfig(run_dir=str(run), steps=2, checkpoint_every=2, **TINY), progress=False)
    base = ["dlm", "sample", "--run-dir", str(run), "--prompt", "1200340000000000", "--block-len", "4"]
    assert main([*base, "--cache", "dual", "--valid-only", "--no-special"]) == 0
    answer = capsys.readouterr().out.split(" -> ")[1].split()[0]
    assert len(answer) == 16 and set(answer) <= set("1234")  # only the task's valid symbols
    assert main([*base, "--cache", "prefix", "--cache-refresh", "1"]) == 0
    assert "NFE" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse refuses it
        main([*base, "--cache", "nope"])
    capsys.readouterr()
    assert main([*base, "--min-len", "-1"]) == 1
    assert "min_len" in capsys.readouterr().err
