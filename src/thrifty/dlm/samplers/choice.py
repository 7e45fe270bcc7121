"""The probability of a sampler's position choice: which masked positions a step commits, given the state.

A step of a confidence-ordered sampler draws a token y_j ~ q_j = softmax(logits_j / T) independently at every
masked position j of the current block (Gumbel-max), scores it by its confidence c_j = p_j(y_j) with
p_j = softmax(logits_j) (untempered), and commits a set S of positions by a rule on the confidences. The tokens
drawn at the positions left masked are thrown away, but they decided S, so the probability of the step is

    P(S, x_S | state) = Π_{i∈S} q_i(x_i) · P(S | x_S, state),

and the token replay (Σ log q_i(x_i) over the steps) omits the second factor. For the rules here the second factor
is exact and cheap: the draws are independent across positions, so

    P(S | x_S, state) = Π_{j ∈ M∖S} q_j(A_j),   A_j = {y : y would leave j outside S}

(M: the block's masked positions), an O(|M|·V) sum — no enumeration over the other positions' tokens is needed.

- ``low_confidence`` (LLaDA top-k, k fixed by the schedule): :func:`~thrifty.dlm.samplers._select.top_k` ranks by
  confidence with ties to the lower position (stable sort), so j ranks below every chosen i iff c_j < τ, or c_j = τ
  and j > i*, where τ = min_{i∈S} c_i and i* the highest chosen position with confidence τ. A_j = {y : p_j(y) < τ}
  ∪ {y : p_j(y) = τ, j > i*}.
- ``threshold`` (Fast-dLLM: the top-1 and every confidence ≥ θ): S is either all positions with c ≥ θ (then every
  other j needs c_j < θ) or a single top-1 below θ (every other j ranks below it). Both read A_j = {ranks below the
  weakest chosen} ∩ {p_j(y) < θ}; a set of two or more holding a confidence below θ has probability 0.
- ``random`` (LLaDA's random remasking): S is uniform among the k-subsets of M whatever the tokens: −log C(|M|, k),
  a constant free of the model (so the token replay is the trajectory log-probability up to it).
- ``entropy`` (entropy-bounded, adaptive): entropies do not depend on the drawn tokens, so S is a deterministic
  function of the state: log 1 = 0 under the model that decoded. Under another model the factor is an indicator
  (1 if that model's rule would pick S, else 0) with no gradient; it is not evaluated (0 is returned).
- temperature 0 (greedy): tokens and order are deterministic: 0, with the same caveat.

A factor can be 0 (−∞) only under a model other than the one that decoded (e.g. a trained policy scoring old
samples); ``floor`` replaces such a factor's log by a constant without gradient when a finite score is needed.
The logits must be the ones the sampler ranked by: with classifier-free guidance the guided ones (the samplers pass
their own, so what they record is exact; the replay scorers in :mod:`thrifty.dlm.rl.trajectory` call the model
plainly, as the RL samplers decode — without guidance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from thrifty.core.errors import ConfigError, check_choice

RULES = ("low_confidence", "threshold", "random", "entropy")


@dataclass(frozen=True)
class ChoiceRule:
    """How a sampler picks positions: ``kind`` (one of :data:`RULES`), the token temperature and, for
    ``threshold``, the confidence threshold."""

    kind: str
    temperature: float = 1.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        check_choice("position rule", self.kind, RULES)
        if (self.kind == "threshold") != (self.threshold is not None):
            raise ConfigError("a threshold goes with the 'threshold' rule and only with it")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")


def distributions(logits: torch.Tensor, temperature: float, mask_id: int | None = None) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    """(p = softmax(logits), log q = log softmax(logits / T)) in float64, the mask token removed — the confidence
    and the drawing distributions the samplers use (greedy: log q = log p)."""
    logits = logits.double()
    if mask_id is not None:
        logits = logits.clone()
        logits[..., mask_id] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    log_q = torch.log_softmax(logits / temperature, dim=-1) if temperature > 0 else torch.log(probs)
    return probs, log_q


def log_binomial(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """log C(n, k) elementwise (float64)."""
    n, k = n.double(), k.double()
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)


def choice_logp(probs: torch.Tensor, log_q: torch.Tensor, tokens: torch.Tensor, chosen: torch.Tensor,
                candidates: torch.Tensor, rule: ChoiceRule, floor: float = -math.inf) -> torch.Tensor:
    """log P(S | x_S, state) per row (B,): ``probs``/``log_q`` (B, L, V) from :func:`distributions`, ``tokens``
    (B, L) the committed tokens (read at ``chosen`` only), ``chosen`` (B, L) the committed set S, ``candidates``
    (B, L) the masked positions the rule chose from (S ⊆ candidates). Rows that commit nothing give 0. Impossible
    factors give ``floor`` (default −∞, exact). Differentiable in ``log_q``."""
    bsz = chosen.shape[0]
    chosen = chosen & candidates
    n_chosen = chosen.sum(dim=1)
    zero = torch.zeros(bsz, dtype=torch.float64, device=chosen.device)
    if rule.kind == "random":
        return torch.where(n_chosen > 0, -log_binomial(candidates.sum(dim=1), n_chosen), zero)
    if rule.kind == "entropy" or rule.temperature == 0:
        return zero
    cols = candidates.any(dim=0).nonzero().squeeze(1)  # the (block) columns any row chooses from
    p, lq = probs[:, cols], log_q[:, cols]
    sel, others = chosen[:, cols], candidates[:, cols] & ~chosen[:, cols]
    conf = p.gather(-1, tokens[:, cols, None]).squeeze(-1)
    tau = torch.where(sel, conf, torch.full_like(conf, math.inf)).amin(dim=1)
    pos = cols[None, :].expand_as(sel)
    i_star = torch.where(sel & (conf == tau[:, None]), pos, torch.full_like(pos, -1)).amax(dim=1)
    t3 = tau[:, None, None]
    allowed = (p < t3) | ((p == t3) & (pos > i_star[:, None])[..., None])
    if rule.kind == "threshold":
        allowed = allowed & (p < rule.threshold)
    allowed = allowed & (lq > -math.inf)  # tokens never drawn (the mask id) add nothing
    empty = ~allowed.any(dim=-1)
    safe = allowed | (empty | ~others)[..., None]  # keep every logsumexp finite (no NaN gradients)
    factor = torch.logsumexp(lq.masked_fill(~safe, -math.inf), dim=-1)
    factor = torch.where(empty, torch.full_like(factor, floor), factor)
    out = torch.where(others, factor, torch.zeros_like(factor)).sum(dim=1)
    if rule.kind == "threshold":  # two or more committed need every one at or above the threshold
        invalid = (n_chosen >= 2) & (tau < rule.threshold)
        out = torch.where(invalid, torch.full_like(out, floor), out)
    return torch.where(n_chosen > 0, out, zero)


def share_per_token(step_logp: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """(B, L): each row's step log-prob split evenly over the positions it committed (0 elsewhere), so a row's sum
    over a trajectory is its total position log-prob."""
    n = chosen.sum(dim=1, keepdim=True).clamp(min=1)
    return torch.where(chosen, step_logp[:, None] / n, torch.zeros_like(step_logp)[:, None])


__all__ = ["RULES", "ChoiceRule", "choice_logp", "distributions", "log_binomial", "share_per_token"]
