"""dTRPO (our reconstruction) and the offline preference update it shares with VRPO.

dTRPO scores an answer by R̂ = Σ_b T_b Σ_{i new at t_b} log p(y_i | x^(b)): per block one recorded step t_b drawn
uniformly, the tokens newly unmasked at t_b given the re-masked state before it, all blocks of all sequences in one
model call; the same draws serve the policy and the reference, so R̂_θ − R̂_ref is an unbiased estimate of the
trajectory log-ratio. The DPO loss −log σ(β[ΔR(chosen) − ΔR(rejected)]) trains on pairs of the model's own
samples. ``pref_estimator`` switches the scores: ``block`` (dTRPO), ``replay`` (the exact trajectory ratio, one
forward per step — the cost dTRPO avoids) or ``elbo`` (VRPO's MC-ELBO, :mod:`.vrpo`). dTRPO's blocks are the blocks
the pairs were decoded in (``pair_decoding``: the rollout blocks, or the evaluation decoder's — one block of the
whole answer unless the SFT run set ``eval_block_len``); pairs whose step maps do not go block by block in those
blocks are refused, since the re-masked states would not be states the sampler visited.

Under confidence-ordered decoding the token sums are not the trajectory probability: which positions a step commits
is itself a model-dependent draw. ``trajectory_terms`` (:mod:`.trajectory`; ``auto`` = ``tokens+positions`` here)
adds each visited step's position-choice log-prob, under the policy and under the reference, to the ``block`` and
``replay`` scores, making ``replay`` the exact trajectory log-ratio and ``block`` an unbiased estimate of it;
``tokens`` gives the token-only scores (dTRPO's "newly unmasked tokens" as published).

Pairs given as text (a JSONL ``pairs_file``) are tokenised when the update is built and, for the scores that
replay an order, given the spec's fallback order — confidence order under the reference (:mod:`.text_pairs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.launch import Launch
from thrifty.dlm.likelihood import block_single_pass, trajectory_replay
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.losses import dpo_loss, rpo_nll
from thrifty.dlm.rl.pairs import Pairs, pair_sampler
from thrifty.dlm.rl.rollout import rollout_shape
from thrifty.dlm.rl.trajectory import (
    IMPOSSIBLE_LOGP,
    block_terms,
    decoded_in_blocks,
    replay_terms,
    resolve_terms,
)
from thrifty.dlm.rl.vrpo import elbo_scores
from thrifty.dlm.samplers.choice import ChoiceRule
from thrifty.dlm.tasks import DlmTask


def block_draws(step_map: torch.Tensor, block_len: int, generator: torch.Generator) -> list[list[int]]:
    """Per sequence and block, one of the block's recorded steps, uniformly."""
    out = []
    for row in step_map:
        draws = []
        for start in range(0, row.numel(), block_len):
            steps = torch.unique(row[start:start + block_len])
            draws.append(int(steps[torch.randint(len(steps), (1,), generator=generator)]))
        out.append(draws)
    return out


def block_scores(policy: Any, ref: Any, prompt: torch.Tensor, answer: torch.Tensor, steps: torch.Tensor,
                 mask_id: int, generator: torch.Generator, block_len: int = 4, terms: str = "tokens",
                 rule: ChoiceRule | None = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(R̂ under the policy with gradients, R̂ under the reference) on one shared set of block draws; with
    ``terms="tokens+positions"`` each drawn step also scores its position choice under ``rule``."""
    draws = block_draws(steps, block_len, generator)
    if terms == "tokens+positions":
        rule = _need_rule(rule)
        tok, pos, _ = block_terms(policy, prompt, answer, steps, block_len, mask_id, rule, generator, draws,
                                  IMPOSSIBLE_LOGP)
        with torch.no_grad():
            ref_tok, ref_pos, _ = block_terms(ref, prompt, answer, steps, block_len, mask_id, rule, generator, draws,
                                              IMPOSSIBLE_LOGP)
        return tok + pos, ref_tok + ref_pos
    theta = block_single_pass(policy, prompt, answer, steps, block_len, mask_id, generator, draws)[0]
    with torch.no_grad():
        reference = block_single_pass(ref, prompt, answer, steps, block_len, mask_id, generator, draws)[0]
    return theta, reference


def replay_scores(policy: Any, ref: Any, prompt: torch.Tensor, answer: torch.Tensor, steps: torch.Tensor,
                  mask_id: int, generator: torch.Generator, block_len: int | None = None, terms: str = "tokens",
                  rule: ChoiceRule | None = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(trajectory log-prob under the policy with gradients, under the reference): one forward per step. With
    ``terms="tokens"`` the token replay (the exact trajectory log-prob only for model-free or deterministic
    orders); with ``"tokens+positions"`` the exact log-prob of the recorded trajectory under ``rule``."""
    if terms == "tokens+positions":
        rule = _need_rule(rule)
        tok, pos, _ = replay_terms(policy, prompt, answer, steps, mask_id, rule, block_len, IMPOSSIBLE_LOGP)
        with torch.no_grad():
            ref_tok, ref_pos, _ = replay_terms(ref, prompt, answer, steps, mask_id, rule, block_len, IMPOSSIBLE_LOGP)
        return tok + pos, ref_tok + ref_pos
    theta = trajectory_replay(policy, prompt, answer, steps, mask_id)[0]
    with torch.no_grad():
        reference = trajectory_replay(ref, prompt, answer, steps, mask_id)[0]
    return theta, reference


def _need_rule(rule: ChoiceRule | None) -> ChoiceRule:
    if rule is None:
        raise ConfigError("position terms need the rule the pairs were decoded with")
    return rule


SCORES: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "block": block_scores, "replay": replay_scores, "elbo": elbo_scores}


