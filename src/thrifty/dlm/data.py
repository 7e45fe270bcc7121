"""Prompts in the user's format for masked-diffusion RL on a Hugging Face checkpoint: a JSONL file, one object per
line with a ``prompt`` (a string, or a list of ``{"role", "content"}`` chat messages) and any extra columns the
reward functions read (e.g. ``answer``), turned into a :class:`~thrifty.dlm.tasks.DlmTask` the trainers use as is.

Each prompt goes through the tokenizer's chat template when it has one (``add_generation_prompt``; a string prompt
becomes one user message) — plain text is tokenised without special tokens otherwise. Prompts are left-padded with
the tokenizer's pad token (EOS when it has none) to the longest prompt, at most ``max_prompt_len`` tokens; longer
ones keep their last ``max_prompt_len`` tokens (as TRL truncates). Masked-diffusion models see the padding: like d1,
no attention mask is passed. Answers have ``gen_len`` tokens; a decoded answer stops at the first EOS. Rewards come
from :class:`~thrifty.dlm.rewards.RewardSum` (one batched call per rollout when the trainer scores a batch);
"solved" means a summed reward of at least 1.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.dlm.tasks import DlmExample, DlmTask


def jsonl_objects(path: Path, missing: str, not_object: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of the JSONL file ``path``; a missing file (``missing`` says
    what belongs there), a line that is not JSON or not an object (``not_object`` says what it must be) is a
    one-line :class:`ConfigError` naming the file and the line."""
    if not path.is_file():
        raise ConfigError(f"{path}: {missing}")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{n}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{n}: {not_object}")
        yield n, row


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL prompt file; a missing file, a bad line or a row without ``prompt`` is a one-line error."""
    path = Path(path)
    not_object = "each line must be an object with a \"prompt\" field"
    rows = []
    for n, row in jsonl_objects(path, "no prompt file here (JSONL, one {\"prompt\": ...} object per line)", not_object):
        if "prompt" not in row:
            raise ConfigError(f"{path}:{n}: {not_object}")
        rows.append(check_prompt(row, f"{path}:{n}"))
    if not rows:
        raise ConfigError(f"{path}: no prompts in the file")
    return rows


def is_prompt(value: Any) -> bool:
    """Whether ``value`` is a prompt: a string, or a non-empty list of ``{"role", "content"}`` messages."""
    return isinstance(value, str) or (isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value))


def check_prompt(row: dict[str, Any], where: str) -> dict[str, Any]:
    """``row`` when it has a well-formed ``prompt``; otherwise a one-line error that starts with ``where``."""
    if "prompt" not in row:
        raise ConfigError(f"{where}: no \"prompt\" column (the row has {', '.join(map(str, row)) or 'none'})")
    if not is_prompt(row["prompt"]):
        raise ConfigError(f"{where}: \"prompt\" must be a string or a list of {{\"role\", \"content\"}} messages")
    return row


def prompt_token_ids(tokenizer: Any, prompt: str | list[dict[str, str]], chat_template: bool = True) -> list[int]:
    """Token ids of one prompt: through the chat template (with the generation prompt) when the tokenizer has one
    and ``chat_template`` is on, else the plain text without special tokens."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    elif isinstance(prompt, str):
        text = prompt
    else:
        raise ConfigError("chat-message prompts need a tokenizer with a chat template (or chat_template on)")
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def split_rows(rows: list[dict[str, Any]], n_eval: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out): ``n_eval`` rows drawn with ``seed`` are held out, the rest keep their file order."""
    if n_eval >= len(rows):
        raise ConfigError(f"the prompt file has {len(rows)} rows: holding out n_eval={n_eval} leaves none to train on; "
                          "lower n_eval or give an eval_file")
    held = set(random.Random(seed).sample(range(len(rows)), n_eval))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


@dataclass(frozen=True)
class TokenVocab:
    """The special ids a tokenizer gives (the trainers read ``mask_id``, ``eos_id`` and ``pad_id``)."""

    mask_id: int
    eos_id: int | None
    pad_id: int
    size: int


def _display(prompt: str | list[dict[str, str]]) -> str:
    return prompt if isinstance(prompt, str) else str(prompt[-1]["content"])


class PromptTask(DlmTask):
    """Prompts from rows, answers of ``gen_len`` tokens, scored by ``reward(prompts, completions, **columns)``."""

    name = "prompts"

    def __init__(self, tokenizer: Any, train_rows: list[dict[str, Any]], test_rows: list[dict[str, Any]],
                 gen_len: int, reward: Callable[..., Sequence[float]], mask_id: int, eos_id: int | None,
                 max_prompt_len: int = 200, chat_template: bool = True) -> None:
        if gen_len < 1 or max_prompt_len < 1:
            raise ConfigError("gen_len and max_prompt_len must be >= 1")
        pad = getattr(tokenizer, "pad_token_id", None)
        pad = eos_id if pad is None else int(pad)
        if pad is None:
            raise ConfigError("the tokenizer has neither a pad nor an EOS token to left-pad prompts with")
        self.tokenizer, self.reward_fn = tokenizer, reward
        self._memo: dict[tuple[int, str], float] = {}
        self.vocab = TokenVocab(int(mask_id), eos_id, pad, len(tokenizer))
        self.answer_len = gen_len
        self.columns = sorted({k for r in train_rows + test_rows for k in r if k != "prompt"})
        self._split = {"train": [self._example(r, chat_template) for r in train_rows],
                       "test": [self._example(r, chat_template) for r in test_rows]}
        longest = max(len(ex.meta["ids"]) for rows in self._split.values() for ex in rows)
        self.prompt_len = min(longest, max_prompt_len)
        self.truncated = sum(len(ex.meta["ids"]) > self.prompt_len for rows in self._split.values() for ex in rows)

    def _example(self, row: dict[str, Any], chat_template: bool) -> DlmExample:
        ids = tuple(prompt_token_ids(self.tokenizer, row["prompt"], chat_template))
        if self.vocab.mask_id in ids:
            raise ConfigError(f"a prompt contains the mask token itself: {_display(row['prompt'])[:60]!r}")
        columns = {k: row.get(k) for k in self.columns}
        return DlmExample(_display(row["prompt"]), "", {"prompt": row["prompt"], "columns": columns, "ids": ids})

    def examples(self, split: str, n: int, seed: int = 0) -> list[DlmExample]:
        """The first ``n`` rows of the split (the file's order; ``seed`` is unused: the rows are fixed)."""
        self.check_split(split)
        return self._split[split][:n]

    def prompt_ids(self, ex: DlmExample) -> list[int]:
        ids = list(ex.meta["ids"])[-self.prompt_len:]
        return [self.vocab.pad_id] * (self.prompt_len - len(ids)) + ids

    def answer_ids(self, ex: DlmExample) -> list[int]:
        raise ConfigError("prompt files carry no reference answers: the SFT objective does not apply")

    def decode(self, answer_ids: list[int]) -> str:
        if self.vocab.eos_id is not None and self.vocab.eos_id in answer_ids:
            answer_ids = answer_ids[:answer_ids.index(self.vocab.eos_id)]
        return str(self.tokenizer.decode(answer_ids, skip_special_tokens=True))

    def score(self, examples: list[DlmExample], texts: list[str]) -> tuple[list[float], list[bool]]:
        """(rewards, solved) of a batch with one call of the reward functions."""
        columns = {k: [ex.meta["columns"].get(k) for ex in examples] for k in self.columns}
        rewards = [float(r) for r in self.reward_fn([ex.meta["prompt"] for ex in examples], list(texts), **columns)]
        return rewards, [r >= 1.0 for r in rewards]

    def reward(self, ex: DlmExample, text: str) -> float:
        """One row's reward (remembered, so that ``solved`` on the same row and text does not call it again)."""
        key = (id(ex), text)
        if key not in self._memo:
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[key] = self.score([ex], [text])[0][0]
        return self._memo[key]

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "prompt_len": self.prompt_len, "answer_len": self.answer_len,
                "mask_id": self.vocab.mask_id, "eos_id": self.vocab.eos_id, "pad_id": self.vocab.pad_id,
                "columns": self.columns}


__all__ = ["PromptTask", "TokenVocab", "check_prompt", "is_prompt", "prompt_token_ids", "read_jsonl", "split_rows"]
