"""Exact trajectory log-probabilities of sampled answers: the token terms and the position-choice terms.

A trajectory τ is the answer with its step map. Under a confidence-ordered sampler its probability is

    log P(τ) = Σ_s [ Σ_{i∈S_s} log q(x_i | x_s)  +  log P(S_s | x_{S_s}, x_s) ]      (tokens + positions)

where S_s is the set committed at step s from state x_s, q = softmax(logits / T) the drawing distribution and the
second term the probability that the step committed exactly S_s (:mod:`thrifty.dlm.samplers.choice`). The token
replay (:func:`~thrifty.dlm.likelihood.trajectory_replay`) keeps only the first sum, which is the trajectory
probability only when the order does not depend on the model (random remasking, up to the model-free −log C(m, k)
per step) or is a deterministic function of the state (entropy-bounded, greedy).

``trajectory_terms`` (:data:`TRAJECTORY_TERMS`) switches what the scores include: ``tokens`` (the replay as before)
or ``tokens+positions`` (the exact log P(τ)); ``auto`` resolves per use (:func:`resolve_terms`).

- :func:`replay_terms` — both sums along the recorded trajectory, one forward per step.
- :func:`block_terms` — dTRPO's one-step-per-block estimate of both: per block one recorded step t_b drawn
  uniformly, T_b × (tokens + positions of step t_b at its re-masked state); unbiased for :func:`replay_terms`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from thrifty.core.errors import ConfigError, check_choice
from thrifty.dlm.likelihood import block_states
from thrifty.dlm.samplers.choice import ChoiceRule, choice_logp, distributions

TRAJECTORY_TERMS = ("auto", "tokens", "tokens+positions")
# a factor impossible under the scoring model (probability 0) scores this constant, without gradient, in training
IMPOSSIBLE_LOGP = -50.0


def resolve_terms(terms: str, use: str) -> str:
    """``tokens`` or ``tokens+positions`` for ``use``: ``score`` (dTRPO's block and replay preference scores —
    ``auto`` = ``tokens+positions``, the exact trajectory log-ratio, at no extra forward pass) or ``behaviour``
    (DiFFPO's μ in the importance weights — ``auto`` = ``tokens``: the surrogate in the numerator is a per-token
    distribution over answers with no order, so adding the order's probability to μ alone would not make the
    weight exact and mostly pushes it to the cap)."""
    check_choice("trajectory_terms", terms, TRAJECTORY_TERMS)
    if use not in ("score", "behaviour"):
        raise ConfigError(f"unknown use {use!r} of trajectory terms")
    if terms != "auto":
        return terms
    return "tokens+positions" if use == "score" else "tokens"


def decoded_in_blocks(step_map: torch.Tensor, block_len: int) -> bool:
    """Whether every row was decoded block by block in blocks of ``block_len``: each block's steps all come before
    the next block's (what the re-masked states and the position candidates assume)."""
    if step_map.shape[1] % block_len:
        return False
    blocks = step_map.view(step_map.shape[0], -1, block_len)
    return bool((blocks.amax(dim=2)[:, :-1] < blocks.amin(dim=2)[:, 1:]).all())


def _check(prompt_ids: torch.Tensor, answer_ids: torch.Tensor, step_map: torch.Tensor, block_len: int) -> None:
    if prompt_ids.dim() != 2 or answer_ids.dim() != 2 or prompt_ids.shape[0] != answer_ids.shape[0]:
        raise ConfigError("prompt_ids and answer_ids must be (B, P) and (B, G) with one batch size")
    if step_map.shape != answer_ids.shape or bool((step_map < 0).any()):
        raise ConfigError("step_map must give a step >= 0 for every answer token")
    if not decoded_in_blocks(step_map, block_len):
        raise ConfigError(f"the step maps do not go block by block in blocks of {block_len}: the positions a step "
                          "chose from are unknown")


