"""The entropy-bounded sampler: order the current block's masked positions by entropy (ascending) and commit the
largest prefix U with Σ_{l∈U} H_l − max_{l∈U} H_l ≤ γ (at least one token). The left side bounds the mutual
information among the accepted tokens, so committing them together costs little; γ = 0 is one token a step."""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.samplers._select import Proposal, top_k
from thrifty.dlm.samplers.base import BlockSampler
from thrifty.dlm.samplers.choice import ChoiceRule


def eb_count(entropy_sorted: torch.Tensor, valid: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    """Per row: how many of the ascending entropies (invalid entries last) form the largest admissible prefix
    (Σ H − max H ≤ γ), at least 1 and at most the number of valid entries."""
    h = torch.where(valid, entropy_sorted, torch.zeros_like(entropy_sorted))
    acc = torch.cumsum(h, dim=1)
    cond = ((acc - torch.cummax(h, dim=1).values) <= torch.as_tensor(gamma, dtype=h.dtype).reshape(-1, 1)) & valid
    admissible = torch.cumprod(cond.long(), dim=1).sum(dim=1)
    return torch.clamp(torch.minimum(admissible, valid.sum(dim=1)), min=1)


class EntropyBoundedSampler(BlockSampler):
    def __init__(self, mask_id: int, gamma: float = 0.1, block_len: int | None = None,
                 temperature: float = 0.0, cfg_scale: float = 0.0, **options: Any) -> None:
        super().__init__(mask_id, block_len, temperature, cfg_scale=cfg_scale, **options)
        if gamma < 0:
            raise ConfigError(f"gamma must be >= 0, got {gamma}")
        self.gamma = gamma

    def gamma_for(self, batch: int) -> torch.Tensor:
        """γ per sequence (a prompt-adaptive sampler overrides this)."""
        return torch.full((batch,), float(self.gamma), dtype=torch.float64)

    def choice_rule(self) -> ChoiceRule:
        return ChoiceRule("entropy", self.temperature)

    def choose(self, prop: Proposal, candidates: torch.Tensor, block_step: int, block: tuple[int, int],
               generator: torch.Generator) -> torch.Tensor:
        h = torch.where(candidates, prop.entropy, torch.full_like(prop.entropy, float("inf")))
        order = h.argsort(dim=1)
        h_sorted = h.gather(1, order)
        k = eb_count(h_sorted, torch.isfinite(h_sorted), self.gamma_for(candidates.shape[0]).to(h.device))
        return top_k(-prop.entropy, candidates, k)


__all__ = ["EntropyBoundedSampler", "eb_count"]
