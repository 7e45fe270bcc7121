"""Likelihood estimators against brute force on tiny cases (a random tiny model, answers of 3 tokens)."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.likelihood import exact_any_order, mc_elbo, one_step_mean_field, trajectory_replay
from thrifty.dlm.model import DiffusionLM, DiffusionLMConfig
from thrifty.dlm.samplers import LowConfidenceSampler

MASK = 7
CFG = DiffusionLMConfig(vocab_size=8, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=16)


def _model():
    m = DiffusionLM(CFG, torch.Generator().manual_seed(3)).eval()
    with torch.no_grad():  # sharpen the random model so orders and contexts matter
        m.embed.weight.mul_(40.0)
    return m


PROMPT = torch.tensor([[1, 2], [3, 4]])
ANSWER = torch.tensor([[5, 0, 6], [2, 2, 1]])


def test_exact_elbo_is_below_the_exact_likelihood_and_each_order_is_a_sum_of_steps():
    m = _model()
    log_p, elbo = exact_any_order(m, PROMPT, ANSWER, MASK)
    assert bool((elbo <= log_p + 1e-12).all()) and bool((elbo < log_p - 1e-6).any())  # Jensen, strictly here
    # one order by hand: left to right
    x = torch.cat([PROMPT, torch.full_like(ANSWER, MASK)], dim=1)
    total = torch.zeros(2, dtype=torch.float64)
    for k in range(3):
        logits = m(x).double()
        logits[..., MASK] = float("-inf")
        lp = torch.log_softmax(logits, -1)[:, 2 + k].gather(-1, ANSWER[:, k:k + 1]).squeeze(-1)
        total += lp
        x[:, 2 + k] = ANSWER[:, k]
    step_map = torch.tensor([[0, 1, 2], [0, 1, 2]])
    replay, nfe = trajectory_replay(m, PROMPT, ANSWER, step_map, MASK)
    assert nfe == 3 and torch.allclose(replay, total)


def test_mc_elbo_is_unbiased_for_the_exact_elbo():
    m = _model()
    _, elbo = exact_any_order(m, PROMPT, ANSWER, MASK)
    gen = torch.Generator().manual_seed(0)
    runs = torch.stack([mc_elbo(m, PROMPT, ANSWER, MASK, gen, n=8)[0] for _ in range(400)])
    sem = runs.std(dim=0) / math.sqrt(runs.shape[0])
    assert bool(((runs.mean(dim=0) - elbo).abs() < 4 * sem).all())


def test_mean_field_scores_every_token_in_one_pass_and_a_sampled_trajectory_replays():
    m = _model()
    lp, nfe = one_step_mean_field(m, PROMPT, ANSWER, MASK)
    assert nfe == 1 and lp.shape == ANSWER.shape and bool((lp <= 0).all())
    # a sampled answer: replaying its own trajectory gives the product of the probabilities the sampler used
    out = LowConfidenceSampler(MASK, steps=3).sample(m, PROMPT, 3, torch.Generator())
    answer = out.tokens[:, 2:]
    replay, nfe = trajectory_replay(m, PROMPT, answer, out.step_map, MASK)
    assert nfe == 3 and bool((replay <= 0).all())
    x = torch.cat([PROMPT, torch.full_like(answer, MASK)], dim=1)  # by hand, in the recorded order
    by_hand = torch.zeros(2, dtype=torch.float64)
    for s in range(3):
        logits = m(x).double()
        logits[..., MASK] = float("-inf")
        lp = torch.log_softmax(logits, -1)[:, 2:].gather(-1, answer[..., None]).squeeze(-1)
        now = out.step_map == s
        by_hand += (lp * now).sum(dim=1)
        x[:, 2:] = torch.where(now, answer, x[:, 2:])
    assert torch.allclose(replay, by_hand)
    with pytest.raises(ConfigError, match="step_map"):
        trajectory_replay(m, PROMPT, answer, torch.full_like(answer, -1), MASK)
    with pytest.raises(ConfigError, match="at most 6"):
        exact_any_order(m, PROMPT, torch.zeros(2, 7, dtype=torch.long), MASK)


def _sampled(m, gen_len=4, block_len=2):
    out = LowConfidenceSampler(MASK, steps=gen_len, block_len=block_len).sample(m, PROMPT, gen_len, torch.Generator())
    return out.tokens[:, PROMPT.shape[1]:], out.step_map


def test_block_single_pass_is_unbiased_for_the_trajectory_replay_by_enumeration():
    import itertools

    from thrifty.dlm.likelihood import block_single_pass

    m = _model()
    answer, step_map = _sampled(m)
    replay, _ = trajectory_replay(m, PROMPT, answer, step_map, MASK)
    per_block = [[sorted(set(step_map[b, k:k + 2].tolist())) for k in (0, 2)] for b in range(2)]
    combos = [list(itertools.product(*per_block[b])) for b in range(2)]
    for b in range(2):  # every combination of one step per block, each equally likely
        vals = []
        for draw in combos[b]:
            draws = [list(draw) if i == b else [per_block[i][0][0], per_block[i][1][0]] for i in range(2)]
            est, calls = block_single_pass(m, PROMPT, answer, step_map, 2, MASK, torch.Generator(), draws)
            vals.append(est[b])
        assert calls == 1 and torch.allclose(torch.stack(vals).mean(), replay[b])


def test_two_times_mean_field_splits_at_its_step():
    from thrifty.dlm.likelihood import two_times_mean_field

    m = _model()
    answer, step_map = _sampled(m, gen_len=3, block_len=3)
    first = int(step_map.min())
    lp, nfe = two_times_mean_field(m, PROMPT, answer, step_map, MASK, torch.Generator(), t=first)
    mf, _ = one_step_mean_field(m, PROMPT, answer, MASK)
    assert nfe == 2 and torch.allclose(lp, mf)  # split at the first step: everything given the blank answer
    last = int(step_map.max())
    lp_last, _ = two_times_mean_field(m, PROMPT, answer, step_map, MASK, torch.Generator(), t=last)
    early = step_map < last
    assert torch.allclose(lp_last[early], mf[early]) and not torch.allclose(lp_last[~early], mf[~early])