def replay_terms(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, step_map: torch.Tensor,
                 mask_id: int, rule: ChoiceRule, block_len: int | None = None,
                 floor: float = -math.inf) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(token terms (B,), position terms (B,), forward passes) of each recorded trajectory under ``model`` and the
    sampler rule ``rule`` (decoded in blocks of ``block_len``; None: one block). Token terms use log softmax(logits
    / T) (greedy: log softmax(logits)), so at T = 1 they equal the token replay. Differentiable in the model."""
    p, g = prompt_ids.shape[1], answer_ids.shape[1]
    block_len = block_len or g
    _check(prompt_ids, answer_ids, step_map, block_len)
    block_of = torch.arange(g, device=answer_ids.device) // block_len
    x = torch.cat([prompt_ids, torch.full_like(answer_ids, mask_id)], dim=1)
    tokens = torch.zeros(prompt_ids.shape[0], dtype=torch.float64, device=answer_ids.device)
    positions = torch.zeros_like(tokens)
    steps = sorted(set(step_map.flatten().tolist()))
    for s in steps:
        now = step_map == s
        block = torch.where(now, block_of, torch.full_like(block_of, -1)).amax(dim=1)  # -1: nothing this step
        cand = (block_of[None, :] == block[:, None]) & (step_map >= s)
        probs, log_q = distributions(model(x)[:, p:], rule.temperature, mask_id)  # answer positions only
        tokens = tokens + (log_q.gather(-1, answer_ids[..., None]).squeeze(-1) * now).sum(dim=1)
        positions = positions + choice_logp(probs, log_q, answer_ids, now, cand, rule, floor)
        x = torch.cat([x[:, :p], torch.where(now, answer_ids, x[:, p:])], dim=1)  # new tensor: autograd keeps x
    return tokens, positions, len(steps)


def block_terms(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, step_map: torch.Tensor,
                block_len: int, mask_id: int, rule: ChoiceRule, generator: torch.Generator,
                draws: list[list[int]] | None = None,
                floor: float = -math.inf) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(R̂ tokens (B,), R̂ positions (B,), model calls = 1): Σ_b T_b × the step t_b's token and position terms at
    its re-masked state (``draws[b][k]`` fixes block k's step; default uniform draws from ``generator``). At T = 1
    the token part equals :func:`~thrifty.dlm.likelihood.block_single_pass` on the same draws."""
    p, g = prompt_ids.shape[1], answer_ids.shape[1]
    _check(prompt_ids, answer_ids, step_map, block_len)
    per_seq = block_states(answer_ids, step_map, block_len, mask_id, generator, draws)
    n_blocks = g // block_len
    states = torch.stack([st for rows in per_seq for _, st, _, _ in rows])  # (B·N_B, G)
    x = torch.cat([prompt_ids.repeat_interleave(n_blocks, dim=0), states], dim=1)
    probs, log_q = distributions(model(x)[:, p:], rule.temperature, mask_id)
    answers = answer_ids.repeat_interleave(n_blocks, dim=0)
    new = torch.stack([nw for rows in per_seq for _, _, nw, _ in rows])  # (B·N_B, G)
    dev = answer_ids.device
    in_block = ((torch.arange(g, device=dev) // block_len)[None, :]
                == torch.arange(n_blocks, device=dev).repeat(len(per_seq))[:, None])
    cand = in_block & (states == mask_id)
    tok = (log_q.gather(-1, answers[..., None]).squeeze(-1) * new).sum(dim=1)
    pos = choice_logp(probs, log_q, answers, new, cand, rule, floor)
    weight = torch.tensor([float(tb) for rows in per_seq for *_, tb in rows], dtype=torch.float64, device=dev)  # T_b
    shape = (answer_ids.shape[0], n_blocks)
    return (tok * weight).view(shape).sum(dim=1), (pos * weight).view(shape).sum(dim=1), 1


__all__ = ["IMPOSSIBLE_LOGP", "TRAJECTORY_TERMS", "block_terms", "decoded_in_blocks", "replay_terms",
           "resolve_terms"]
