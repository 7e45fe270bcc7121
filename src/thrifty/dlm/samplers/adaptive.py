"""A prompt-adaptive entropy-bounded sampler: each sequence's bound γ comes from a per-prompt predictor, so easy
prompts are decoded in few steps and hard ones carefully (DiFFPO trains such a predictor with the policy).

``predictor(prompt_ids) -> (B,)`` returns γ per prompt directly, or indices into ``grid`` (a discrete set of
γ values, e.g. the model's extra first-token choice over a grid) when ``grid`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.samplers.base import Sample
from thrifty.dlm.samplers.entropy_bounded import EntropyBoundedSampler


class AdaptiveSampler(EntropyBoundedSampler):
    def __init__(self, mask_id: int, predictor: Callable[[torch.Tensor], torch.Tensor],
                 grid: Sequence[float] | None = None, block_len: int | None = None,
                 temperature: float = 0.0, cfg_scale: float = 0.0, **options: Any) -> None:
        super().__init__(mask_id, 0.0, block_len, temperature, cfg_scale, **options)
        if grid is not None and (not grid or any(g < 0 for g in grid)):
            raise ConfigError("grid must list non-negative γ values")
        self.predictor, self.grid = predictor, None if grid is None else torch.tensor(list(grid), dtype=torch.float64)
        self._gammas: torch.Tensor | None = None

    def gammas(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """γ per prompt (B,)."""
        out = torch.as_tensor(self.predictor(prompt_ids))
        if out.shape != (prompt_ids.shape[0],):
            raise ConfigError(f"the γ predictor must return one value per prompt, got shape {tuple(out.shape)}")
        if self.grid is not None:
            idx = out.long()
            if bool(((idx < 0) | (idx >= len(self.grid))).any()):
                raise ConfigError(f"γ grid index out of range 0..{len(self.grid) - 1}")
            return self.grid[idx]
        if bool((out < 0).any()):
            raise ConfigError("γ must be >= 0")
        return out.double()

    def gamma_for(self, batch: int) -> torch.Tensor:
        assert self._gammas is not None and self._gammas.shape == (batch,)
        return self._gammas

    def sample(self, model: Any, prompt_ids: torch.Tensor, gen_len: int, generator: torch.Generator) -> Sample:
        self._gammas = self.gammas(prompt_ids)
        try:
            return super().sample(model, prompt_ids, gen_len, generator)
        finally:
            self._gammas = None


__all__ = ["AdaptiveSampler"]
