"""What every sampler shares: proposing tokens from logits (greedy or Gumbel-max in float64), their confidence
and entropy, choosing the top-k per row, and committing chosen positions (never a committed one)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Proposal:
    tokens: torch.Tensor  # (B, L) proposed token per position
    confidence: torch.Tensor  # (B, L) softmax probability of the proposed token
    entropy: torch.Tensor  # (B, L) entropy of the predictive distribution (nats)
    logp: torch.Tensor  # (B, L) log-probability the sampler drew the proposed token with (behaviour policy)


def propose(logits: torch.Tensor, temperature: float, generator: torch.Generator,
            mask_id: int | None = None) -> Proposal:
    """x̂₀ = argmax(logits/T + Gumbel noise) (greedy at T = 0), with its probability, the entropy and the
    behaviour log-probability (under softmax(logits/T); under softmax(logits) when greedy); the mask token itself is
    never proposed (its logit is removed)."""
    logits = logits.double()
    if mask_id is not None:
        logits = logits.clone()
        logits[..., mask_id] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    if temperature > 0:
        u = torch.rand(logits.shape, generator=generator, dtype=torch.float64, device=logits.device)
        gumbel = -torch.log(-torch.log(u.clamp(min=1e-300)))
        tokens = (logits / temperature + gumbel).argmax(dim=-1)
    else:
        tokens = logits.argmax(dim=-1)
    confidence = probs.gather(-1, tokens[..., None]).squeeze(-1)
    entropy = -(probs * torch.log(probs.clamp(min=1e-300))).sum(dim=-1)
    tempered = torch.log_softmax(logits / temperature, dim=-1) if temperature > 0 else torch.log(probs)
    return Proposal(tokens, confidence, entropy, tempered.gather(-1, tokens[..., None]).squeeze(-1))


def top_k(scores: torch.Tensor, candidates: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Bool (B, L): the ``k[b]`` highest-scoring candidates of each row (fewer when a row has fewer)."""
    masked = torch.where(candidates, scores.double(), torch.full_like(scores, float("-inf"), dtype=torch.float64))
    order = masked.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < k[:, None]) & candidates


def commit(x: torch.Tensor, tokens: torch.Tensor, chosen: torch.Tensor, step_map: torch.Tensor, step: int,
           prompt_len: int, logp: torch.Tensor | None = None, logp_map: torch.Tensor | None = None) -> None:
    """Write the chosen proposals into x and record their step (and behaviour log-prob) in place."""
    x[chosen] = tokens[chosen]
    step_map[chosen[:, prompt_len:]] = step
    if logp is not None and logp_map is not None:
        answer = chosen[:, prompt_len:]
        logp_map[answer] = logp[:, prompt_len:][answer].to(logp_map.dtype)


__all__ = ["Proposal", "commit", "propose", "top_k"]
