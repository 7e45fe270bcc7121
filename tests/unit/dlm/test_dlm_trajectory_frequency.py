"""The issue's "done when": run the real samplers many times on a tiny context-dependent model and compare how often
each trajectory (answer + step map) occurs with exp(tokens + positions) and with exp(tokens) alone.

Under confidence-ordered decoding only tokens + positions matches the measured frequencies; under random
remasking the token replay matches up to the model-free −log C(m, k) per step; the entropy-bounded order is a
function of the state, so its position term is 0. Every exact prediction also sums to 1 over all trajectories."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from thrifty.dlm.rl.trajectory import replay_terms
from thrifty.dlm.samplers import EntropyBoundedSampler, LowConfidenceSampler, ThresholdSampler

MASK, V, G = 3, 4, 4  # three answer tokens and the mask id; a one-token prompt and a four-token answer
RUNS = 100_000


class ContextTable(torch.nn.Module):
    """Logits = a per-position table + a random linear map of the whole one-hot state: every conditional depends
    on what is already committed, so confidences (and the order) move with the context."""

    def __init__(self, length: int = 1 + G, seed: int = 0, scale: float = 0.8) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.base = torch.randn(length, V, generator=g, dtype=torch.float64) * scale
        self.mix = torch.randn(length * V, length * V, generator=g, dtype=torch.float64) * scale / 2

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(ids, V).double().flatten(1)
        return self.base + (onehot @ self.mix).view(ids.shape[0], -1, V)


def _measure(sampler, runs: int = RUNS, seed: int = 0):
    """(unique answers, their step maps, counts, recorded token and position log-probs of one occurrence)."""
    model = ContextTable()
    out = sampler.sample(model, torch.zeros(runs, 1, dtype=torch.long), G, torch.Generator().manual_seed(seed))
    keys = torch.cat([out.tokens[:, 1:], out.step_map], dim=1)
    uniq, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
    first = torch.full((len(uniq),), runs, dtype=torch.long).scatter_reduce(0, inverse, torch.arange(runs), "amin")
    return model, uniq[:, :G], uniq[:, G:], counts, out.token_logp[first].sum(1), out.position_logp[first].sum(1)


def _z(counts: torch.Tensor, logp: torch.Tensor, runs: int = RUNS) -> torch.Tensor:
    """Binomial z-scores of the counts against the predicted probabilities (trajectories expected ≥ 30 times)."""
    p = logp.exp()
    keep = p * runs >= 30
    return ((counts[keep] - runs * p[keep]) / torch.sqrt(runs * p[keep] * (1 - p[keep])))


def _report(name: str, counts, tok, pos) -> None:
    """Print the most frequent trajectory whose order was a real choice (position term below log 0.9)."""
    top = int(torch.where(pos < math.log(0.9), counts, torch.zeros_like(counts)).argmax())
    se = math.sqrt(counts[top] / RUNS * (1 - counts[top] / RUNS) / RUNS)
    print(f"\n{name}: {len(counts)} trajectories seen in {RUNS} runs; most frequent with a real order choice: "
          f"measured {counts[top] / RUNS:.4f} ± {se:.4f}, exp(tokens+positions) {math.exp(tok[top] + pos[top]):.4f}, "
          f"exp(tokens) {math.exp(tok[top]):.4f}")


@pytest.mark.parametrize("sampler", [LowConfidenceSampler(MASK, steps=2, temperature=1.0),
                                     LowConfidenceSampler(MASK, steps=3, temperature=0.7),
                                     ThresholdSampler(MASK, threshold=0.5, temperature=1.0)],
                         ids=["low_confidence_2x2_T1", "low_confidence_2-1-1_T0.7", "threshold_0.5_T1"])
def test_confidence_ordered_trajectory_frequencies_need_the_position_terms(sampler):
    model, answers, steps, counts, rec_tok, rec_pos = _measure(sampler)
    tok, pos, _ = replay_terms(model, torch.zeros(len(answers), 1, dtype=torch.long), answers, steps, MASK,
                               sampler.choice_rule())
    _report(type(sampler).__name__, counts, tok, pos)
    # what the sampler recorded while decoding is what the replay computes afterwards
    assert torch.allclose(rec_tok, tok, atol=1e-9) and torch.allclose(rec_pos, pos, atol=1e-9)
    z_exact, z_tokens = _z(counts, tok + pos), _z(counts, tok)
    assert len(z_exact) >= 20 and float(z_exact.abs().max()) < 5.0  # within sampling error, every one
    assert float((z_exact**2).sum()) < 2 * len(z_exact)  # and jointly (χ² with that many cells has mean ≈ n)
    assert float(z_tokens.abs().max()) > 50.0  # the token replay alone is far off
    assert float(pos.max()) <= 1e-12 and float(pos.min()) < -0.5  # log-probabilities (up to rounding)


def test_random_remasking_replay_is_exact_up_to_a_model_free_constant():
    sampler = LowConfidenceSampler(MASK, steps=2, temperature=1.0, remasking="random")
    model, answers, steps, counts, _, rec_pos = _measure(sampler)
    tok, pos, _ = replay_terms(model, torch.zeros(len(answers), 1, dtype=torch.long), answers, steps, MASK,
                               sampler.choice_rule())
    _report("random remasking", counts, tok, pos)
    assert torch.allclose(pos, torch.full_like(pos, -math.log(6))) and torch.allclose(rec_pos, pos)  # C(4,2)·C(2,2)
    assert float(_z(counts, tok + pos).abs().max()) < 5.0


def test_entropy_bounded_order_is_a_function_of_the_state():
    sampler = EntropyBoundedSampler(MASK, gamma=0.3, temperature=1.0)
    model, answers, steps, counts, _, rec_pos = _measure(sampler)
    tok, pos, _ = replay_terms(model, torch.zeros(len(answers), 1, dtype=torch.long), answers, steps, MASK,
                               sampler.choice_rule())
    assert bool((pos == 0).all()) and bool((rec_pos == 0).all())
    assert float(_z(counts, tok).abs().max()) < 5.0


def _ordered_partitions(items: tuple[int, ...], sizes: list[int] | None):
    """Every sequence of disjoint non-empty sets covering ``items`` (with the given sizes when given)."""
    if not items:
        yield []
        return
    for size in ([sizes[0]] if sizes else range(1, len(items) + 1)):
        for first in itertools.combinations(items, size):
            rest = tuple(i for i in items if i not in first)
            for tail in _ordered_partitions(rest, sizes[1:] if sizes else None):
                yield [first, *tail]


@pytest.mark.parametrize(("sampler", "sizes"), [(LowConfidenceSampler(MASK, steps=2, temperature=1.0), [2, 2]),
                                                (ThresholdSampler(MASK, threshold=0.5, temperature=0.7), None)])
def test_exact_predictions_sum_to_one_over_every_trajectory(sampler, sizes):
    orders = list(_ordered_partitions(tuple(range(G)), sizes))
    steps = torch.tensor([[next(s for s, part in enumerate(o) if i in part) for i in range(G)] for o in orders])
    answers = torch.tensor(list(itertools.product(range(MASK), repeat=G)))
    steps, answers = steps.repeat_interleave(len(answers), 0), answers.repeat(len(orders), 1)
    tok, pos, _ = replay_terms(ContextTable(), torch.zeros(len(answers), 1, dtype=torch.long), answers, steps, MASK,
                               sampler.choice_rule())
    assert float((tok + pos).exp().sum()) == pytest.approx(1.0, abs=1e-9)
    assert float(tok.exp().sum()) > 1.5  # the token replay is not a distribution over trajectories
