"""Trajectory terms where training uses them: the replay and dTRPO's block estimate with position terms, the
``trajectory_terms`` and ``pair_remasking`` switches, and DiFFPO's behaviour probability."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.likelihood import block_single_pass, trajectory_replay
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.diffu_grpo import PolicyGradient, one_step_estimator
from thrifty.dlm.rl.dtrpo import PreferenceUpdate, block_scores, replay_scores
from thrifty.dlm.rl.pairs import pair_sampler, sample_pairs
from thrifty.dlm.rl.rollout import collect
from thrifty.dlm.rl.trajectory import IMPOSSIBLE_LOGP, block_terms, replay_terms, resolve_terms
from thrifty.dlm.samplers import LowConfidenceSampler
from thrifty.dlm.tasks import get_task


class Mixer(torch.nn.Module):
    """A trainable context-dependent model: a per-position table plus a linear map of the mean token embedding."""

    def __init__(self, vocab: int, length: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(torch.randn(length, vocab, generator=g))
        self.emb = torch.nn.Parameter(torch.randn(vocab, vocab, generator=g))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ctx = self.emb[ids].mean(dim=1, keepdim=True)
        return self.table[: ids.shape[1]] + ctx


def _decoded(temperature: float = 1.0, steps: int = 4, block_len: int = 2, rows: int = 6):
    model = Mixer(5, 6)
    sampler = LowConfidenceSampler(4, steps=steps, block_len=block_len, temperature=temperature)
    prompt = torch.zeros(rows, 2, dtype=torch.long)
    out = sampler.sample(model, prompt, 4, torch.Generator().manual_seed(1))
    return model, sampler, prompt, out


def test_token_terms_are_the_existing_estimators_at_temperature_one_and_the_recorded_ones_at_any():
    model, sampler, prompt, out = _decoded()
    answer, steps = out.tokens[:, 2:], out.step_map
    tok, pos, nfe = replay_terms(model, prompt, answer, steps, 4, sampler.choice_rule(), block_len=2)
    assert torch.allclose(tok, trajectory_replay(model, prompt, answer, steps, 4)[0]) and nfe == 4
    assert torch.allclose(pos, out.position_logp.sum(1)) and bool((pos < 0).any())
    draws = [[0, 2]] * answer.shape[0]
    btok, _, calls = block_terms(model, prompt, answer, steps, 2, 4, sampler.choice_rule(), torch.Generator(), draws)
    assert calls == 1 and torch.allclose(btok, block_single_pass(model, prompt, answer, steps, 2, 4,
                                                                 torch.Generator(), draws)[0])
    model, sampler, prompt, out = _decoded(temperature=0.6)
    tok, pos, _ = replay_terms(model, prompt, out.tokens[:, 2:], out.step_map, 4, sampler.choice_rule(), 2)
    assert torch.allclose(tok, out.token_logp.sum(1)) and torch.allclose(pos, out.position_logp.sum(1))


def test_the_block_estimate_averages_exactly_to_the_replay_over_its_draws():
    model, sampler, prompt, out = _decoded(steps=4, block_len=2, rows=3)
    answer, steps, rule = out.tokens[:, 2:], out.step_map, sampler.choice_rule()
    with torch.no_grad():
        tok, pos, _ = replay_terms(model, prompt, answer, steps, 4, rule, 2)
    for b in range(answer.shape[0]):
        per_block = [sorted(set(steps[b, k:k + 2].tolist())) for k in (0, 2)]
        combos = list(itertools.product(*per_block))
        with torch.no_grad():
            got = [block_terms(model, prompt[b:b + 1], answer[b:b + 1], steps[b:b + 1], 2, 4, rule, torch.Generator(),
                               [list(c)])[:2] for c in combos]
        assert sum(float(t) for t, _ in got) / len(combos) == pytest.approx(float(tok[b]), abs=1e-9)
        assert sum(float(p) for _, p in got) / len(combos) == pytest.approx(float(pos[b]), abs=1e-9)


def test_dtrpo_scores_switch_between_token_and_trajectory_terms():
    model, sampler, prompt, out = _decoded()
    ref = Mixer(5, 6, seed=1)
    answer, steps, rule = out.tokens[:, 2:], out.step_map, sampler.choice_rule()
    theta, reference = replay_scores(model, ref, prompt, answer, steps, 4, torch.Generator(), block_len=2,
                                     terms="tokens+positions", rule=rule)
    tok, pos, _ = replay_terms(model, prompt, answer, steps, 4, rule, 2)
    assert theta.requires_grad and torch.allclose(theta, tok + pos)
    # the reference may find a step's choice impossible: the scorer floors such a factor at IMPOSSIBLE_LOGP
    assert torch.allclose(reference, sum(replay_terms(ref, prompt, answer, steps, 4, rule, 2, IMPOSSIBLE_LOGP)[:2]))
    plain, _ = replay_scores(model, ref, prompt, answer, steps, 4, torch.Generator())
    assert torch.allclose(plain, tok)
    b_theta, b_ref = block_scores(model, ref, prompt, answer, steps, 4, torch.Generator().manual_seed(0),
                                  block_len=2, terms="tokens+positions", rule=rule)
    assert b_theta.requires_grad and bool(torch.isfinite(b_theta - b_ref).all())
    with pytest.raises(ConfigError, match="rule"):
        replay_scores(model, ref, prompt, answer, steps, 4, torch.Generator(), terms="tokens+positions")


def test_the_switches_resolve_and_reach_the_updates():
    assert DlmRLConfig().trajectory_terms == "auto" and DlmRLConfig().pair_remasking == "low_confidence"
    assert resolve_terms("auto", "score") == "tokens+positions" and resolve_terms("auto", "behaviour") == "tokens"
    assert resolve_terms("tokens", "score") == "tokens"
    with pytest.raises(ConfigError, match="trajectory_terms"):
        resolve_terms("positions", "score")
    task = get_task("sudoku4")
    model = Mixer(task.vocab.size, task.seq_len)
    for decoding in ("rollout", "eval"):
        assert pair_sampler(task, decoding, 1.0, remasking="random").remasking == "random"
    pairs, _ = sample_pairs(model, task, 4, 4, torch.Generator().manual_seed(0), temperature=1.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for estimator in ("block", "replay"):
        up = PreferenceUpdate(DlmRLConfig(algo="dtrpo", pref_estimator=estimator, pair_batch=3,
                                          rollout_temperature=1.5), task, model, Mixer(task.vocab.size, task.seq_len),
                              opt, pairs)
        assert up.terms == "tokens+positions" and up.rule.kind == "low_confidence" and up.rule.temperature == 1.5
        taken, stats = up.update(None, torch.Generator().manual_seed(0))
        assert taken == 1 and math.isfinite(stats["loss"])
    up = PreferenceUpdate(DlmRLConfig(algo="dtrpo", pair_remasking="random", trajectory_terms="tokens"), task, model,
                          model, opt, pairs)
    assert up.rule.kind == "random" and up.terms == "tokens"


def test_diffpo_behaviour_adds_each_tokens_share_of_the_position_choice_when_asked():
    task = get_task("sudoku4")
    model = Mixer(task.vocab.size, task.seq_len)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for terms, with_positions in (("auto", False), ("tokens+positions", True)):
        pg = PolicyGradient(DlmRLConfig(algo="diffpo", trajectory_terms=terms), task, model, model, opt,
                            one_step_estimator(0.0), weighted=True)
        roll = collect(model, task, task.examples("test", 2, seed=1), 3, pg.sampler, torch.Generator().manual_seed(0))
        tok, pos, _ = replay_terms(model, roll.prompt_ids, roll.answer_ids, roll.step_map, task.vocab.mask_id,
                                   pg.sampler.choice_rule(), pg.block_len)
        assert torch.allclose(roll.position_logp.sum(1), pos) and torch.allclose(roll.behaviour_logp.sum(1), tok)
        expect = roll.behaviour_logp + roll.position_logp if with_positions else roll.behaviour_logp
        assert torch.equal(pg._behaviour(roll), expect)
