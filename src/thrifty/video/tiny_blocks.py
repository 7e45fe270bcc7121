"""Transformer pieces shared by the tiny compressor and decoder: a pre-norm causal block and the mask builder.

Attention masks are boolean (True = may attend): causal, and keys that are padding never attended to. Every
query row keeps at least itself, so no row is empty and no NaN appears.
"""

from __future__ import annotations

import torch
from torch import nn


def causal_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, 1, L, L) mask from a (B, L) bool of real (non-padding) tokens: j ≤ i, key j real or j == i."""
    n = valid.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(n, dtype=torch.bool, device=valid.device)
    return ((causal[None] & valid[:, None, :]) | eye[None])[:, None]


class CausalBlock(nn.Module):
    """LayerNorm → multi-head self-attention → residual; LayerNorm → GELU MLP (4×) → residual."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d // n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(b, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        att = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = h + self.out(att.transpose(1, 2).reshape(b, n, d))
        return h + self.mlp(self.norm2(h))


def init_weights(module: nn.Module, gen: torch.Generator, std: float = 0.02) -> None:
    """Normal(0, std) weights and zero biases for every Linear / Embedding / Conv2d, drawn from ``gen``."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Linear | nn.Embedding | nn.Conv2d):
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
                else:
                    m.weight.normal_(0.0, std, generator=gen)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()
