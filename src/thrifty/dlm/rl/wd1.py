"""wd1's ratio-free objective: a weighted likelihood of the group's own answers (dLLM spec, wd1).

For the answers o_i of one prompt with advantages A_i (group-mean rewards subtracted, as diffu-GRPO),
w⁺ = softmax(A) and w⁻ = softmax(−A) over the group, and with s_i = Σ_k log p_θ(o_i^k) over the answer's tokens
(d1's one-step estimate):

    L = Σ_i w⁻_i s_i − Σ_i w⁺_i s_i

raises the likelihood of the better answers and lowers that of the worse ones, with no old-policy ratio, no clip
and no reference model (so no second forward pass per step). Groups whose answers all score alike get w⁺ = w⁻ and
contribute nothing. The loss is averaged over groups.

Our choice: the published trainer takes the softmax over each device's local batch; we take it over each prompt's
group, so a step does not depend on how many processes share the batch (the 2-process runs equal the 1-process
run), and it is the same thing when a device holds one group.
"""

from __future__ import annotations

import torch

from thrifty.core.errors import ConfigError


def wd1_weights(advantages: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(w⁺, w⁻), each (N,): softmax of A and of −A within each group of ``group_size`` consecutive rows."""
    if group_size < 1 or advantages.dim() != 1 or advantages.numel() % group_size:
        raise ConfigError(f"{advantages.numel()} advantages do not split into groups of {group_size}")
    grouped = advantages.detach().reshape(-1, group_size).double()
    return grouped.softmax(dim=1).reshape(-1), (-grouped).softmax(dim=1).reshape(-1)


def wd1_loss(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
             group_size: int) -> tuple[torch.Tensor, dict[str, float]]:
    """wd1's loss (see the module notes) and its stats. Shapes: ``logp``, ``mask`` (N, G); ``advantages`` (N,)."""
    if logp.shape != mask.shape or logp.shape[0] != advantages.numel():
        raise ConfigError(f"logp {tuple(logp.shape)}, mask {tuple(mask.shape)} and {advantages.numel()} advantages "
                          "do not match")
    w_pos, w_neg = wd1_weights(advantages, group_size)
    seq = (logp * mask.to(logp.dtype)).sum(dim=1)  # s_i
    per_row = (w_neg - w_pos).to(seq.dtype) * seq
    n_groups = advantages.numel() // group_size
    loss = per_row.sum() / n_groups
    stats = {"w_pos_max": float(w_pos.reshape(-1, group_size).max(dim=1).values.mean()),
             "answer_logp": float(seq.detach().mean())}
    return loss, stats


__all__ = ["wd1_loss", "wd1_weights"]
