"""Online policy gradient for masked diffusion LMs — d1's diffu-GRPO, and the frame DiFFPO plugs into.

One update: draw prompts, roll out G answers each with the sampler, score them, take group-mean advantages, then
μ gradient steps on the buffered batch. Step j masks with seed j for the policy, the old policy and the reference
alike, so every ratio compares identical masks; old and reference log-probs for all μ seeds are computed once
right after the rollout (old = the policy's own detached log-probs when μ = 1). The per-token log-probs come from
a pluggable estimator: d1's one-step mean-field here, DiFFPO's two-times mean-field in :mod:`.diffpo`, which
also adds the importance weights and the sampler head. The objective is d1's clipped ratio with a k3 KL
(``objective="clipped"``) or wd1's ratio-free weighted likelihood (``"wd1"``, :mod:`.wd1`: no old-policy or reference
pass at all).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.launch import Launch
from thrifty.dlm.likelihood import one_step_mean_field
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.losses import clipped_pg_loss, group_advantages, importance_weights, nfe_priced_reward
from thrifty.dlm.rl.rollout import Rollouts, SamplerHead, answer_mask, collect, rollout_sampler, rollout_shape
from thrifty.dlm.rl.trajectory import resolve_terms
from thrifty.dlm.rl.wd1 import wd1_loss
from thrifty.dlm.tasks import DlmExample, DlmTask

# estimator(model, rollouts, mask_id, seed) -> per-token log-probs (N, G), with gradients when enabled
Estimator = Callable[[Any, Rollouts, int, int], torch.Tensor]


def one_step_estimator(prompt_mask_p: float) -> Estimator:
    """d1's estimate: the answer fully masked, each prompt token masked with ``prompt_mask_p`` (seeded)."""

    def estimate(model: Any, roll: Rollouts, mask_id: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return one_step_mean_field(model, roll.prompt_ids, roll.answer_ids, mask_id, gen, prompt_mask_p)[0]

    return estimate


class PolicyGradient:
    """The online update shared by diffu-GRPO and DiFFPO (see the module notes)."""

    def __init__(self, cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, ref: torch.nn.Module,
                 opt: torch.optim.Optimizer, estimator: Estimator, head: SamplerHead | None = None,
                 weighted: bool = False, launch: Launch | None = None, objective: str = "clipped") -> None:
        if objective not in ("clipped", "wd1") or (objective == "wd1" and (head is not None or weighted)):
            raise ConfigError(f"objective {objective!r}: choose clipped, or wd1 without importance weights or the "
                              "joint sampler")
        self.cfg, self.task, self.policy, self.ref, self.opt = cfg, task, policy, ref, opt
        self.objective = objective
        self.launch, self.n_updates = launch or Launch(), 0
        self.estimator, self.head, self.weighted = estimator, head, weighted
        self.block_len, self.steps = rollout_shape(task.answer_len, cfg.block_len, cfg.rollout_steps)
        self.sampler = rollout_sampler(task, self.steps, self.block_len, cfg.rollout_temperature)
        self.behaviour_terms = resolve_terms(cfg.trajectory_terms, "behaviour")  # DiFFPO's μ: tokens (+ positions)
        self.params = [p for group in opt.param_groups for p in group["params"]]

    def _seeds(self, gen: torch.Generator) -> list[int]:
        if not self.cfg.random_masking:
            return [42] * self.cfg.mu
        return torch.randint(0, 2**12, (self.cfg.mu,), generator=gen).tolist()

    def update(self, pool: list[DlmExample], gen: torch.Generator) -> tuple[int, dict[str, float]]:
        """One rollout and μ gradient steps: (optimiser steps taken, stats)."""
        cfg, mask_id = self.cfg, self.task.vocab.mask_id
        pick = random.Random(int(torch.randint(0, 2**31, (1,), generator=gen))).sample(range(len(pool)),
                                                                                          cfg.prompts_per_step)
        pick = pick[self.launch.rows(cfg.prompts_per_step)]  # this process's prompts (all of them on one process)
        self.n_updates += 1
        local = self.launch.local_generator(cfg.seed, self.n_updates) or gen
        roll = collect(self.policy, self.task, [pool[i] for i in pick], cfg.group_size, self.sampler, local,
                       head=self.head, block_len=self.block_len, temperature=cfg.rollout_temperature,
                       micro_batch=cfg.rollout_micro_batch or None)
        reward = roll.rewards
        if cfg.nfe_price > 0:
            reward = nfe_priced_reward(reward, roll.nfe, float(self.task.answer_len), cfg.nfe_price)
        adv = group_advantages(reward, cfg.group_size, cfg.scale_rewards)
        mask = answer_mask(roll.answer_ids, self.task.vocab.eos_id)
        seeds = self._seeds(gen)
        ratio = self.objective == "clipped"  # wd1 needs neither the old policy nor the reference
        with torch.no_grad():
            old = [self.estimator(self.policy, roll, mask_id, s) for s in seeds] if ratio and cfg.mu > 1 else None
            ref = [self.estimator(self.ref, roll, mask_id, s) for s in seeds] if ratio and cfg.beta > 0 else None
            old_gamma = self._gamma_logp(roll) if self.head is not None else None
        totals: dict[str, float] = {}
        for j, seed in enumerate(seeds):
            logp = self.estimator(self.policy, roll, mask_id, seed)
            old_j = old[j] if old is not None else logp.detach()
            ref_j = ref[j] if ref is not None else None
            weights = None
            if self.weighted and cfg.is_level != "none":
                weights = importance_weights(old_j, self._behaviour(roll), mask, cfg.is_cap, cfg.is_level)
            tok_mask = mask if cfg.train_policy else torch.zeros_like(mask)
            if self.head is not None:  # the γ choice: one more token, exact behaviour (weight 1), no KL
                g_logp = self._gamma_logp(roll)
                logp, old_j = torch.cat([g_logp[:, None], logp], 1), torch.cat([old_gamma[:, None], old_j], 1)
                ref_j = None if ref_j is None else torch.cat([g_logp.detach()[:, None], ref_j], 1)
                weights = None if weights is None else torch.cat([torch.ones_like(g_logp)[:, None], weights], 1)
                tok_mask = torch.cat([torch.ones_like(g_logp)[:, None], tok_mask], 1)
            if ratio:
                loss, stats = clipped_pg_loss(logp, old_j, adv, tok_mask, cfg.eps, cfg.beta, ref_j, weights, cfg.agg)
            else:
                loss, stats = wd1_loss(logp, adv, tok_mask, cfg.group_size)
            self.opt.zero_grad()
            loss.backward()
            self.launch.average_grads(self.params)  # one flat all-reduce: the policy ran several times for this loss
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            self.opt.step()
            for k, v in {"loss": loss.item(), **stats}.items():
                totals[k] = totals.get(k, 0.0) + v / cfg.mu
        totals.update({"reward": float(roll.rewards.mean()), "solved": float(roll.solved.float().mean()),
                       "rollout_nfe": float(roll.nfe.float().mean())})
        if roll.gamma_idx is not None and self.head is not None:
            totals["gamma_mean"] = float(torch.tensor(self.head.grid)[roll.gamma_idx.cpu()].mean())
        return cfg.mu, totals

    def _behaviour(self, roll: Rollouts) -> torch.Tensor:
        """μ per token: the draw's log-prob, plus its share of the step's position-choice log-prob when
        ``trajectory_terms`` resolves to tokens+positions (then a sequence's sum is its exact log P(τ))."""
        if self.behaviour_terms == "tokens" or roll.position_logp is None:
            return roll.behaviour_logp
        return roll.behaviour_logp + roll.position_logp

    def _gamma_logp(self, roll: Rollouts) -> torch.Tensor:
        assert self.head is not None and roll.gamma_idx is not None
        lp = self.head.log_probs(self.policy, roll.prompt_ids, self.task.answer_len, self.task.vocab.mask_id)
        return lp.gather(1, roll.gamma_idx[:, None]).squeeze(1)


__all__ = ["Estimator", "PolicyGradient", "one_step_estimator"]
