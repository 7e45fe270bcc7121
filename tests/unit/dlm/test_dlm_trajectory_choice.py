"""The position-choice probability against brute force: enumerate every token draw at a step's masked positions,
run the samplers' own ``choose`` on each, and add up the probability of each (positions, tokens) outcome."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.samplers import EntropyBoundedSampler, LowConfidenceSampler, ThresholdSampler
from thrifty.dlm.samplers._select import Proposal
from thrifty.dlm.samplers.choice import ChoiceRule, choice_logp, distributions, log_binomial, share_per_token

MASK, V, L = 3, 4, 6  # tokens 0..2, the mask id 3; position 0 is the prompt, positions 1..4 the block, 5 later
CANDIDATES = (1, 2, 3, 4)


def _logits() -> torch.Tensor:
    """Random logits with exact ties: positions 2 and 3 share one distribution (ties across positions, broken by
    position), and position 1 has two tokens of equal probability."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, L, V, generator=g, dtype=torch.float64) * 1.5
    logits[0, 3] = logits[0, 2]
    logits[0, 1, 1] = logits[0, 1, 0]
    return logits


def _proposal(tokens: torch.Tensor, probs: torch.Tensor, log_q: torch.Tensor) -> Proposal:
    conf = probs.gather(-1, tokens[..., None]).squeeze(-1)
    entropy = -(probs * torch.log(probs.clamp(min=1e-300))).sum(-1)
    return Proposal(tokens, conf, entropy, log_q.gather(-1, tokens[..., None]).squeeze(-1), probs, log_q)


def _brute_force(sampler, temperature: float) -> dict[tuple, float]:
    """{(chosen positions, their tokens): probability} over every draw at the candidate positions."""
    probs, log_q = distributions(_logits(), temperature, MASK)
    cand = torch.zeros(1, L, dtype=torch.bool)
    cand[0, list(CANDIDATES)] = True
    out: dict[tuple, float] = defaultdict(float)
    for ys in itertools.product(range(MASK), repeat=len(CANDIDATES)):
        tokens = torch.zeros(1, L, dtype=torch.long)
        tokens[0, list(CANDIDATES)] = torch.tensor(ys)
        chosen = sampler.choose(_proposal(tokens, probs, log_q), cand, 0, (1, 5), torch.Generator())[0]
        where = tuple(i for i in CANDIDATES if bool(chosen[i]))
        p_draw = math.exp(sum(float(log_q[0, j, y]) for j, y in zip(CANDIDATES, ys, strict=True)))
        out[(where, tuple(int(tokens[0, i]) for i in where))] += p_draw
    return out


def _predicted(where: tuple, xs: tuple, rule: ChoiceRule) -> float:
    probs, log_q = distributions(_logits(), rule.temperature, MASK)
    tokens = torch.zeros(1, L, dtype=torch.long)
    chosen = torch.zeros(1, L, dtype=torch.bool)
    for i, x in zip(where, xs, strict=True):
        tokens[0, i], chosen[0, i] = x, True
    cand = torch.zeros(1, L, dtype=torch.bool)
    cand[0, list(CANDIDATES)] = True
    tok = float(log_q[0, list(where), list(xs)].sum())
    return math.exp(tok + float(choice_logp(probs, log_q, tokens, chosen, cand, rule)[0]))


def _check_all_outcomes(brute: dict[tuple, float], rule: ChoiceRule, sizes: list[int]) -> None:
    total = 0.0
    for size in sizes:
        for where in itertools.combinations(CANDIDATES, size):
            for xs in itertools.product(range(MASK), repeat=size):
                pred = _predicted(where, xs, rule)
                assert pred == pytest.approx(brute.get((where, xs), 0.0), abs=1e-13), (where, xs)
                total += pred
    assert total == pytest.approx(1.0, abs=1e-12)  # the outcomes are exhaustive


@pytest.mark.parametrize("temperature", [1.0, 0.6, 1.7])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_low_confidence_choice_matches_enumeration_ties_included(k, temperature):
    sampler = LowConfidenceSampler(MASK, steps=1, temperature=temperature)
    sampler._schedule = [k]  # what sample() sets: this step commits k of the block's masked positions
    brute = _brute_force(sampler, temperature)
    assert sum(brute.values()) == pytest.approx(1.0, abs=1e-12)
    _check_all_outcomes(brute, sampler.choice_rule(), [k])


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("threshold", [0.3, 0.45, 0.9])
def test_threshold_choice_matches_enumeration_including_impossible_sets(threshold, temperature):
    sampler = ThresholdSampler(MASK, threshold=threshold, temperature=temperature)
    brute = _brute_force(sampler, temperature)
    _check_all_outcomes(brute, sampler.choice_rule(), [1, 2, 3, 4])  # sets the rule never picks score 0 (−∞)


def test_deterministic_and_model_free_orders():
    probs, log_q = distributions(_logits(), 1.0, MASK)
    tokens = torch.zeros(1, L, dtype=torch.long)
    chosen = torch.zeros(1, L, dtype=torch.bool)
    chosen[0, [1, 4]] = True
    cand = torch.zeros(1, L, dtype=torch.bool)
    cand[0, list(CANDIDATES)] = True
    assert choice_logp(probs, log_q, tokens, chosen, cand, ChoiceRule("random")).item() == pytest.approx(-math.log(6))
    assert choice_logp(probs, log_q, tokens, chosen, cand, ChoiceRule("entropy")).item() == 0.0
    assert choice_logp(probs, log_q, tokens, chosen, cand, ChoiceRule("low_confidence", 0.0)).item() == 0.0
    assert choice_logp(probs, log_q, tokens, torch.zeros_like(chosen), cand, ChoiceRule("low_confidence")).item() == 0
    assert EntropyBoundedSampler(MASK).choice_rule() == ChoiceRule("entropy", 0.0)
    assert LowConfidenceSampler(MASK, 2, remasking="random").choice_rule().kind == "random"
    assert log_binomial(torch.tensor(5), torch.tensor(2)).exp().item() == pytest.approx(10)
    share = share_per_token(torch.tensor([-3.0, 0.0], dtype=torch.float64), torch.tensor([[1, 1, 0], [0, 0, 0]]).bool())
    assert share.tolist() == [[-1.5, -1.5, 0.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ConfigError, match="position rule"):
        ChoiceRule("top_p")
    with pytest.raises(ConfigError, match="threshold"):
        ChoiceRule("threshold")


def test_an_impossible_choice_is_minus_infinity_or_the_floor_with_finite_gradients():
    logits = _logits().requires_grad_(True)
    probs, log_q = distributions(logits, 1.0, MASK)
    tokens = probs.argmin(dim=-1)  # commit position 1's least likely token while others have nothing below it
    tokens[0, 1] = int(probs[0, 1].argmin())
    chosen = torch.zeros(1, L, dtype=torch.bool)
    chosen[0, 1] = True
    cand = torch.zeros(1, L, dtype=torch.bool)
    cand[0, list(CANDIDATES)] = True
    tau = probs[0, 1, tokens[0, 1]]
    assert any(bool((probs[0, j] >= tau).all()) for j in (2, 3, 4))  # some position can never fall below τ
    rule = ChoiceRule("low_confidence")
    assert choice_logp(probs, log_q, tokens, chosen, cand, rule).item() == -math.inf
    floored = choice_logp(probs, log_q, tokens, chosen, cand, rule, floor=-50.0)
    assert math.isfinite(floored.item()) and floored.item() <= -50.0
    floored.sum().backward()
    assert logits.grad is not None and bool(torch.isfinite(logits.grad).all())
