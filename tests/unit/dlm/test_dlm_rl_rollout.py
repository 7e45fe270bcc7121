"""Rollouts, the behaviour log-probs they record, importance weights on them, the answer mask and pair building."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.diffpo import split_steps, two_times_estimator
from thrifty.dlm.rl.diffu_grpo import one_step_estimator
from thrifty.dlm.rl.dtrpo import block_draws
from thrifty.dlm.rl.losses import importance_weights
from thrifty.dlm.rl.pairs import build_pairs, load_pairs, save_pairs
from thrifty.dlm.rl.rollout import answer_mask, collect, rollout_sampler
from thrifty.dlm.tasks import get_task


class ContextFree(torch.nn.Module):
    """Logits that depend only on the position: every estimator's conditional equals the sampler's."""

    def __init__(self, vocab: int, length: int, seed: int = 0) -> None:
        super().__init__()
        self.table = torch.randn(length, vocab, generator=torch.Generator().manual_seed(seed))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[: ids.shape[1]].expand(ids.shape[0], -1, -1).clone()


def _rollouts(temperature=1.0, group=4, n=3):
    task = get_task("sudoku4")
    model = ContextFree(task.vocab.size, task.seq_len)
    sampler = rollout_sampler(task, steps=8, block_len=4, temperature=temperature)
    roll = collect(model, task, task.examples("test", n, seed=1), group, sampler, torch.Generator().manual_seed(0))
    return task, model, roll


def test_rollouts_are_grouped_scored_and_carry_behaviour_log_probs():
    task, _, roll = _rollouts()
    assert roll.prompt_ids.shape == (12, 17) and roll.answer_ids.shape == (12, 16)
    assert all(roll.examples[i] is roll.examples[i // 4 * 4] for i in range(12))  # G consecutive rows per prompt
    texts = [task.decode(a.tolist()) for a in roll.answer_ids]
    assert roll.rewards.tolist() == [task.reward(ex, t) for ex, t in zip(roll.examples, texts, strict=True)]
    assert bool((roll.behaviour_logp <= 0).all()) and bool((roll.nfe == 8).all())


def test_importance_weights_are_one_when_the_surrogate_is_the_behaviour_policy():
    # a context-free model at temperature 1: the 2-MF surrogate assigns each token exactly the probability the
    # sampler drew it with, so every weight is 1 (the DiFFPO correction vanishes on-policy)
    task, model, roll = _rollouts(temperature=1.0)
    for est in (two_times_estimator(), one_step_estimator(0.0)):
        old = est(model, roll, task.vocab.mask_id, 7)
        assert torch.allclose(old, roll.behaviour_logp)
        w = importance_weights(old, roll.behaviour_logp, torch.ones_like(old), cap=2.0)
        assert torch.allclose(w, torch.ones_like(w))
    # at another temperature the behaviour differs from the surrogate and the weights move off 1
    task, model, roll = _rollouts(temperature=2.0)
    old = two_times_estimator()(model, roll, task.vocab.mask_id, 7)
    assert not torch.allclose(importance_weights(old, roll.behaviour_logp, torch.ones_like(old)),
                              torch.ones_like(old))


def test_seeds_fix_the_split_steps_and_draws():
    _, _, roll = _rollouts()
    a = split_steps(roll.step_map, torch.Generator().manual_seed(3))
    b = split_steps(roll.step_map, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and all(int(t) in set(row.tolist()) for t, row in zip(a, roll.step_map, strict=True))
    draws = block_draws(roll.step_map, 4, torch.Generator().manual_seed(1))
    for row, ds in zip(roll.step_map, draws, strict=True):
        assert len(ds) == 4 and all(d in set(row[4 * k:4 * k + 4].tolist()) for k, d in enumerate(ds))


def test_answer_mask_keeps_tokens_through_the_first_eos():
    ids = torch.tensor([[1, 2, 9, 9, 3], [9, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert answer_mask(ids, 9).tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert answer_mask(ids, None).tolist() == [[1.0] * 5] * 3


def test_pairs_take_the_best_and_worst_sample_and_round_trip(tmp_path):
    task = get_task("sudoku4")
    model = ContextFree(task.vocab.size, task.seq_len)
    sampler = rollout_sampler(task, steps=8, block_len=4, temperature=3.0)
    examples = task.examples("test", 6, seed=2)
    pairs, stats = build_pairs(model, task, examples, 4, sampler, torch.Generator().manual_seed(0), batch=4)
    assert 1 <= len(pairs) <= 6 and bool((pairs.chosen_reward > pairs.rejected_reward).all())
    assert stats["pairs"] == len(pairs)
    back = load_pairs(save_pairs(pairs, tmp_path / "p.safetensors"))
    assert torch.equal(back.chosen, pairs.chosen) and torch.equal(back.rejected_steps, pairs.rejected_steps)
    with pytest.raises(ConfigError, match="no prompt gave"):
        build_pairs(model, task, examples, 4, sampler, torch.Generator().manual_seed(0), min_gap=1.0)
    with pytest.raises(ConfigError, match="no pairs file"):
        load_pairs(tmp_path / "none.safetensors")


@pytest.mark.parametrize("g,expect", [(16, (4, 8)), (12, (3, 8)), (10, (5, 6)), (81, (81, 41))])
def test_rollout_shapes_always_fit_the_block_sampler(g, expect):
    from thrifty.dlm.rl.rollout import rollout_shape

    block, steps = rollout_shape(g)
    assert (block, steps) == expect
    model = ContextFree(8, 4 + g)
    out = rollout_sampler(get_task("sudoku4"), steps, block, 1.0).sample(
        model, torch.zeros(2, 4, dtype=torch.long), g, torch.Generator().manual_seed(0))
    assert out.nfe == steps and bool((out.tokens[:, 4:] != get_task("sudoku4").vocab.mask_id).all())
