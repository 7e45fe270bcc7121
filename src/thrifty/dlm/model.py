"""A small bidirectional transformer for masked diffusion, trainable from scratch on CPU.

Pre-norm blocks (RMSNorm, multi-head self-attention without a causal mask, SwiGLU MLP), rotary position
encodings and a tied output head; the network gets no time input (masked diffusion needs none: the mask tokens
say how noisy the input is). Positions are 1-D ``(B, L)`` for sequences or 2-D ``(B, L, 2)`` (row, column) for
grids such as Sudoku: 2-D rotary encodings rotate half of each head's pairs by the row and half by the column.
``attn_mask`` (``(B, L, L)`` or ``(L, L)``, True = may attend) restricts attention, e.g. to blocks for dTRPO's
single-pass scoring; ``return_hidden=True`` also returns the final hidden states (B, L, d) for heads that read them.
``forward_kv`` runs only some positions (given their absolute positions) against cached keys/values of the others
and returns the run positions' keys/values per layer — the hook :mod:`thrifty.dlm.kv_cache` builds block caches on.
Initialisation draws from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from thrifty.core.errors import ConfigError


@dataclass(frozen=True)
class DiffusionLMConfig:
    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 384
    max_len: int = 512
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.n_layers < 1 or self.n_heads < 1:
            raise ConfigError("vocab_size must be >= 2, n_layers and n_heads >= 1")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 4:
            raise ConfigError(f"d_model {self.d_model} must split into {self.n_heads} heads of a size divisible "
                              "by 4 (rotary pairs, halved for 2-D positions)")


def _rotary(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (B, 1, L, head_dim/2) of the rotation angles for 1-D (B, L) or 2-D (B, L, 2) positions."""
    pos = positions.float()
    if pos.dim() == 2:
        pairs = head_dim // 2
        freqs = base ** (-torch.arange(pairs, device=pos.device, dtype=torch.float32) / pairs)
        angles = pos[..., None] * freqs
    else:
        pairs = head_dim // 4  # half of the pairs per axis
        freqs = base ** (-torch.arange(pairs, device=pos.device, dtype=torch.float32) / pairs)
        angles = torch.cat([pos[..., 0:1] * freqs, pos[..., 1:2] * freqs], dim=-1)
    return torch.cos(angles)[:, None], torch.sin(angles)[:, None]


def _apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)


KV = tuple[torch.Tensor, torch.Tensor]  # one layer's rotated keys and values, each (B, H, L, head_dim)


class _Block(nn.Module):
    def __init__(self, cfg: DiffusionLMConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.norm1, self.norm2 = nn.RMSNorm(cfg.d_model), nn.RMSNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, attn_mask: torch.Tensor | None,
                context: KV | None = None) -> tuple[torch.Tensor, KV]:
        """New hidden states and this call's rotated keys/values (B, H, L, head_dim); ``context`` holds keys/values
        of further positions that every query also attends to (placed before the call's own)."""
        b, n, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = _apply_rotary(q, cos, sin), _apply_rotary(k, cos, sin)
        keys, values = (k, v) if context is None else (torch.cat([context[0], k], 2), torch.cat([context[1], v], 2))
        att = nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=attn_mask)
        h = h + self.out(att.transpose(1, 2).reshape(b, n, d))
        gate, up = self.gate_up(self.norm2(h)).chunk(2, dim=-1)
        return h + self.down(nn.functional.silu(gate) * up), (k, v)


class DiffusionLM(nn.Module):
    """Bidirectional transformer: token ids (B, L) → logits (B, L, V) (see the module notes)."""

    def __init__(self, cfg: DiffusionLMConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model)
        self._init(generator or torch.Generator().manual_seed(0))

    def _init(self, gen: torch.Generator) -> None:
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                scale = std / math.sqrt(2 * self.cfg.n_layers) if name.endswith(("out.weight", "down.weight")) else std
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _positions(self, ids: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        if ids.dim() != 2:
            raise ConfigError(f"ids must be (B, L), got {tuple(ids.shape)}")
        b, n = ids.shape
        if n > self.cfg.max_len:
            raise ConfigError(f"sequence of {n} tokens is longer than max_len {self.cfg.max_len}")
        if positions is None:
            positions = torch.arange(n, device=ids.device).expand(b, n)
        if positions.shape[:2] != (b, n) or positions.dim() not in (2, 3):
            raise ConfigError("positions must be (B, L) or (B, L, 2)")
        return positions

    def forward(self, ids: torch.Tensor, positions: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, return_hidden: bool = False):
        positions = self._positions(ids, positions)
        cos, sin = _rotary(positions, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base)
        if attn_mask is not None:
            attn_mask = attn_mask.bool()
            attn_mask = attn_mask[:, None] if attn_mask.dim() == 3 else attn_mask
        h = self.embed(ids)
        for block in self.blocks:
            h, _ = block(h, cos, sin, attn_mask)
        h = self.norm(h)
        logits = h @ self.embed.weight.T  # tied head
        return (logits, h) if return_hidden else logits

    def forward_kv(self, ids: torch.Tensor, positions: torch.Tensor | None = None,
                   context: list[KV] | None = None) -> tuple[torch.Tensor, list[KV]]:
        """Logits (B, L, V) of ``ids`` at their absolute ``positions`` (default 0..L−1), every position also
        attending to ``context`` (per layer, keys/values of other positions from an earlier call), and the keys and
        values of ``ids`` per layer. Without context this is ``forward`` (same logits, up to float rounding)."""
        positions = self._positions(ids, positions)
        if context is not None and (len(context) != len(self.blocks) or context[0][0].shape[0] != ids.shape[0]):
            raise ConfigError(f"context must hold keys/values for {len(self.blocks)} layers and {ids.shape[0]} rows")
        cos, sin = _rotary(positions, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_base)
        h, kv = self.embed(ids), []
        for i, block in enumerate(self.blocks):
            h, layer_kv = block(h, cos, sin, None, None if context is None else context[i])
            kv.append(layer_kv)
        return self.norm(h) @ self.embed.weight.T, kv

__all__ = ["DiffusionLM", "DiffusionLMConfig"]
