"""The masked-diffusion ELBO loss (a pure function): weighted cross-entropy on the masked tokens.

L = Σ_b w(t_b) Σ_i m_bi · CE(logits_bi, x0_bi) / Z, with m the masked positions and w from
:func:`thrifty.dlm.masking.loss_weight` (``weight="scheduler"``) or 1 (``"uniform"``). The normaliser Z:

- ``token``: the number of maskable tokens in the batch (B·L in pretraining; Σ |answer| in SFT);
- ``sequence``: each sequence's sum divided by its own maskable length, then averaged over the batch (LLaDA's
  SFT loss Σ CE / t / |answer| / B, where |answer| counts padded EOS tokens);
- ``batch``: divided by B.

With the linear schedule and ``token`` normalisation over all positions this is LLaDA's pretraining loss, an
upper bound on the negative log-likelihood.
"""

from __future__ import annotations

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.masking import loss_weight

WEIGHTS = ("scheduler", "uniform")
NORMS = ("token", "sequence", "batch")


def elbo_loss(logits: torch.Tensor, x0: torch.Tensor, masked: torch.Tensor, t: torch.Tensor,
              maskable: torch.Tensor | None = None, schedule: str = "linear", eps: float = 1e-3,
              weight: str = "scheduler", norm: str = "token") -> torch.Tensor:
    """The loss for logits (B, L, V) of the noised batch, clean tokens x0 (B, L), the masked positions (B, L),
    times t (B,) and the maskable positions (default all)."""
    if weight not in WEIGHTS or norm not in NORMS:
        raise ConfigError(f"weight must be one of {WEIGHTS} and norm one of {NORMS}, got {weight!r}, {norm!r}")
    if logits.dim() != 3 or logits.shape[:2] != x0.shape or masked.shape != x0.shape or t.shape != x0.shape[:1]:
        raise ConfigError("logits must be (B, L, V), x0 and masked (B, L), t (B,)")
    if maskable is None:
        maskable = torch.ones_like(masked, dtype=torch.bool)
    if bool((masked & ~maskable.bool()).any()):
        raise ConfigError("a masked position is outside the maskable ones (the prompt must never be masked)")
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), x0, reduction="none")  # (B, L)
    w = loss_weight(t, schedule, eps) if weight == "scheduler" else torch.ones_like(t)
    per_seq = (ce * masked.float()).sum(dim=1) * w  # (B,)
    if norm == "token":
        return per_seq.sum() / maskable.float().sum().clamp(min=1.0)
    if norm == "sequence":
        return (per_seq / maskable.float().sum(dim=1).clamp(min=1.0)).mean()
    return per_seq.sum() / x0.shape[0]


__all__ = ["NORMS", "WEIGHTS", "elbo_loss"]
