"""The equal-compute control of `thrifty dlm rl` (``algo: sft``): more of the SFT objective — the ELBO on answer
tokens — on the RL run's training pool, one optimiser step per update."""

from __future__ import annotations

from typing import Any

import torch

from thrifty.dlm.launch import Launch
from thrifty.dlm.loss import elbo_loss
from thrifty.dlm.masking import forward_mask, sample_times
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.run import task_tensors
from thrifty.dlm.tasks import DlmExample, DlmTask


class ContinuedSFT:
    """The control: more of the SFT objective (ELBO on answer tokens) on the training pool. One forward per
    backward, so on several processes the policy is called through DDP's wrapper, which averages the gradients
    (:meth:`~thrifty.dlm.launch.Launch.wrap`)."""

    def __init__(self, cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, opt: torch.optim.Optimizer,
                 pool: list[DlmExample], launch: Launch | None = None) -> None:
        self.cfg, self.task, self.policy, self.opt = cfg, task, policy, opt
        self.launch = launch or Launch()
        self.model = self.launch.wrap(policy)
        self.data = task_tensors(task, pool)
        self.maskable = torch.zeros(cfg.sft_batch, self.data.shape[1], dtype=torch.bool)
        self.maskable[:, task.prompt_len + 1:] = True

    def update(self, _pool: Any, gen: torch.Generator) -> tuple[int, dict[str, float]]:
        x0 = self.data[torch.randint(len(self.data), (self.cfg.sft_batch,), generator=gen)]  # the global batch
        t = sample_times(self.cfg.sft_batch, gen)
        xt, masked = forward_mask(x0, t, self.task.vocab.mask_id, gen, maskable=self.maskable)
        mine, dev = self.launch.rows(self.cfg.sft_batch), self.launch.device
        xt, x0, masked, t, maskable = (v[mine].to(dev) for v in (xt, x0, masked, t, self.maskable))
        loss = elbo_loss(self.model(xt), x0, masked, t, maskable=maskable, norm="sequence")
        self.opt.zero_grad()
        loss.backward()
        if self.model is self.policy:  # not wrapped by DDP (one process, or a sharding config): average here
            self.launch.average_grads(list(self.policy.parameters()))
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.grad_clip)
        self.opt.step()
        return 1, {"loss": loss.item()}


__all__ = ["ContinuedSFT"]
