"""Likelihood estimators for masked diffusion LMs: log-probabilities of an answer given a prompt, each with the
number of forward passes it costs.

- :func:`trajectory_replay` — for a sampled answer with its step map, Σ over recorded steps of the log-probs of
  the tokens committed at that step, given the state before it (one forward per step): exactly the probability
  the sampler's model gave its own tokens along the trajectory.
- :func:`one_step_mean_field` — d1's estimate: the answer fully masked (the prompt masked at ``prompt_mask_p``),
  every answer token scored in one forward pass, as if independent.
- :func:`two_times_mean_field` — DiFFPO's surrogate (our reconstruction): one recorded step t drawn uniformly;
  tokens committed before t are scored with the answer fully masked, tokens committed at or after t given the
  state just before t (2 forward passes).
- :func:`block_single_pass` — dTRPO's estimate (our reconstruction): per block one of its recorded steps t_b drawn
  uniformly; the tokens newly committed at t_b are scored given the state before t_b (earlier blocks clean, the
  block's tokens from t_b on masked, later blocks masked), times the block's step count T_b. Its expectation over
  the draws is the trajectory replay's log-probability. All blocks go through the model in one call (a batch of
  N_B rows: exact for full-attention models; a block-causal model could use one row with a block mask).
- :func:`mc_elbo` — the Monte-Carlo ELBO (1/n) Σ_j (1/t_j) Σ_{k masked at t_j} log p(a_k | q, a_{t_j}), with
  low-discrepancy (antithetic) times; n forward passes. In expectation it equals the exact ELBO below.
- :func:`exact_any_order` — brute force for tiny answers: the model's any-order likelihood
  p(a) = (1/G!) Σ_σ Π_k p(a_σk | q, a_σ<k) and the exact ELBO E_σ[log Π_k p(a_σk | q, a_σ<k)] ≤ log p(a)
  (G!·G forward passes; G ≤ 6).

Gradients flow through every estimator but the brute force (training calls them with grad enabled; evaluation
wraps them in ``torch.no_grad()``). The model maps ids (B, L) to logits (B, L, V); the mask id is passed in, and the mask token is left out of every
distribution (it is never an answer token; the samplers never propose it either). Inputs are a prompt (B, P) and an answer
(B, G); results are per sequence (B,) unless said otherwise. Only the answer positions of the logits are normalised,
in float32 (never float64 over the vocabulary, never the prompt's positions), on the model's device; the per-token
log-probs (B, G) come back as float64 on the inputs' device.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.masking import sample_times


def _answer_logp(model: Any, x: torch.Tensor, answer_ids: torch.Tensor, start: int, mask_id: int) -> torch.Tensor:
    """(B, G) float64: log p(answer_ids | x) at positions ``start .. start + G`` of ``x``, the mask token left out
    of each distribution (never an answer token, as in sampling).

    Only the answer positions' logits are normalised — never the prompt's — and in float32 (or the logits' own dtype
    when wider): the largest intermediate is (B, G, V) float32, whatever the prompt length. The log-normaliser is
    max + log1p(Σ of the other exp-terms), which keeps log-probs near 0 accurate to float32's relative precision.
    The per-token results (B, G) come back as float64 on ``answer_ids``' device; the logits stay where the model put
    them."""
    logits = model(x)
    g = answer_ids.shape[1]
    part = logits[:, start:start + g]
    if part.dtype not in (torch.float32, torch.float64):
        part = part.float()
    vocab = torch.arange(part.shape[-1], device=part.device)
    part = part.masked_fill(vocab == mask_id, float("-inf"))
    top, arg = part.max(dim=-1, keepdim=True)  # not detached: the maximum carries its own −1/(1 + rest) gradient
    rest = torch.exp(part - top).scatter(-1, arg, 0.0).sum(dim=-1)  # every term but one maximum (exp(0) = 1)
    target = answer_ids.to(part.device)[..., None]
    picked = part.gather(-1, target).squeeze(-1)
    return (picked - top.squeeze(-1) - torch.log1p(rest)).double().to(answer_ids.device)


def _check(prompt_ids: torch.Tensor, answer_ids: torch.Tensor) -> tuple[int, int]:
    if prompt_ids.dim() != 2 or answer_ids.dim() != 2 or prompt_ids.shape[0] != answer_ids.shape[0]:
        raise ConfigError("prompt_ids and answer_ids must be (B, P) and (B, G) with one batch size")
    return prompt_ids.shape[1], answer_ids.shape[1]


def trajectory_replay(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, step_map: torch.Tensor,
                      mask_id: int) -> tuple[torch.Tensor, int]:
    """(log-prob of the answer along its recorded trajectory (B,), forward passes)."""
    p, _ = _check(prompt_ids, answer_ids)
    if step_map.shape != answer_ids.shape or bool((step_map < 0).any()):
        raise ConfigError("step_map must give a step >= 0 for every answer token")
    steps = sorted(set(step_map.flatten().tolist()))
    x = torch.cat([prompt_ids, torch.full_like(answer_ids, mask_id)], dim=1)
    total = torch.zeros(prompt_ids.shape[0], dtype=torch.float64)
    for s in steps:
        now = step_map == s
        lp = _answer_logp(model, x, answer_ids, p, mask_id)
        total += (lp * now).sum(dim=1)
        x = torch.cat([x[:, :p], torch.where(now, answer_ids, x[:, p:])], dim=1)  # new tensor: autograd keeps x
    return total, len(steps)


def one_step_mean_field(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, mask_id: int,
                        generator: torch.Generator | None = None, prompt_mask_p: float = 0.0) -> tuple[torch.Tensor, int]:
    """(per-token log-probs (B, G) with the answer fully masked, forward passes = 1)."""
    p, _ = _check(prompt_ids, answer_ids)
    prompt = prompt_ids.clone()
    if prompt_mask_p > 0:
        if generator is None:
            raise ConfigError("masking the prompt needs a generator")
        hide = torch.rand(prompt.shape, generator=generator) < prompt_mask_p
        prompt[hide] = mask_id
    x = torch.cat([prompt, torch.full_like(answer_ids, mask_id)], dim=1)
    return _answer_logp(model, x, answer_ids, p, mask_id), 1


def _step_choice(steps: list[int], generator: torch.Generator) -> int:
    return steps[int(torch.randint(len(steps), (1,), generator=generator).item())]


def two_times_mean_field(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, step_map: torch.Tensor,
                         mask_id: int, generator: torch.Generator,
                         t: int | torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """(per-token log-probs (B, G), forward passes = 2) — ``t`` fixes the split step: one for the batch, or one
    per sequence as a (B,) tensor (default: one drawn per batch from the recorded steps)."""
    p, _ = _check(prompt_ids, answer_ids)
    if step_map.shape != answer_ids.shape or bool((step_map < 0).any()):
        raise ConfigError("step_map must give a step >= 0 for every answer token")
    if t is None:
        t = _step_choice(sorted(set(step_map.flatten().tolist())), generator)
    blank = torch.cat([prompt_ids, torch.full_like(answer_ids, mask_id)], dim=1)
    before = step_map < (t[:, None] if isinstance(t, torch.Tensor) else t)
    x_t = torch.cat([prompt_ids, torch.where(before, answer_ids, torch.full_like(answer_ids, mask_id))], dim=1)
    lp_blank = _answer_logp(model, blank, answer_ids, p, mask_id)
    lp_t = _answer_logp(model, x_t, answer_ids, p, mask_id)
    return torch.where(before, lp_blank, lp_t), 2


def block_states(answer_ids: torch.Tensor, step_map: torch.Tensor, block_len: int, mask_id: int,
                 generator: torch.Generator, draws: list[list[int]] | None = None):
    """For each sequence and block: the drawn step t_b, the noisy answer state x^(b) (G,), the new tokens (G,)
    and T_b. ``draws[b][k]`` fixes block k's step for sequence b (default: uniform draws)."""
    bsz, g = answer_ids.shape
    if g % block_len:
        raise ConfigError(f"answer length {g} must be a multiple of block_len {block_len}")
    out = []
    for b in range(bsz):
        rows = []
        for k, start in enumerate(range(0, g, block_len)):
            sl = slice(start, start + block_len)
            steps = sorted(set(step_map[b, sl].tolist()))
            t_b = draws[b][k] if draws is not None else _step_choice(steps, generator)
            state = answer_ids[b].clone()
            state[start:] = mask_id  # this block and later blocks masked ...
            keep = step_map[b, sl] < t_b
            state[sl] = torch.where(keep, answer_ids[b, sl], state[sl])  # ... except this block's earlier steps
            new = torch.zeros(g, dtype=torch.bool)
            new[sl] = step_map[b, sl] == t_b
            rows.append((t_b, state, new, len(steps)))
        out.append(rows)
    return out


