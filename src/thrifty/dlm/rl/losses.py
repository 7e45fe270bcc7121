"""The policy-optimisation losses for masked diffusion LMs, as pure functions of log-probabilities.

- :func:`group_advantages` — A_i = r_i − mean of its group (d1: no division by the std; optional).
- :func:`k3_kl` — the k3 estimate exp(ref − θ) − (ref − θ) − 1 of KL(π_θ ‖ π_ref), per token.
- :func:`importance_weights` — DiFFPO's correction (our reconstruction): w = sg[min(π̃_old / μ, c)] between the
  surrogate policy's old log-probs and the sampler's behaviour log-probs (the tokens' draws, plus — when the
  caller adds them — each token's share of its step's position-choice log-prob), per token or per sequence.
- :func:`clipped_pg_loss` — PPO's clipped objective per token, times the importance weight, plus β·k3 KL;
  averaged over every completion token of the batch (``agg="token"``, the default: d1's Σ L·m / Σ m) or per
  sequence then over the batch (``agg="sequence"``).
- :func:`dpo_loss` — −log σ(β[(θ − ref)(chosen) − (θ − ref)(rejected)]) on sequence log-ratio estimates (dTRPO on
  trajectory ratios, VRPO on ELBOs).
- :func:`nfe_priced_reward` — r = correctness − λ · NFE / NFE_max (DiFFPO's joint sampler training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thrifty.core.errors import ConfigError

AGGREGATIONS = ("sequence", "token")


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = False,
                     eps: float = 1e-4) -> torch.Tensor:
    """(N,) rewards in consecutive groups of ``group_size`` → advantages r − group mean (÷ group std if ``scale``)."""
    if group_size < 1 or rewards.dim() != 1 or rewards.numel() % group_size:
        raise ConfigError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.reshape(-1, group_size)
    adv = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        adv = adv / (grouped.std(dim=1, keepdim=True, unbiased=True).nan_to_num(0.0) + eps)
    return adv.reshape(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π_θ ‖ π_ref): exp(ref − θ) − (ref − θ) − 1 ≥ 0."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def importance_weights(old_logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor, cap: float = 2.0,
                       level: str = "token") -> torch.Tensor:
    """w = min(exp(old − behaviour), cap), detached; ``level="sequence"`` uses the masked sum of the log-ratio over
    each sequence's tokens (one weight per sequence, broadcast to its tokens)."""
    if cap <= 0:
        raise ConfigError(f"the importance-weight cap must be > 0, got {cap}")
    log_ratio = (old_logp - behaviour_logp).detach()
    if level == "sequence":
        log_ratio = (log_ratio * mask).sum(dim=1, keepdim=True).expand_as(log_ratio)
    elif level != "token":
        raise ConfigError(f"importance weights are per 'token' or 'sequence', got {level!r}")
    return torch.exp(log_ratio).clamp(max=cap)


def _aggregate(per_token: torch.Tensor, mask: torch.Tensor, agg: str) -> torch.Tensor:
    m = mask.to(per_token.dtype)
    if agg == "sequence":
        return ((per_token * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)).mean()
    if agg == "token":
        return (per_token * m).sum() / m.sum().clamp(min=1)
    raise ConfigError(f"unknown aggregation {agg!r}; choose one of {', '.join(AGGREGATIONS)}")


def clipped_pg_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                    eps: float = 0.2, beta: float = 0.0, ref_logp: torch.Tensor | None = None,
                    weights: torch.Tensor | None = None, agg: str = "token") -> tuple[torch.Tensor, dict[str, float]]:
    """L_k = −w_k · min(ρ_k A, clip(ρ_k, 1 − ε, 1 + ε) A) + β · KL_k with ρ_k = exp(logp − old): (loss, stats).

    Shapes: logp, old_logp, ref_logp, weights, mask (N, G); advantages (N,)."""
    if beta > 0 and ref_logp is None:
        raise ConfigError("a KL penalty (beta > 0) needs the reference log-probs")
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages[:, None].to(logp.dtype)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - eps, 1 + eps) * adv)
    per_token = -surrogate if weights is None else -weights.detach() * surrogate
    kl = k3_kl(logp, ref_logp.detach()) if ref_logp is not None else torch.zeros_like(logp)
    if beta > 0:
        per_token = per_token + beta * kl
    loss = _aggregate(per_token, mask, agg)
    m = mask.bool()
    clipped = ((ratio < 1 - eps) | (ratio > 1 + eps)) & m
    stats = {"kl": float(_aggregate(kl.detach(), mask, agg)),
             "clip_frac": float(clipped.sum() / m.sum().clamp(min=1)),
             "ratio_mean": float(ratio.detach()[m].mean()) if bool(m.any()) else 1.0}
    if weights is not None:
        stats["is_weight_mean"] = float(weights.detach()[m].mean()) if bool(m.any()) else 1.0
    return loss, stats


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, chosen_ref: torch.Tensor, rejected_ref: torch.Tensor,
             beta: float = 0.1) -> tuple[torch.Tensor, dict[str, float]]:
    """−log σ(β[(chosen − chosen_ref) − (rejected − rejected_ref)]) averaged over pairs: (loss, stats).

    The arguments are per-pair sequence log-likelihood estimates (N,) — or, for estimates that are already ratios
    (dTRPO's R̂ = Σ T_b Σ (log θ − log ref)), pass the ratio as ``chosen`` and zeros as ``chosen_ref``."""
    if beta <= 0:
        raise ConfigError(f"the DPO beta must be > 0, got {beta}")
    margin = (chosen - chosen_ref.detach()) - (rejected - rejected_ref.detach())
    loss = -F.logsigmoid(beta * margin).mean()
    return loss, {"margin": float(margin.detach().mean()),
                  "pref_acc": float((margin.detach() > 0).float().mean())}


def rpo_nll(chosen: torch.Tensor, n_tokens: int, alpha: float) -> torch.Tensor:
    """RPO's likelihood term: α · mean over pairs of −(chosen's log-likelihood estimate) / ``n_tokens`` (the NLL per
    answer token); 0 when α = 0."""
    if alpha < 0 or n_tokens < 1:
        raise ConfigError("the RPO alpha must be >= 0 and n_tokens >= 1")
    return -alpha * chosen.mean() / n_tokens


def nfe_priced_reward(reward: torch.Tensor, nfe: torch.Tensor, nfe_max: float, price: float) -> torch.Tensor:
    """r − λ · NFE / NFE_max (λ = ``price``; 0 leaves the reward alone)."""
    if nfe_max <= 0 or price < 0:
        raise ConfigError("nfe_max must be > 0 and the NFE price >= 0")
    return reward - price * nfe.to(reward.dtype) / nfe_max


__all__ = ["AGGREGATIONS", "clipped_pg_loss", "dpo_loss", "group_advantages", "importance_weights", "k3_kl",
           "nfe_priced_reward", "rpo_nll"]
