"""Answer constraints a sampler can apply to the logits before proposing: keep EOS out of the first ``min_len``
answer positions, never propose ``forbid_ids`` (special tokens), and propose only ``valid_ids`` (a task's answer
symbols) — all by setting the excluded logits to −∞, so the confidence and drawing distributions are renormalised
over what is left. The ids come from the task or tokenizer (:meth:`AnswerConstraints.from_task`), never literals.

With constraints the recorded token and position log-probabilities are those of the constrained distributions the
sampler actually drew from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from thrifty.core.errors import ConfigError


@dataclass(frozen=True)
class AnswerConstraints:
    eos_id: int | None = None
    min_len: int = 0  # answer positions 0 .. min_len−1 never get EOS
    forbid_ids: tuple[int, ...] = ()
    valid_ids: tuple[int, ...] | None = None  # None: every id not forbidden

    def __post_init__(self) -> None:
        object.__setattr__(self, "forbid_ids", tuple(int(i) for i in self.forbid_ids))
        if self.valid_ids is not None:
            object.__setattr__(self, "valid_ids", tuple(int(i) for i in self.valid_ids))
        if self.min_len < 0:
            raise ConfigError(f"min_len must be >= 0, got {self.min_len}")
        if self.min_len > 0 and self.eos_id is None:
            raise ConfigError("min_len needs an eos_id (from the task's vocabulary or the tokenizer)")
        ids = [*self.forbid_ids, *(self.valid_ids or ()), *([] if self.eos_id is None else [self.eos_id])]
        if any(i < 0 for i in ids):
            raise ConfigError("token ids in answer constraints must be >= 0")
        if self.valid_ids is not None:
            left = set(self.valid_ids) - set(self.forbid_ids)
            if not left or (self.min_len > 0 and not left - {self.eos_id}):
                raise ConfigError("answer constraints leave no token to propose")

    @classmethod
    def from_task(cls, task: Any, min_len: int = 0, forbid_special: bool = True,
                  valid_only: bool = True) -> AnswerConstraints:
        """From a :class:`thrifty.dlm.tasks.DlmTask`: its EOS, its separator as the forbidden special token
        (the mask is never proposed anyway; EOS pads answers, so it stays allowed) and its valid answer ids."""
        vocab = task.vocab
        valid = task.valid_answer_ids if valid_only else None
        return cls(vocab.eos_id, min_len, (vocab.sep_id,) if forbid_special else (),
                   None if valid is None else tuple(valid))

    def allowed(self, vocab_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Bool (V,): the ids that may be proposed anywhere (before the EOS rule)."""
        ids = [*self.forbid_ids, *(self.valid_ids or ())]
        if any(i >= vocab_size for i in ids) or (self.eos_id is not None and self.eos_id >= vocab_size):
            raise ConfigError(f"answer constraint ids must be below the vocabulary size {vocab_size}")
        ok = torch.zeros(vocab_size, dtype=torch.bool, device=device) if self.valid_ids is not None else \
            torch.ones(vocab_size, dtype=torch.bool, device=device)
        if self.valid_ids is not None:
            ok[list(self.valid_ids)] = True
        if self.forbid_ids:
            ok[list(self.forbid_ids)] = False
        return ok

    def apply(self, logits: torch.Tensor, answer_offset: int) -> torch.Tensor:
        """``logits`` (B, W, V) of answer positions ``answer_offset`` .. ``answer_offset + W − 1`` with the excluded
        ids at −∞ (a new tensor)."""
        ok = self.allowed(logits.shape[-1], logits.device)
        keep = ok.expand(logits.shape[1], -1).clone()
        if self.min_len > 0 and self.eos_id is not None:
            idx = torch.arange(answer_offset, answer_offset + logits.shape[1], device=logits.device)
            keep[idx < self.min_len, self.eos_id] = False
        return logits.masked_fill(~keep, float("-inf"))


__all__ = ["AnswerConstraints"]
