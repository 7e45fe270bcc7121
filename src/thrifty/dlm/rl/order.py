"""The decoding order of an answer nobody decoded: the spec's fallback for dTRPO when a pair carries no step maps
(a reference answer, or pairs brought as text), reconstructed as the confidence order under the reference model.

Decode-order replay: the answer's positions start masked; blocks go left to right and each block takes the
sampler's per-step counts (``schedule``: LLaDA's even split, remainder to the earliest steps). At every step the
reference scores the *known* answer token at each still-masked position of the current block, given the state
so far (the prompt, earlier blocks and this block's committed tokens clean, the rest masked), and the ``k`` most
probable positions are committed at that step — the positions the low-confidence sampler would have picked had
its proposals been the answer's tokens. Ties go to the earlier position. The result is a step map that goes block
by block, so dTRPO's re-masked states and the position-choice terms apply to it exactly as to a sampled answer's.

:func:`confidence_order` is the pure rule, given any function that scores an answer state; :func:`model_token_logp`
makes that function from a model (one forward per step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from thrifty.core.errors import ConfigError

TokenLogp = Callable[[torch.Tensor], torch.Tensor]


def confidence_order(token_logp: TokenLogp, answer_ids: torch.Tensor, block_len: int, schedule: Sequence[int],
                     mask_id: int) -> torch.Tensor:
    """(B, G) step map of ``answer_ids`` (B, G): steps numbered from 0 across blocks, ``len(schedule)`` per block.

    ``token_logp(state)`` maps an answer state (B, G) — answer tokens where committed, ``mask_id`` elsewhere — to
    (B, G) scores of the answer's own tokens (log-probs; only still-masked positions of the current block are read).
    """
    device, answer_ids = answer_ids.device, answer_ids.cpu()  # the order is built on the CPU, returned where it came from
    g = answer_ids.shape[1]
    if block_len < 1 or g % block_len:
        raise ConfigError(f"answer length {g} must be a multiple of block_len {block_len}")
    if sum(schedule) != block_len or any(k < 0 for k in schedule):
        raise ConfigError(f"the per-step counts {list(schedule)} must be >= 0 and add up to block_len {block_len}")
    state = torch.full_like(answer_ids, mask_id)
    step_map = torch.full_like(answer_ids, -1)
    positions = torch.arange(g)
    step = 0
    for start in range(0, g, block_len):
        in_block = (positions >= start) & (positions < start + block_len)
        for k in schedule:
            if k:
                scores = token_logp(state).detach().to(torch.float64).cpu()
                cand = (step_map < 0) & in_block
                # candidates rank above everything else, even at −inf; stable sort: ties go to the earlier position
                key = torch.where(cand, scores.nan_to_num(nan=-1e300, neginf=-1e300), -torch.inf)
                pick = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :k]
                step_map.scatter_(1, pick, step)
                state = torch.where(step_map == step, answer_ids, state)
            step += 1
    return step_map.to(device)


def model_token_logp(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor) -> TokenLogp:
    """The scoring function of :func:`confidence_order` under ``model`` (in eval mode, without gradients):
    log-softmax of the logits at the answer positions, read at the answer's tokens."""
    p = prompt_ids.shape[1]

    def score(state: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = model(torch.cat([prompt_ids, state.to(prompt_ids.device)], dim=1))[:, p:]
            logp = torch.log_softmax(logits.double(), dim=-1)
        return logp.gather(-1, answer_ids.to(logp.device)[..., None]).squeeze(-1).cpu()

    return score


__all__ = ["TokenLogp", "confidence_order", "model_token_logp"]
