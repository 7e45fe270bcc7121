"""LLaDA's block sampler: a fixed number of steps, each committing a scheduled number of the current block's
masked tokens — the most confident ones (``remasking="low_confidence"``: the least confident stay masked) or
random ones (``"random"``). A block's tokens are spread evenly over its steps, the remainder going to the
earliest steps."""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.errors import ConfigError, check_choice
from thrifty.dlm.samplers._select import Proposal, top_k
from thrifty.dlm.samplers.base import BlockSampler
from thrifty.dlm.samplers.choice import ChoiceRule

REMASKING = ("low_confidence", "random")


def tokens_per_step(block_len: int, steps: int) -> list[int]:
    """How many tokens each of a block's ``steps`` commits: even, remainder to the earliest steps."""
    base, extra = divmod(block_len, steps)
    return [base + (1 if i < extra else 0) for i in range(steps)]


class LowConfidenceSampler(BlockSampler):
    def __init__(self, mask_id: int, steps: int, block_len: int | None = None, temperature: float = 0.0,
                 remasking: str = "low_confidence", cfg_scale: float = 0.0, **options: Any) -> None:
        super().__init__(mask_id, block_len, temperature, cfg_scale=cfg_scale, **options)
        check_choice("remasking", remasking, REMASKING)
        if steps < 1:
            raise ConfigError(f"steps must be >= 1, got {steps}")
        self.steps, self.remasking = steps, remasking

    def sample(self, model, prompt_ids, gen_len, generator):
        size = self.block_len or gen_len
        n_blocks = gen_len // size if gen_len % size == 0 else 0
        if n_blocks == 0 or self.steps % n_blocks:
            raise ConfigError(f"steps {self.steps} must split evenly over {gen_len // size or '?'} blocks of "
                              f"{size} (gen_len {gen_len})")
        per_block = self.steps // n_blocks
        if per_block > size:
            raise ConfigError(f"{per_block} steps per block cannot fill a block of {size} tokens at >= 1 a step")
        self._schedule = tokens_per_step(size, per_block)
        return super().sample(model, prompt_ids, gen_len, generator)

    def choice_rule(self) -> ChoiceRule:
        return ChoiceRule(self.remasking, self.temperature)

    def choose(self, prop: Proposal, candidates: torch.Tensor, block_step: int, block: tuple[int, int],
               generator: torch.Generator) -> torch.Tensor:
        k = torch.full((candidates.shape[0],), self._schedule[block_step], device=candidates.device)
        if self.remasking == "random":
            scores = torch.rand(candidates.shape, generator=generator, dtype=torch.float64,
                                device=generator.device).to(candidates.device)
        else:
            scores = prop.confidence
        return top_k(scores, candidates, k)


__all__ = ["REMASKING", "LowConfidenceSampler", "tokens_per_step"]
