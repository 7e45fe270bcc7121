"""The forward process of masked diffusion: noise schedules, training times, and masking (pure functions).

A schedule gives α(t), the probability that a token is still unmasked at time t ∈ (0, 1]:

- ``linear``: α(t) = 1 − t, so the mask probability is t (LLaDA, MDLM's log-linear form);
- ``cosine``: α(t) = cos(πt/2).

``mask_prob`` floors the mask probability at ε: p = (1 − ε)(1 − α(t)) + ε (LLaDA's p_mask = (1 − ε)t + ε).
``loss_weight`` is the ELBO weight w(t) = −α′(t) / (1 − α(t)): exactly 1/t for ``linear`` — taken as 1/p, the
floored mask probability, as LLaDA does — and (π/2)·sin(πt/2) / (1 − cos(πt/2)) for ``cosine``.

Training times: ``sample_times`` draws i.i.d. U(0, 1) or, by default, MDLM's low-discrepancy times
t_i = (u_i + i)/n with u_i ~ U(0, 1) independent — one time in each stratum of width 1/n (stratified sampling,
never more variance than i.i.d. for an average over the times).

Every random draw takes an explicit ``torch.Generator``; the mask token id is passed in (from the tokenizer or
config), never assumed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from thrifty.core.errors import ConfigError, check_choice

SCHEDULES = ("linear", "cosine")


def _check(schedule: str, eps: float) -> None:
    check_choice("noise schedule", schedule, SCHEDULES)
    if not 0.0 <= eps < 1.0:
        raise ConfigError(f"eps must be in [0, 1), got {eps}")


def keep_prob(t: torch.Tensor, schedule: str = "linear") -> torch.Tensor:
    """α(t): the probability that a token is still unmasked at time t."""
    _check(schedule, 0.0)
    return 1.0 - t if schedule == "linear" else torch.cos(0.5 * math.pi * t)


def mask_prob(t: torch.Tensor, schedule: str = "linear", eps: float = 1e-3) -> torch.Tensor:
    """p_mask(t) = (1 − ε)(1 − α(t)) + ε."""
    _check(schedule, eps)
    return (1.0 - eps) * (1.0 - keep_prob(t, schedule)) + eps


def loss_weight(t: torch.Tensor, schedule: str = "linear", eps: float = 1e-3) -> torch.Tensor:
    """The ELBO weight w(t) = −α′(t)/(1 − α(t)) (``linear``: 1/p_mask, see the module notes)."""
    _check(schedule, eps)
    if schedule == "linear":
        return 1.0 / mask_prob(t, schedule, eps)
    half = 0.5 * math.pi
    return half * torch.sin(half * t) / torch.clamp(1.0 - torch.cos(half * t), min=1e-12)


def sample_times(n: int, generator: torch.Generator, low_discrepancy: bool = True, t_min: float = 1e-5,
                 device: Any = None) -> torch.Tensor:
    """n training times in [t_min, 1): low-discrepancy (one per stratum of width 1/n) or i.i.d. uniform."""
    if n < 1:
        raise ConfigError(f"need at least one time, got n={n}")
    if low_discrepancy:
        u = torch.rand(n, generator=generator, device=device)
        t = ((u + torch.arange(n, device=device, dtype=torch.float32)) / n) % 1.0
    else:
        t = torch.rand(n, generator=generator, device=device)
    return t.clamp(min=t_min)


def forward_mask(x0: torch.Tensor, t: torch.Tensor, mask_id: int, generator: torch.Generator,
                 schedule: str = "linear", eps: float = 1e-3,
                 maskable: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, masked): each maskable token of x0 (B, L) is replaced by ``mask_id`` independently with probability
    p_mask(t_b) (t: (B,)). ``maskable`` (B, L) bool marks the tokens that may be masked (SFT: the answer, never the
    prompt); default all."""
    if x0.dim() != 2 or t.shape != (x0.shape[0],):
        raise ConfigError(f"x0 must be (B, L) and t (B,), got {tuple(x0.shape)} and {tuple(t.shape)}")
    if maskable is None:
        maskable = torch.ones_like(x0, dtype=torch.bool)
    elif maskable.shape != x0.shape:
        raise ConfigError(f"maskable must have x0's shape {tuple(x0.shape)}, got {tuple(maskable.shape)}")
    p = mask_prob(t, schedule, eps)[:, None]
    draw = torch.rand(x0.shape, generator=generator, device=x0.device)
    masked = (draw < p) & maskable.bool()
    return torch.where(masked, torch.full_like(x0, mask_id), x0), masked


__all__ = ["SCHEDULES", "forward_mask", "keep_prob", "loss_weight", "mask_prob", "sample_times"]
