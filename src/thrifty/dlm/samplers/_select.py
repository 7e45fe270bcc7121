"""What every sampler shares: proposing tokens from logits (greedy or Gumbel-max in float64), their confidence
and entropy, choosing the top-k per row (ties to the lower position), and committing chosen positions (never a
committed one)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thrifty.dlm.samplers.choice import distributions


@dataclass
class Proposal:
    tokens: torch.Tensor  # (B, L) proposed token per position
    confidence: torch.Tensor  # (B, L) softmax probability of the proposed token
    entropy: torch.Tensor  # (B, L) entropy of the predictive distribution (nats)
    logp: torch.Tensor  # (B, L) log-probability the sampler drew the proposed token with (behaviour policy)
    probs: torch.Tensor | None = None  # (B, L, V) softmax(logits): the confidence distribution
    log_q: torch.Tensor | None = None  # (B, L, V) log softmax(logits / T): the drawing distribution


def propose(logits: torch.Tensor, temperature: float, generator: torch.Generator,
            mask_id: int | None = None) -> Proposal:
    """x̂₀ = argmax(logits/T + Gumbel noise) (greedy at T = 0), with its probability, the entropy and the
    behaviour log-probability (under softmax(logits/T); under softmax(logits) when greedy); the mask token itself is
    never proposed (its logit is removed)."""
    logits = logits.double()
    if mask_id is not None:
        logits = logits.clone()
        logits[..., mask_id] = float("-inf")
    probs, log_q = distributions(logits, temperature)
    if temperature > 0:
        # drawn where the generator lives (a CPU generator keeps CPU and GPU runs on one stream)
        u = torch.rand(logits.shape, generator=generator, dtype=torch.float64, device=generator.device)
        u = u.to(logits.device)
        gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))
        tokens = (logits / temperature + gumbel).argmax(dim=-1)
    else:
        tokens = logits.argmax(dim=-1)
    confidence = probs.gather(-1, tokens[..., None]).squeeze(-1)
    entropy = -(probs * torch.log(probs.clamp(min=1e-300))).sum(dim=-1)
    return Proposal(tokens, confidence, entropy, log_q.gather(-1, tokens[..., None]).squeeze(-1), probs, log_q)


def top_k(scores: torch.Tensor, candidates: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Bool (B, L): the ``k[b]`` highest-scoring candidates of each row (fewer when a row has fewer); equal scores
    rank the lower position first (a stable sort — the rule :mod:`.choice` assumes)."""
    masked = torch.where(candidates, scores.double(), torch.full_like(scores, float("-inf"), dtype=torch.float64))
    order = masked.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < k[:, None]) & candidates


def commit(x: torch.Tensor, tokens: torch.Tensor, chosen: torch.Tensor, step_map: torch.Tensor, step: int,
           prompt_len: int, logp: torch.Tensor | None = None, logp_map: torch.Tensor | None = None,
           position_share: torch.Tensor | None = None, position_map: torch.Tensor | None = None) -> None:
    """Write the chosen proposals into x and record their step (and behaviour log-prob, and each one's share of
    the step's position-choice log-prob) in place."""
    x[chosen] = tokens[chosen]
    answer = chosen[:, prompt_len:]
    step_map[answer] = step
    if logp is not None and logp_map is not None:
        logp_map[answer] = logp[:, prompt_len:][answer].to(logp_map.dtype)
    if position_share is not None and position_map is not None:
        position_map[answer] = position_share[:, prompt_len:][answer].to(position_map.dtype)


__all__ = ["Proposal", "commit", "propose", "top_k"]
