"""Decoding in micro-batches: greedy chunked decoding equals one batch row for row, forward passes add up, and the
block-only proposals still record the trajectory the sampler took."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.trajectory import replay_terms
from thrifty.dlm.samplers import LowConfidenceSampler, ThresholdSampler, sample_in_chunks


class Mixer(torch.nn.Module):
    """A context-dependent toy model: a per-position table plus a map of the mean token embedding."""

    def __init__(self, vocab: int = 5, length: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(torch.randn(length, vocab, generator=g))
        self.emb = torch.nn.Parameter(torch.randn(vocab, vocab, generator=g))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[: ids.shape[1]] + self.emb[ids].mean(dim=1, keepdim=True)


def _prompts(rows: int) -> torch.Tensor:
    return torch.randint(0, 4, (rows, 2), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("sampler", [LowConfidenceSampler(4, steps=6, block_len=2),
                                     ThresholdSampler(4, threshold=0.4, block_len=3)], ids=["low_conf", "threshold"])
def test_greedy_chunks_equal_one_batch(sampler):
    model, prompts = Mixer(), _prompts(7)
    whole = sampler.sample(model, prompts, 6, torch.Generator().manual_seed(0))
    parts = sample_in_chunks(sampler, model, prompts, 6, torch.Generator().manual_seed(0), chunk=3)
    for name in ("tokens", "step_map", "nfe_per_seq", "token_logp", "position_logp"):
        assert torch.equal(getattr(whole, name), getattr(parts, name)), name
    assert parts.nfe >= whole.nfe and parts.nfe == sum(  # three chunks, each with its own steps
        sampler.sample(model, prompts[i:i + 3], 6, torch.Generator()).nfe for i in (0, 3, 6))
    assert sample_in_chunks(sampler, model, prompts, 6, torch.Generator(), chunk=None).nfe == whole.nfe
    with pytest.raises(ConfigError, match="micro_batch"):
        sample_in_chunks(sampler, model, prompts, 6, torch.Generator(), chunk=0)


def test_sampled_chunks_record_their_own_trajectories_exactly():
    """At temperature 1 each chunk's recorded token and position log-probs equal a replay of what it decoded."""
    model, prompts = Mixer(), _prompts(6)
    sampler = LowConfidenceSampler(4, steps=6, block_len=2, temperature=1.0)
    out = sample_in_chunks(sampler, model, prompts, 6, torch.Generator().manual_seed(5), chunk=4)
    answer = out.tokens[:, 2:]
    tok, pos, _ = replay_terms(model, prompts, answer, out.step_map, 4, sampler.choice_rule(), 2)
    assert torch.allclose(out.token_logp.sum(dim=1), tok) and torch.allclose(out.position_logp.sum(dim=1), pos)
    assert bool((answer != 4).all())  # every masked position was filled, the mask id never proposed
