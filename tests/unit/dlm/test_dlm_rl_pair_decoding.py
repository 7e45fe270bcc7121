"""``pair_decoding``: preference pairs decoded like rollouts (the default, unchanged) or like evaluation (the greedy
one-token-a-step low-confidence decoder, tokens drawn at a temperature), and dTRPO's blocks following the pairs'."""

from __future__ import annotations

import pytest
import torch
from _toy_models import PositionTable

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.dtrpo import PreferenceUpdate, decoded_in_blocks
from thrifty.dlm.rl.pairs import build_pairs, decoding_block_len, load_pairs, pair_sampler, sample_pairs
from thrifty.dlm.rl.rollout import rollout_sampler
from thrifty.dlm.run import default_sampler
from thrifty.dlm.sft import DlmSFTConfig, train_sft
from thrifty.dlm.tasks import get_task


def _setup():
    task = get_task("sudoku4")
    return task, PositionTable(task.vocab.size, task.seq_len)


def _is_permutation(steps: torch.Tensor) -> bool:
    return bool((steps.sort(dim=1).values == torch.arange(steps.shape[1])).all())


def test_the_default_is_the_rollout_decoding_and_unchanged():
    task, model = _setup()
    assert DlmRLConfig().pair_decoding == "rollout"
    sampler = pair_sampler(task, temperature=2.0)
    assert (sampler.steps, sampler.block_len, sampler.temperature) == (8, 4, 2.0)
    new, new_stats = sample_pairs(model, task, 6, 4, torch.Generator().manual_seed(0), temperature=2.0)
    # what sample_pairs built before the option existed: the rollout sampler, prompts drawn with seed + 7
    old, old_stats = build_pairs(model, task, task.examples("train", 6, seed=7), 4, rollout_sampler(task, 8, 4, 2.0),
                                 torch.Generator().manual_seed(0), 0.0, 4, 2.0)
    assert new_stats == old_stats
    assert all(torch.equal(getattr(new, k), getattr(old, k)) for k in ("prompt_ids", "chosen", "chosen_steps",
                                                                     "rejected", "rejected_steps"))
    assert bool((new.chosen_steps.amax(dim=1) == 7).all()) and decoded_in_blocks(new.chosen_steps, 4)


def test_eval_decoded_pairs_go_one_token_a_step_in_the_evaluators_order():
    task, model = _setup()
    sampler = pair_sampler(task, "eval", temperature=2.0)
    greedy = default_sampler(task)
    assert (sampler.steps, sampler.block_len, sampler.remasking) == (greedy.steps, greedy.block_len, greedy.remasking)
    assert sampler.temperature == 2.0 and decoding_block_len(sampler, task) == task.answer_len
    pairs, stats = sample_pairs(model, task, 6, 4, torch.Generator().manual_seed(0), temperature=2.0, decoding="eval")
    assert stats["sample_nfe"] == task.answer_len and len(pairs) >= 1
    for steps in (pairs.chosen_steps, pairs.rejected_steps):
        assert _is_permutation(steps)  # one token a step, 16 steps, one block
    assert not decoded_in_blocks(torch.cat([pairs.chosen_steps, pairs.rejected_steps]), 4)
    # the temperature-0 limit is the evaluator itself: the same tokens, committed most confident first
    prompts = torch.tensor([task.prompt_ids(ex) for ex in task.examples("test", 3, seed=1)])
    at_zero = pair_sampler(task, "eval", temperature=0.0).sample(model, prompts, task.answer_len,
                                                                   torch.Generator().manual_seed(5))
    evaluated = greedy.sample(model, prompts, task.answer_len, torch.Generator().manual_seed(9))
    assert torch.equal(at_zero.tokens, evaluated.tokens) and torch.equal(at_zero.step_map, evaluated.step_map)
    logits = model.table[prompts.shape[1]:].clone()
    logits[:, task.vocab.mask_id] = float("-inf")
    confidence = torch.softmax(logits.double(), dim=-1).amax(dim=-1)
    order = confidence.argsort(descending=True)
    assert at_zero.step_map[0, order].tolist() == list(range(task.answer_len))


