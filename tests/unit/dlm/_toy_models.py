"""Toy models the dLLM tests share."""

from __future__ import annotations

import torch


class PositionTable(torch.nn.Module):
    """Logits that depend only on the position (a fixed random table): the confidence order of any answer is known
    in closed form."""

    def __init__(self, vocab: int, length: int, seed: int = 0) -> None:
        super().__init__()
        self.table = torch.randn(length, vocab, generator=torch.Generator().manual_seed(seed)) * 2

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[: ids.shape[1]].expand(ids.shape[0], -1, -1).clone()
