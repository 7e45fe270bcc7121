"""DiFFPO (our reconstruction): d1's update made off-policy-aware, on a better surrogate, with a learned sampler.

- Surrogate: two-times mean-field log-probs — one recorded step t per sequence (drawn with the step's mask seed,
  so the policy, old policy and reference share it); tokens committed before t scored with the answer fully
  masked, the rest given the state just before t.
- Importance weights w = sg[min(π̃_old / μ, c)] between the surrogate and the sampler's behaviour probabilities
  recorded during the rollout, per token (or per sequence), scaling the clipped objective. μ is the token's draw
  probability (``trajectory_terms: tokens``, what ``auto`` gives here) or that times the token's even share of its
  step's position-choice probability (``tokens+positions``: per sequence, μ is then the exact probability of the
  sampled trajectory; per token the split is our choice). The surrogate π̃ scores answers without an order, so
  neither μ makes the weight exact: the weight would need the answer's marginal Σ_orders P(τ), which is intractable.
- Joint sampler training: a head picks γ per prompt from a grid; rollouts decode with the entropy-bounded sampler at
  that γ; the choice's log-prob enters the same clipped ratio and the reward may price forward passes.
Every piece is switchable in :class:`~thrifty.dlm.rl.config.DlmRLConfig` (``estimator``, ``is_level``,
``trajectory_terms``, ``joint_sampler``, ``nfe_price``, ``train_policy``).
"""

from __future__ import annotations

from typing import Any

import torch

from thrifty.dlm.likelihood import two_times_mean_field
from thrifty.dlm.rl.diffu_grpo import Estimator
from thrifty.dlm.rl.rollout import Rollouts


def split_steps(step_map: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N,) one of each sequence's recorded steps, uniformly."""
    out = []
    for row in step_map:
        steps = torch.unique(row)
        out.append(steps[torch.randint(len(steps), (1,), generator=generator)].item())
    return torch.tensor(out, dtype=torch.long)


def two_times_estimator() -> Estimator:
    """DiFFPO's surrogate log-probs with a per-sequence split step drawn from the seed."""

    def estimate(model: Any, roll: Rollouts, mask_id: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        t = split_steps(roll.step_map, gen).to(roll.step_map.device)
        return two_times_mean_field(model, roll.prompt_ids, roll.answer_ids, roll.step_map, mask_id, gen, t=t)[0]

    return estimate


__all__ = ["split_steps", "two_times_estimator"]
