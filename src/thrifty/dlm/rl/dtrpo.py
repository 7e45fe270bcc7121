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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.launch import Launch
from thrifty.dlm.likelihood import block_single_pass, trajectory_replay
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.losses import dpo_loss
from thrifty.dlm.rl.pairs import Pairs
from thrifty.dlm.rl.rollout import rollout_shape
from thrifty.dlm.rl.vrpo import elbo_scores
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


def decoded_in_blocks(step_map: torch.Tensor, block_len: int) -> bool:
    """Whether every row was decoded block by block in blocks of ``block_len``: each block's steps all come before
    the next block's (what :func:`~thrifty.dlm.likelihood.block_single_pass`'s re-masked states assume)."""
    if step_map.shape[1] % block_len:
        return False
    blocks = step_map.view(step_map.shape[0], -1, block_len)
    return bool((blocks.amax(dim=2)[:, :-1] < blocks.amin(dim=2)[:, 1:]).all())


def block_scores(policy: Any, ref: Any, prompt: torch.Tensor, answer: torch.Tensor, steps: torch.Tensor,
                 mask_id: int, generator: torch.Generator, block_len: int = 4,
                 **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(R̂ under the policy with gradients, R̂ under the reference) on one shared set of block draws."""
    draws = block_draws(steps, block_len, generator)
    theta = block_single_pass(policy, prompt, answer, steps, block_len, mask_id, generator, draws)[0]
    with torch.no_grad():
        reference = block_single_pass(ref, prompt, answer, steps, block_len, mask_id, generator, draws)[0]
    return theta, reference


def replay_scores(policy: Any, ref: Any, prompt: torch.Tensor, answer: torch.Tensor, steps: torch.Tensor,
                  mask_id: int, generator: torch.Generator, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(exact trajectory log-prob under the policy with gradients, under the reference): one forward per step."""
    theta = trajectory_replay(policy, prompt, answer, steps, mask_id)[0]
    with torch.no_grad():
        reference = trajectory_replay(ref, prompt, answer, steps, mask_id)[0]
    return theta, reference


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
        if cfg.preference_estimator() == "block" and not all(
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
                                      block_len=self.block_len, n=cfg.mc_n)
        m = len(idx)
        loss, stats = dpo_loss(theta[:m], theta[m:], reference[:m], reference[m:], cfg.dpo_beta)
        self.opt.zero_grad()
        loss.backward()
        self.launch.average_grads(self.params)
        torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        return 1, {"loss": loss.item(), **stats}


__all__ = ["SCORES", "PreferenceUpdate", "block_draws", "block_scores", "decoded_in_blocks", "replay_scores"]