def block_single_pass(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, step_map: torch.Tensor,
                      block_len: int, mask_id: int, generator: torch.Generator,
                      draws: list[list[int]] | None = None) -> tuple[torch.Tensor, int]:
    """(R̂: Σ_b T_b Σ_{i new at t_b} log p(a_i | x^(b)) per sequence (B,), model calls = 1)."""
    p, g = _check(prompt_ids, answer_ids)
    if step_map.shape != answer_ids.shape or bool((step_map < 0).any()):
        raise ConfigError("step_map must give a step >= 0 for every answer token")
    per_seq = block_states(answer_ids, step_map, block_len, mask_id, generator, draws)
    n_blocks = g // block_len
    states = torch.stack([torch.cat([prompt_ids[b], st]) for b, rows in enumerate(per_seq) for _, st, _, _ in rows])
    answers = answer_ids.repeat_interleave(n_blocks, dim=0)  # all blocks of all sequences in one call
    tok = _answer_logp(model, states, answers, p, mask_id).view(answer_ids.shape[0], n_blocks, g)
    new = torch.stack([torch.stack([nw for _, _, nw, _ in rows]) for rows in per_seq])  # (B, N_B, G)
    weight = torch.tensor([[float(tb) for *_, tb in rows] for rows in per_seq], dtype=torch.float64)  # T_b
    return ((tok * new).sum(dim=2) * weight).sum(dim=1), 1


