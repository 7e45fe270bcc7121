"""``pair_chosen: gold`` (the reference answer against the worst sample, its steps in the reference's confidence
order or a random order) and ``rpo_alpha`` (RPO's NLL term on the chosen side)."""

from __future__ import annotations

import pytest
import torch
from _toy_models import PositionTable

from thrifty.core.errors import ConfigError
from thrifty.dlm.model import DiffusionLM, DiffusionLMConfig
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.dtrpo import PreferenceUpdate
from thrifty.dlm.rl.losses import rpo_nll
from thrifty.dlm.rl.pairs import build_pair_sets, build_pairs, gold_step_map, pair_sampler
from thrifty.dlm.rl.trajectory import decoded_in_blocks
from thrifty.dlm.tasks import get_task


def _gold(task, n=5):
    exs = task.examples("train", n, seed=3)
    prompts = torch.tensor([task.prompt_ids(ex) for ex in exs])
    return exs, prompts, torch.tensor([task.answer_ids(ex) for ex in exs])


def test_gold_steps_follow_the_models_confidence_in_the_gold_tokens_block_by_block():
    task = get_task("sudoku4")
    model = PositionTable(task.vocab.size, task.seq_len)
    _, prompts, gold = _gold(task)
    sampler = pair_sampler(task, "rollout", 1.0)  # 4 blocks of 4, 8 steps: 2 tokens a step
    steps = gold_step_map(model, prompts, gold, sampler, torch.Generator().manual_seed(0))
    assert decoded_in_blocks(steps, 4)
    logp = torch.log_softmax(model.table[prompts.shape[1]:].double(), dim=-1)  # answer positions
    for row, ans in zip(steps, gold, strict=True):
        for b in range(4):
            conf = logp[torch.arange(4 * b, 4 * b + 4), ans[4 * b:4 * b + 4]]
            order = conf.argsort(descending=True)
            # the two most probable gold tokens of the block come first (step 2b), the other two next (2b + 1)
            assert row[4 * b + order[:2]].tolist() == [2 * b, 2 * b]
            assert row[4 * b + order[2:]].tolist() == [2 * b + 1, 2 * b + 1]


def test_random_gold_order_keeps_the_schedule_and_varies_with_the_generator():
    task = get_task("sudoku4")
    model = PositionTable(task.vocab.size, task.seq_len)
    _, prompts, gold = _gold(task, 16)
    sampler = pair_sampler(task, "rollout", 1.0, remasking="random")
    a = gold_step_map(model, prompts, gold, sampler, torch.Generator().manual_seed(0))
    b = gold_step_map(model, prompts, gold, sampler, torch.Generator().manual_seed(1))
    assert decoded_in_blocks(a, 4) and not torch.equal(a, b)
    assert bool((torch.stack([(a == s).sum(dim=1) for s in range(8)]) == 2).all())  # 2 tokens every step


def test_gold_pairs_hold_the_reference_answer_against_the_same_worst_sample():
    task = get_task("sudoku4")
    model = PositionTable(task.vocab.size, task.seq_len)
    exs = task.examples("train", 6, seed=7)
    sampler = pair_sampler(task, "rollout", 2.0)
    sets = build_pair_sets(model, task, exs, 4, sampler, torch.Generator().manual_seed(0), 0.0, 4, 2.0,
                           chosen=("self", "gold"))
    alone, _ = build_pairs(model, task, exs, 4, sampler, torch.Generator().manual_seed(0), 0.0, 4, 2.0)
    (own, _), (gold, stats) = sets["self"], sets["gold"]
    assert torch.equal(own.chosen, alone.chosen) and torch.equal(own.rejected, alone.rejected)  # self unchanged
    answers = {tuple(task.prompt_ids(ex)): task.answer_ids(ex) for ex in exs}
    for p, c in zip(gold.prompt_ids, gold.chosen, strict=True):
        assert c.tolist() == answers[tuple(p.tolist())]
    assert bool((gold.chosen_reward == 1.0).all()) and bool((gold.rejected_reward < 1.0).all())
    assert stats["chosen_reward"] == 1.0 and decoded_in_blocks(gold.chosen_steps, 4)
    with pytest.raises(ConfigError, match="pair_chosen"):
        build_pair_sets(model, task, exs, 4, sampler, torch.Generator(), chosen=("best",))
    with pytest.raises(ConfigError, match="pair_chosen"):
        DlmRLConfig(pair_chosen="best")


