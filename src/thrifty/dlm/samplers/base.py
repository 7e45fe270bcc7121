"""The sampler contract and the block-wise decoding loop every sampler shares.

``sample(model, prompt_ids, gen_len, generator) -> Sample(tokens, nfe, step_map)``: the sequence starts as
[prompt, MASK × gen_len] and is filled block by block (semi-autoregressive; one block = the whole answer when
``block_len`` is None). Each step runs one forward pass over the batch, proposes a token for every masked position
(:func:`thrifty.dlm.samplers._select.propose`), and the sampler's rule (``choose``) picks which masked positions of
the current block to commit. Committed tokens never change again. ``step_map[b, i]`` is the step (0-based, global)
at which answer token i of sequence b was committed; ``nfe`` counts forward passes for the batch and
``nfe_per_seq`` those in which each sequence still had masks in its current block (with classifier-free guidance
each counted step batches the conditional and the prompt-masked pass into one call of twice the rows); ``token_logp[b, i]`` is the
log-probability with which the sampler drew answer token i (the behaviour policy that importance weights need), and
``position_logp[b, i]`` token i's even share of log P(S | x_S, state), the probability that its step committed
exactly the positions it did (:mod:`thrifty.dlm.samplers.choice`): the two maps summed over a row are the exact
log-probability of the sampled trajectory (step map and tokens).

Opt-in extras (defaults leave the loop, its outputs and its random stream unchanged): ``cache="prefix"|"dual"``
reuses keys/values across a block's steps (:mod:`thrifty.dlm.kv_cache`; approximate, refreshed at every block
boundary and every ``cache_refresh`` steps when > 0), and ``constraints``
(:class:`~thrifty.dlm.samplers.constraints.AnswerConstraints`) keeps EOS, special or non-answer tokens out of the
proposals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.kv_cache import BlockKVCache, check_mode
from thrifty.dlm.samplers._select import Proposal, commit, propose
from thrifty.dlm.samplers.choice import ChoiceRule, choice_logp, share_per_token
from thrifty.dlm.samplers.constraints import AnswerConstraints


@dataclass
class Sample:
    tokens: torch.Tensor  # (B, P + G): prompt then answer
    nfe: int
    step_map: torch.Tensor  # (B, G) step at which each answer token was committed
    nfe_per_seq: torch.Tensor  # (B,)
    token_logp: torch.Tensor | None = None  # (B, G) behaviour log-prob of each answer token when committed
    position_logp: torch.Tensor | None = None  # (B, G) each token's share of its step's position-choice log-prob


class Sampler(Protocol):
    def sample(self, model: Any, prompt_ids: torch.Tensor, gen_len: int, generator: torch.Generator) -> Sample: ...


class BlockSampler:
    """The shared loop; subclasses implement ``choose`` (and may set ``steps_for_block``)."""

    def __init__(self, mask_id: int, block_len: int | None = None, temperature: float = 0.0,
                 max_steps: int | None = None, cfg_scale: float = 0.0, cache: str = "none", cache_refresh: int = 0,
                 constraints: AnswerConstraints | None = None) -> None:
        if block_len is not None and block_len < 1:
            raise ConfigError(f"block_len must be >= 1, got {block_len}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if cfg_scale < 0:
            raise ConfigError(f"cfg_scale must be >= 0, got {cfg_scale}")
        self.mask_id, self.block_len, self.temperature, self.max_steps = int(mask_id), block_len, temperature, max_steps
        self.cfg_scale = cfg_scale
        check_mode(cache, cache_refresh)
        self.cache, self.cache_refresh, self.constraints = cache, cache_refresh, constraints

    def logits(self, model: Any, x: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """The model's logits; with classifier-free guidance (``cfg_scale`` w > 0) un + (w + 1)(cond − un), where
        ``un`` sees the prompt masked — both halves in one batched call."""
        return self._guided(model, x, prompt_len, model)

    def _guided(self, model: Any, x: torch.Tensor, prompt_len: int, run: Any) -> torch.Tensor:
        """Classifier-free guidance around ``run(ids) -> logits`` (the model, or a cached view of it)."""
        if self.cfg_scale <= 0:
            return run(x)
        un = x.clone()
        un[:, :prompt_len] = self.mask_id
        cond, uncond = run(torch.cat([x, un])).chunk(2)
        return uncond + (self.cfg_scale + 1) * (cond - uncond)

    def block_logits(self, model: Any, x: torch.Tensor, prompt_len: int, block: tuple[int, int],
                     block_step: int, kv: BlockKVCache | None = None) -> torch.Tensor:
        """Logits (B, block length, V) of the current block's columns: a full forward sliced, or through ``kv``,
        the key/value cache of this run; then the answer constraints, when set."""
        if kv is None:
            logits = self.logits(model, x, prompt_len)[:, block[0]:block[1]]
        else:
            logits = self._guided(model, x, prompt_len, lambda ids: kv.logits(ids, block, block_step))
        if self.constraints is not None:
            logits = self.constraints.apply(logits, block[0] - prompt_len)
        return logits

    def choose(self, prop: Proposal, candidates: torch.Tensor, block_step: int, block: tuple[int, int],
               generator: torch.Generator) -> torch.Tensor:
        """Which of ``candidates`` (B, L bool: masked positions of the current block) to commit now."""
        raise NotImplementedError

    def choice_rule(self) -> ChoiceRule:
        """How ``choose`` picks positions, for the exact position-choice probability (:mod:`.choice`)."""
        raise NotImplementedError

    def _blocks(self, start: int, gen_len: int) -> list[tuple[int, int]]:
        size = self.block_len or gen_len
        if gen_len % size:
            raise ConfigError(f"gen_len {gen_len} must be a multiple of block_len {size}")
        return [(start + k, start + k + size) for k in range(0, gen_len, size)]

    @torch.no_grad()
    def sample(self, model: Any, prompt_ids: torch.Tensor, gen_len: int, generator: torch.Generator) -> Sample:
        kv = None if self.cache == "none" else BlockKVCache(model, self.cache, self.cache_refresh)  # this run's
        if prompt_ids.dim() != 2 or gen_len < 1:
            raise ConfigError("prompt_ids must be (B, P) and gen_len >= 1")
        b, p = prompt_ids.shape
        x = torch.cat([prompt_ids, torch.full((b, gen_len), self.mask_id, dtype=prompt_ids.dtype,
                                              device=prompt_ids.device)], dim=1)
        step_map = torch.full((b, gen_len), -1, dtype=torch.long, device=x.device)
        nfe_per_seq = torch.zeros(b, dtype=torch.long, device=x.device)
        token_logp = torch.zeros((b, gen_len), dtype=torch.float64, device=x.device)
        position_logp = torch.zeros((b, gen_len), dtype=torch.float64, device=x.device)
        rule = self.choice_rule()
        step = 0
        limit = self.max_steps or 10 * gen_len + 10
        for block in self._blocks(p, gen_len):
            block_step = 0
            # the block's columns only: proposals, distributions and noise are (B, block, V), not (B, P + G, V)
            lo, hi = block[0] - p, block[1] - p  # the block within the answer maps
            while bool((x[:, block[0]:block[1]] == self.mask_id).any()):
                if step >= limit:
                    raise RuntimeError(f"sampler made no progress within {limit} steps")
                candidates = x[:, block[0]:block[1]] == self.mask_id
                active = candidates.any(dim=1)
                logits = self.block_logits(model, x, p, block, block_step, kv)
                prop = propose(logits, self.temperature, generator, self.mask_id)
                chosen = self.choose(prop, candidates, block_step, block, generator) & candidates
                stalled = active & ~chosen.any(dim=1)
                if bool(stalled.any()):  # every rule commits at least one token per active sequence
                    best = torch.where(candidates, prop.confidence, torch.full_like(prop.confidence, -1.0))
                    chosen[stalled, best[stalled].argmax(dim=1)] = True
                assert prop.probs is not None and prop.log_q is not None
                step_pos = choice_logp(prop.probs, prop.log_q, prop.tokens, chosen, candidates, rule)
                # views of the block: commit writes through to x and the answer maps
                commit(x[:, block[0]:block[1]], prop.tokens, chosen, step_map[:, lo:hi], step, 0, prop.logp,
                       token_logp[:, lo:hi], share_per_token(step_pos, chosen), position_logp[:, lo:hi])
                nfe_per_seq += active.long()
                step += 1
                block_step += 1
        return Sample(x, step, step_map, nfe_per_seq, token_logp, position_logp)


def sample_in_chunks(sampler: Sampler, model: Any, prompt_ids: torch.Tensor, gen_len: int,
                     generator: torch.Generator, chunk: int | None = None) -> Sample:
    """``sampler.sample`` on ``chunk`` rows at a time (all rows at once when ``chunk`` is None or covers them), the
    pieces concatenated in row order; ``nfe`` sums the chunks' forward passes. The generator is shared, so a chunked
    run draws other noise than an unchunked one (same distribution)."""
    n = prompt_ids.shape[0]
    if chunk is not None and chunk < 1:
        raise ConfigError(f"micro_batch must be >= 1, got {chunk}")
    if not chunk or chunk >= n:
        return sampler.sample(model, prompt_ids, gen_len, generator)
    parts = [sampler.sample(model, prompt_ids[i:i + chunk], gen_len, generator) for i in range(0, n, chunk)]

    def cat(name: str) -> torch.Tensor | None:
        first = getattr(parts[0], name)
        return None if first is None else torch.cat([getattr(s, name) for s in parts])

    return Sample(torch.cat([s.tokens for s in parts]), sum(s.nfe for s in parts), cat("step_map"),
                  cat("nfe_per_seq"), cat("token_logp"), cat("position_logp"))


__all__ = ["BlockSampler", "Sample", "Sampler", "sample_in_chunks"]
