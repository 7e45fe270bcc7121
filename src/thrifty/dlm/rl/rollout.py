"""Rollouts for policy optimisation: G samples per prompt from the sampler (the behaviour policy), with their step
maps, behaviour log-probs (of each token's draw, and each token's share of its step's position choice), forward
passes and verifier rewards; plus DiFFPO's sampler head, which picks a
per-prompt entropy bound γ from a grid, and the counter of forward passes that the benchmarks report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from thrifty.core.errors import ConfigError
from thrifty.dlm.samplers import AdaptiveSampler, LowConfidenceSampler, sample_in_chunks
from thrifty.dlm.tasks import DlmExample, DlmTask


@dataclass
class Rollouts:
    examples: list[DlmExample]  # one per row (each prompt repeated G times, consecutively)
    prompt_ids: torch.Tensor  # (N, P)
    answer_ids: torch.Tensor  # (N, G)
    step_map: torch.Tensor  # (N, G)
    behaviour_logp: torch.Tensor  # (N, G) log-prob the sampler drew each token with
    nfe: torch.Tensor  # (N,) forward passes each sequence took
    rewards: torch.Tensor  # (N,) verifier reward in [0, 1]
    solved: torch.Tensor  # (N,) bool
    gamma_idx: torch.Tensor | None = None  # (N,) the sampler head's choice, when it is trained
    position_logp: torch.Tensor | None = None  # (N, G) each token's share of its step's position-choice log-prob


def answer_mask(answer_ids: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """(N, G) float: answer tokens up to and including the first EOS (all of them when there is no EOS)."""
    if eos_id is None:
        return torch.ones_like(answer_ids, dtype=torch.float64)
    is_eos = (answer_ids == eos_id).long()
    before = torch.cumsum(is_eos, dim=1) - is_eos  # EOS tokens strictly before each position
    return (before == 0).double()


def hidden_size(policy: nn.Module) -> int:
    """The width of the policy's final hidden states: ``cfg.d_model`` for the small model, the Hugging Face config's
    ``hidden_size`` (or ``d_model``, LLaDA's name) for a loaded checkpoint."""
    own = getattr(policy, "cfg", None)
    if isinstance(getattr(own, "d_model", None), int):
        return int(own.d_model)
    config = getattr(getattr(policy, "model", None), "config", None)
    for name in ("hidden_size", "d_model"):
        if isinstance(getattr(config, name, None), int):
            return int(getattr(config, name))
    raise ConfigError(f"cannot tell the hidden size of {type(policy).__name__}: no cfg.d_model and no "
                      "config.hidden_size")


class SamplerHead(nn.Module):
    """A distribution over the γ grid read from the policy's final hidden state at the separator position, given
    the prompt and a fully masked answer — the γ choice acts as an extra first answer token with its own small
    output vocabulary (the grid). Any backbone that returns its hidden states (``return_hidden=True``) can carry it:
    :meth:`for_policy` reads the width from the policy."""

    @classmethod
    def for_policy(cls, policy: nn.Module, grid: list[float], generator: torch.Generator) -> SamplerHead:
        """A head as wide as ``policy``'s hidden states, on the policy's device."""
        first = next(iter(policy.parameters()), None)
        head = cls(hidden_size(policy), grid, generator)
        return head.to(first.device) if first is not None else head

    def __init__(self, d_model: int, grid: list[float], generator: torch.Generator) -> None:
        super().__init__()
        self.grid = [float(g) for g in grid]
        self.proj = nn.Linear(d_model, len(grid))
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=generator) * 0.02)
            self.proj.bias.zero_()

    def log_probs(self, policy: nn.Module, prompt_ids: torch.Tensor, answer_len: int, mask_id: int) -> torch.Tensor:
        """(N, K) log-probabilities over the grid (one forward pass of the policy)."""
        masked = torch.full((prompt_ids.shape[0], answer_len), mask_id, dtype=prompt_ids.dtype, device=prompt_ids.device)
        _, hidden = policy(torch.cat([prompt_ids, masked], dim=1), return_hidden=True)
        at_sep = hidden[:, prompt_ids.shape[1] - 1].to(device=self.proj.weight.device, dtype=self.proj.weight.dtype)
        return torch.log_softmax(self.proj(at_sep).double(), dim=-1)