class PreferenceUpdate:
    """One optimiser step of DPO on a minibatch of pairs, with the configured scores."""

    def __init__(self, cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, ref: torch.nn.Module,
                 opt: torch.optim.Optimizer, pairs: Pairs, launch: Launch | None = None,
                 block_len: int | None = None) -> None:
        """``block_len``: the blocks the pairs were decoded in (default: the rollout blocks)."""
        self.cfg, self.task, self.policy, self.ref, self.opt, self.pairs = cfg, task, policy, ref, opt, pairs
        self.launch, self.n_updates = launch or Launch(), 0
        self.score = SCORES[cfg.preference_estimator()]
        self.block_len = block_len or rollout_shape(task.answer_len, cfg.block_len, cfg.rollout_steps)[0]
        self.terms = resolve_terms(cfg.trajectory_terms, "score")
        self.pair_stats: dict[str, float] = {}
        if not isinstance(pairs, Pairs):  # text pairs (a JSONL pairs_file): tokenised, orders from the reference
            from thrifty.dlm.rl.text_pairs import prepare_text_pairs

            pairs, self.pair_stats = prepare_text_pairs(cfg, task, ref, pairs, self.block_len)
            self.pairs = pairs
        # the rule the pairs were decoded with (both pair decodings order by confidence unless pair_remasking says)
        self.rule = pair_sampler(task, cfg.pair_decoding, cfg.rollout_temperature, cfg.block_len, cfg.rollout_steps,
                                 remasking=cfg.pair_remasking).choice_rule()
        needs_blocks = cfg.preference_estimator() == "block" or (
            cfg.preference_estimator() == "replay" and self.terms == "tokens+positions")
        if needs_blocks and not all(
                decoded_in_blocks(s, self.block_len) for s in (pairs.chosen_steps, pairs.rejected_steps)):
            raise ConfigError(f"the pairs were not decoded block by block in blocks of {self.block_len} tokens, so "
                              "dTRPO's re-masked states would be wrong; set pair_decoding to the decoding that built "
                              "them")
        self.params = [p for group in opt.param_groups for p in group["params"]]

    def update(self, _pool: Any, gen: torch.Generator) -> tuple[int, dict[str, float]]:
        cfg, n = self.cfg, len(self.pairs)
        idx = torch.randint(n, (min(cfg.pair_batch, n),), generator=gen)
        idx = idx[self.launch.rows(len(idx))]  # this process's pairs (all of them on one process)
        self.n_updates += 1
        local = self.launch.local_generator(cfg.seed, self.n_updates) or gen
        batch = self.pairs.take(idx)
        prompt = torch.cat([batch.prompt_ids, batch.prompt_ids])
        answer = torch.cat([batch.chosen, batch.rejected])
        steps = torch.cat([batch.chosen_steps, batch.rejected_steps])
        theta, reference = self.score(self.policy, self.ref, prompt, answer, steps, self.task.vocab.mask_id, local,
                                      block_len=self.block_len, n=cfg.mc_n, terms=self.terms, rule=self.rule)
        m = len(idx)
        loss, stats = dpo_loss(theta[:m], theta[m:], reference[:m], reference[m:], cfg.dpo_beta)
        if cfg.rpo_alpha > 0:  # RPO: keep the chosen side's likelihood up
            nll = rpo_nll(theta[:m], self.task.answer_len, cfg.rpo_alpha)
            loss = loss + nll
            stats["rpo_nll"] = float(nll.detach())
        self.opt.zero_grad()
        loss.backward()
        self.launch.average_grads(self.params)
        torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        first = self.pair_stats if self.n_updates == 1 else {}  # text pairs: their statistics, logged once
        return 1, {"loss": loss.item(), **stats, **first}


__all__ = ["SCORES", "PreferenceUpdate", "block_draws", "block_scores", "decoded_in_blocks", "replay_scores"]
