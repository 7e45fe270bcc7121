"""Preference pairs in the user's format for dTRPO and VRPO on a Hugging Face checkpoint: a JSONL file, one object
per line, ``{"prompt": text or chat messages, "chosen": text, "rejected": text}`` (other keys are ignored).

Reading (:func:`read_pref_jsonl`) checks every row and keeps the text; tokenising (:func:`tokenize_pairs`) needs
the model's tokenizer and answer length, so it happens once the task is built:

- **Prompt**: exactly as a prompt file's (:func:`~thrifty.dlm.data.prompt_token_ids`: the chat template with the
  generation prompt when the tokenizer has one), left-padded with the pad token to the longest pair prompt, at most
  ``max_prompt_len`` tokens (longer prompts keep their last tokens).
- **Answers**: ``chosen`` and ``rejected`` are tokenised without special tokens and brought to ``gen_len`` tokens
  the way the decoder leaves an answer: a shorter one is followed by EOS up to the end (the first EOS is where the
  answer stops, the rest is fill); a longer one keeps its first ``gen_len`` tokens and has no EOS.
- **Validity**: ``chosen_valid`` / ``rejected_valid`` mark the answer's own tokens and the first EOS (the tokens
  d1's completion mask keeps); the EOS fill after it is False. Scores count the fill like a sampled answer's
  fill — a decoded answer that stops early is also EOS to the end, and each of those positions is a decision
  the trajectory made — so text pairs and self-sampled pairs are scored alike; the masks give the pairs' real
  lengths (the statistics logged) and tell the fill apart wherever a caller needs it.

Text pairs carry no rewards (the file ranks, it does not score): chosen counts as 1 and rejected as 0. Nor do
they carry step maps; dTRPO reconstructs them (:mod:`thrifty.dlm.rl.order`), VRPO needs none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.data import is_prompt, jsonl_objects, prompt_token_ids


@dataclass(frozen=True)
class TextPairs:
    """Checked preference rows of a JSONL file, not yet tokenised (``lines``: each row's line in the file)."""

    path: str
    rows: list[dict[str, Any]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class TokenPairs:
    """Tokenised text pairs: prompt (M, P) left-padded, chosen and rejected (M, G) EOS-filled, with validity."""

    prompt_ids: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_valid: torch.Tensor  # (M, G) bool: the answer's own tokens and the first EOS
    rejected_valid: torch.Tensor
    stats: dict[str, float]


def read_pref_jsonl(path: str | Path) -> TextPairs:
    """The rows of a JSONL preference file; a missing file, bad JSON or a bad row is a one-line error (file:line)."""
    path = Path(path).expanduser()
    rows, lines = [], []
    for n, row in jsonl_objects(path, "no pairs file here (JSONL, one {\"prompt\", \"chosen\", \"rejected\"} per line)",
                                "each line must be an object with prompt, chosen and rejected"):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
        if missing:
            raise ConfigError(f"{path}:{n}: missing {', '.join(missing)} (each line needs prompt, chosen, rejected)")
        if not is_prompt(row["prompt"]):
            raise ConfigError(f"{path}:{n}: \"prompt\" must be a string or a list of {{\"role\", \"content\"}} "
                              "messages")
        for key in ("chosen", "rejected"):
            if not isinstance(row[key], str):
                raise ConfigError(f"{path}:{n}: \"{key}\" must be a string, got {type(row[key]).__name__}")
        if row["chosen"] == row["rejected"]:
            raise ConfigError(f"{path}:{n}: chosen and rejected are the same text: the pair prefers nothing")
        rows.append(row)
        lines.append(n)
    if not rows:
        raise ConfigError(f"{path}: no pairs in the file")
    return TextPairs(str(path), rows, lines)


def fit_answer(ids: list[int], length: int, eos_id: int) -> tuple[list[int], list[bool]]:
    """(``length`` answer tokens, validity): EOS fill after a short answer (valid up to and including the first
    EOS), the first ``length`` tokens of a long one (all valid)."""
    ids = list(ids[:length])
    if len(ids) == length:
        return ids, [True] * length
    n = len(ids)
    return ids + [eos_id] * (length - n), [True] * (n + 1) + [False] * (length - n - 1)


def tokenize_pairs(pairs: TextPairs, tokenizer: Any, gen_len: int, mask_id: int, eos_id: int | None, pad_id: int,
                   max_prompt_len: int, chat_template: bool = True) -> TokenPairs:
    """:class:`TokenPairs` of ``pairs`` (see the module notes); the mask token in a row is a one-line error."""
    if eos_id is None:
        raise ConfigError("text preference pairs need an EOS token to fill short answers with; the tokenizer has none")
    prompts, answers, valid = [], {"chosen": [], "rejected": []}, {"chosen": [], "rejected": []}
    long = 0
    for row, n in zip(pairs.rows, pairs.lines, strict=True):
        where = f"{pairs.path}:{n}"
        try:
            ids = prompt_token_ids(tokenizer, row["prompt"], chat_template)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        prompts.append(ids[-max_prompt_len:])
        for key in answers:
            toks = list(tokenizer(row[key], add_special_tokens=False)["input_ids"])
            long += len(toks) > gen_len
            fitted, ok = fit_answer(toks, gen_len, eos_id)
            answers[key].append(fitted)
            valid[key].append(ok)
        if mask_id in ids or mask_id in answers["chosen"][-1] or mask_id in answers["rejected"][-1]:
            raise ConfigError(f"{where}: the row contains the mask token itself")
        if answers["chosen"][-1] == answers["rejected"][-1]:
            raise ConfigError(f"{where}: chosen and rejected are the same once cut to gen_len={gen_len} tokens")
    width = max(len(p) for p in prompts)
    prompt_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], dtype=torch.long)
    chosen_valid = torch.tensor(valid["chosen"], dtype=torch.bool)
    rejected_valid = torch.tensor(valid["rejected"], dtype=torch.bool)
    stats = {"pairs": float(len(prompts)), "pair_prompt_len": float(width), "answers_truncated": float(long),
             "chosen_tokens": float(chosen_valid.sum(dim=1).double().mean()),
             "rejected_tokens": float(rejected_valid.sum(dim=1).double().mean())}
    return TokenPairs(prompt_ids, torch.tensor(answers["chosen"], dtype=torch.long),
                      torch.tensor(answers["rejected"], dtype=torch.long), chosen_valid, rejected_valid, stats)


__all__ = ["TextPairs", "TokenPairs", "fit_answer", "read_pref_jsonl", "tokenize_pairs"]