def mc_elbo(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, mask_id: int,
            generator: torch.Generator, n: int = 8, antithetic: bool = True) -> tuple[torch.Tensor, int]:
    """(MC-ELBO estimate (B,), forward passes = n)."""
    p, _ = _check(prompt_ids, answer_ids)
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    total = torch.zeros(prompt_ids.shape[0], dtype=torch.float64)
    for t in sample_times(n, generator, low_discrepancy=antithetic).tolist():
        masked = torch.rand(answer_ids.shape, generator=generator) < t
        x = torch.cat([prompt_ids, torch.where(masked, torch.full_like(answer_ids, mask_id), answer_ids)], dim=1)
        lp = _answer_logp(model, x, answer_ids, p, mask_id)
        total += (lp * masked).sum(dim=1) / t
    return total / n, n


@torch.no_grad()
def exact_any_order(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor,
                    mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(a) under the uniform mixture of unmasking orders, the exact ELBO E_σ log p_σ(a)) — brute force."""
    p, g = _check(prompt_ids, answer_ids)
    if g > 6:
        raise ConfigError(f"exact enumeration is for answers of at most 6 tokens, got {g}")
    per_order = []
    for order in itertools.permutations(range(g)):
        x = torch.cat([prompt_ids, torch.full_like(answer_ids, mask_id)], dim=1)
        lp_order = torch.zeros(prompt_ids.shape[0], dtype=torch.float64)
        for k in order:
            lp = _answer_logp(model, x, answer_ids[:, k:k + 1], p + k, mask_id).squeeze(-1)
            lp_order += lp
            x[:, p + k] = answer_ids[:, k]
        per_order.append(lp_order)
    stacked = torch.stack(per_order)  # (G!, B)
    log_p = torch.logsumexp(stacked, dim=0) - math.log(stacked.shape[0])
    return log_p, stacked.mean(dim=0)


__all__ = ["block_single_pass", "block_states", "exact_any_order", "mc_elbo", "one_step_mean_field",
           "trajectory_replay", "two_times_mean_field"]