def test_rpo_nll_by_hand():
    chosen = torch.tensor([-8.0, -16.0], requires_grad=True)
    term = rpo_nll(chosen, n_tokens=16, alpha=0.5)
    assert term.item() == pytest.approx(0.5 * 12 / 16)
    term.backward()
    assert chosen.grad.tolist() == pytest.approx([-0.5 / 32, -0.5 / 32])  # raising the chosen score lowers it
    assert rpo_nll(chosen, 16, 0.0).item() == 0.0
    with pytest.raises(ConfigError):
        DlmRLConfig(rpo_alpha=-1.0)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_dtrpo_step_on_gold_pairs_adds_the_rpo_term_only_when_asked(alpha):
    task = get_task("sudoku4")
    model = DiffusionLM(DiffusionLMConfig(task.vocab.size, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64))
    ref = DiffusionLM(DiffusionLMConfig(task.vocab.size, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=64))
    ref.load_state_dict(model.state_dict())
    exs = task.examples("train", 8, seed=7)
    pairs, _ = build_pairs(model, task, exs, 4, pair_sampler(task, "rollout", 1.0), torch.Generator().manual_seed(0),
                           0.0, 4, 1.0, chosen="gold")
    cfg = DlmRLConfig(algo="dtrpo", pair_chosen="gold", rpo_alpha=alpha, pair_batch=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    taken, stats = PreferenceUpdate(cfg, task, model, ref, opt, pairs).update(None, torch.Generator().manual_seed(0))
    assert taken == 1
    if alpha:
        # policy == reference: the DPO loss is log 2 exactly, the rest is the NLL term
        assert stats["rpo_nll"] > 0 and stats["loss"] == pytest.approx(0.6931471805599453 + stats["rpo_nll"])
    else:
        assert "rpo_nll" not in stats and stats["loss"] == pytest.approx(0.6931471805599453)


def test_the_loop_builds_gold_pairs_when_asked(tmp_path):
    from safetensors import safe_open

    from thrifty.dlm.rl.loop import train_rl
    from thrifty.dlm.rl.pairs import load_pairs
    from thrifty.dlm.sft import DlmSFTConfig, train_sft

    sft = tmp_path / "sft"
    train_sft(DlmSFTConfig(run_dir=str(sft), d_model=16, n_layers=1, n_heads=2, d_ff=32, n_train=60, n_eval=4,
                           batch_size=8, eval_every=1000, steps=2, checkpoint_every=2), progress=False)
    cfg = DlmRLConfig(algo="dtrpo", init_run=str(sft), run_dir=str(tmp_path / "rl"), steps=1, n_train=40, n_eval=4,
                      pair_prompts=6, pair_samples=4, pair_batch=3, pair_chosen="gold", rpo_alpha=0.5)
    assert train_rl(cfg, progress=False)["step"] == 1
    pairs = load_pairs(tmp_path / "rl" / "pairs.safetensors")
    task = get_task("sudoku4")
    answers = {tuple(task.prompt_ids(ex)): task.answer_ids(ex) for ex in task.examples("train", 6, seed=7)}
    assert len(pairs) and all(c.tolist() == answers[tuple(p.tolist())] for p, c in zip(pairs.prompt_ids,
                                                                                      pairs.chosen, strict=True))
    with safe_open(str(tmp_path / "rl" / "pairs.safetensors"), framework="pt") as f:
        assert f.metadata()["pair_chosen"] == "gold"