class ForwardCounter:
    """Counts model calls and sequence-rows through forward hooks (what 'forward passes' means in the reports)."""

    def __init__(self, *modules: nn.Module) -> None:
        self.calls, self.rows = 0, 0
        self._handles = [m.register_forward_pre_hook(self._hook) for m in modules]

    def _hook(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self.calls += 1
        self.rows += int(args[0].shape[0]) if args and hasattr(args[0], "shape") else 0

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def rollout_shape(answer_len: int, block_len: int = 0, steps: int = 0) -> tuple[int, int]:
    """(block length, sampler steps) for rollouts: by default four blocks (two when the answer length is not a
    multiple of four, one when it is odd) and about two tokens a step in each block."""
    if not block_len:
        n_blocks = 4 if answer_len % 4 == 0 else 2 if answer_len % 2 == 0 else 1
        block_len = answer_len // n_blocks
    n_blocks = max(1, answer_len // block_len)
    return block_len, steps or n_blocks * max(1, (block_len + 1) // 2)


def rollout_sampler(task: DlmTask, steps: int, block_len: int, temperature: float,
                    remasking: str = "low_confidence") -> LowConfidenceSampler:
    return LowConfidenceSampler(task.vocab.mask_id, steps=steps, block_len=block_len, temperature=temperature,
                                remasking=remasking)


@torch.no_grad()
def collect(policy: nn.Module, task: DlmTask, examples: list[DlmExample], group_size: int, sampler: Any,
            generator: torch.Generator, head: SamplerHead | None = None, block_len: int | None = None,
            temperature: float = 1.0, micro_batch: int | None = None) -> Rollouts:
    """Sample ``group_size`` answers per example (rows grouped by prompt) and score them with the task's
    verifier, one batched call.

    With ``head``, each row draws its own γ from the head's distribution and is decoded by the entropy-bounded
    sampler with that bound (``sampler`` is then unused). Prompts go to the policy's device; ``micro_batch`` decodes
    that many rows at a time (a large model's logits for every row at once may not fit)."""
    rows = [ex for ex in examples for _ in range(group_size)]
    first = next(iter(policy.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")  # a scripted test model has none
    prompts = torch.tensor([task.prompt_ids(ex) for ex in rows], dtype=torch.long, device=device)
    was_training = policy.training
    policy.eval()
    gamma_idx = None
    if head is not None and micro_batch:
        raise ConfigError("micro_batch is not supported with the joint sampler head yet")
    if head is not None:
        lp = head.log_probs(policy, prompts, task.answer_len, task.vocab.mask_id)
        gamma_idx = torch.multinomial(lp.exp().cpu(), 1, generator=generator).squeeze(1).to(lp.device)  # CPU draws
        chosen = gamma_idx.clone()
        sampler = AdaptiveSampler(task.vocab.mask_id, lambda _p: chosen, grid=head.grid, block_len=block_len,
                                  temperature=temperature)
    out = sample_in_chunks(sampler, policy, prompts, task.answer_len, generator, micro_batch)
    policy.train(was_training)
    answers = out.tokens[:, prompts.shape[1]:]
    texts = [task.decode(a.tolist()) for a in answers.cpu()]
    scored, solved_rows = task.score(rows, texts)
    rewards = torch.tensor(scored, dtype=torch.float64, device=device)
    solved = torch.tensor(solved_rows, device=device)
    assert out.token_logp is not None
    return Rollouts(rows, prompts, answers, out.step_map, out.token_logp, out.nfe_per_seq, rewards, solved, gamma_idx,
                    out.position_logp)


__all__ = ["ForwardCounter", "Rollouts", "SamplerHead", "answer_mask", "collect", "hidden_size", "rollout_sampler",
           "rollout_shape"]
