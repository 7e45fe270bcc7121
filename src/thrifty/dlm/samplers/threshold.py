"""Confidence-threshold parallel decoding (Fast-dLLM): each step commits the current block's most confident
masked token and every other one whose confidence is at least ``threshold``."""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.samplers._select import Proposal, top_k
from thrifty.dlm.samplers.base import BlockSampler
from thrifty.dlm.samplers.choice import ChoiceRule


class ThresholdSampler(BlockSampler):
    def __init__(self, mask_id: int, threshold: float = 0.9, block_len: int | None = None,
                 temperature: float = 0.0, cfg_scale: float = 0.0, **options: Any) -> None:
        super().__init__(mask_id, block_len, temperature, cfg_scale=cfg_scale, **options)
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold

    def choice_rule(self) -> ChoiceRule:
        return ChoiceRule("threshold", self.temperature, self.threshold)

    def choose(self, prop: Proposal, candidates: torch.Tensor, block_step: int, block: tuple[int, int],
               generator: torch.Generator) -> torch.Tensor:
        first = top_k(prop.confidence, candidates, torch.ones(candidates.shape[0], dtype=torch.long))
        return first | (candidates & (prop.confidence >= self.threshold))


__all__ = ["ThresholdSampler"]