def test_eval_decoding_keeps_the_sft_runs_evaluation_blocks():
    task, model = _setup()
    sampler = pair_sampler(task, "eval", temperature=2.0, eval_block_len=8)
    assert decoding_block_len(sampler, task) == 8
    pairs, _ = sample_pairs(model, task, 4, 4, torch.Generator().manual_seed(1), temperature=2.0, decoding="eval",
                            eval_block_len=8)
    assert _is_permutation(pairs.chosen_steps) and decoded_in_blocks(pairs.chosen_steps, 8)


def test_bad_pair_decodings_are_one_line_errors():
    task, _ = _setup()
    with pytest.raises(ConfigError, match="unknown pair_decoding 'greedy'; choose one of rollout, eval") as err:
        DlmRLConfig(pair_decoding="greedy")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown pair decoding"):
        pair_sampler(task, "greedy")


def test_dtrpo_refuses_pairs_not_decoded_in_its_blocks():
    task, model = _setup()
    pairs, _ = sample_pairs(model, task, 6, 4, torch.Generator().manual_seed(0), temperature=2.0, decoding="eval")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    cfg = DlmRLConfig(algo="dtrpo")
    with pytest.raises(ConfigError, match="not decoded block by block in blocks of 4") as err:
        PreferenceUpdate(cfg, task, model, model, opt, pairs)  # rollout blocks for one-block pairs
    assert "\n" not in str(err.value)
    assert PreferenceUpdate(cfg, task, model, model, opt, pairs, block_len=16).block_len == 16
    # the other scores do not re-mask by blocks, so any decoding is fine for them
    assert PreferenceUpdate(DlmRLConfig(algo="vrpo"), task, model, model, opt, pairs).block_len == 4


TINY_SFT = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_train": 60, "n_eval": 4, "batch_size": 8,
            "eval_every": 1000, "steps": 3, "checkpoint_every": 3}
SMALL = {"n_train": 40, "n_eval": 4, "eval_every": 2, "checkpoint_every": 2, "pair_prompts": 6, "pair_samples": 4,
         "pair_batch": 3, "mc_n": 2, "rollout_temperature": 1.5}


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("sft_pairs")
    train_sft(DlmSFTConfig(run_dir=str(run), **TINY_SFT), progress=False)
    return run


@pytest.mark.parametrize("algo", ["dtrpo", "vrpo"])
def test_the_loop_builds_eval_decoded_pairs_and_scores_them_in_one_block(sft_run, tmp_path, algo):
    from safetensors import safe_open

    from thrifty.dlm.rl.loop import train_rl

    cfg = DlmRLConfig(algo=algo, init_run=str(sft_run), run_dir=str(tmp_path / "rl"), steps=2, pair_decoding="eval",
                      **SMALL)
    res = train_rl(cfg, progress=False)
    assert res["step"] == 2 and 0.0 <= res["eval_reward"] <= 1.0
    path = tmp_path / "rl" / "pairs.safetensors"
    pairs = load_pairs(path)
    assert _is_permutation(pairs.chosen_steps) and _is_permutation(pairs.rejected_steps)
    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["pair_decoding"] == "eval"


def test_dlm_pairs_decodes_like_evaluation_and_the_loop_checks_the_blocks(sft_run, tmp_path, capsys):
    from thrifty.cli.main import main
    from thrifty.dlm.rl.loop import train_rl

    out = tmp_path / "pairs.safetensors"
    assert main(["dlm", "pairs", "--run-dir", str(sft_run), "--out", str(out), "--prompts", "6", "--samples", "4",
                 "--temperature", "1.5", "--decoding", "eval"]) == 0
    assert "eval decoding" in capsys.readouterr().out
    assert _is_permutation(load_pairs(out).chosen_steps)
    base = {"algo": "dtrpo", "init_run": str(sft_run), "steps": 1, "pairs_file": str(out), **SMALL}
    assert train_rl(DlmRLConfig(run_dir=str(tmp_path / "ok"), pair_decoding="eval", **base), progress=False)["step"] == 1
    with pytest.raises(ConfigError, match="not decoded block by block"):
        train_rl(DlmRLConfig(run_dir=str(tmp_path / "bad"), **base), progress=False)
