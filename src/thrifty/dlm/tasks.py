"""Tasks for masked-diffusion models: seeded, leakage-free (prompt, answer) text pairs, a character vocabulary
that tokenises them to fixed-length id sequences, and a verifier with partial credit.

A task fixes ``prompt_len`` and ``answer_len``: the model sees ``[prompt ids, SEP, answer ids]`` where the prompt
is left-padded and the answer right-padded with the vocabulary's pad symbol (EOS for tasks whose answers vary in
length, as in LLaDA's EOS-padded SFT data). The special ids (SEP, MASK, EOS) come from the vocabulary, never from
literals. Tasks register by name in :data:`TASKS`; ``get_task(name)`` builds one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thrifty.core.errors import ConfigError, check_choice


class CharVocab:
    """One id per symbol character, then ``[SEP]``, ``[MASK]`` and (when ``eos``) ``[EOS]``."""

    def __init__(self, symbols: str, eos: bool = False) -> None:
        if len(set(symbols)) != len(symbols) or not symbols:
            raise ConfigError("vocabulary symbols must be distinct characters")
        self.symbols = symbols
        self._index = {ch: i for i, ch in enumerate(symbols)}
        self.sep_id, self.mask_id = len(symbols), len(symbols) + 1
        self.eos_id: int | None = len(symbols) + 2 if eos else None
        self.size = len(symbols) + (3 if eos else 2)

    @property
    def pad_id(self) -> int:
        """What pads prompts and answers: EOS when the vocabulary has one, else the first symbol."""
        return self.eos_id if self.eos_id is not None else 0

    def encode(self, text: str) -> list[int]:
        bad = sorted({ch for ch in text if ch not in self._index})
        if bad:
            raise ConfigError(f"characters {''.join(bad)!r} are not in the vocabulary {self.symbols!r}")
        return [self._index[ch] for ch in text]

    def decode(self, ids: list[int]) -> str:
        """Symbols up to the first EOS; SEP and MASK ids are dropped."""
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if 0 <= i < len(self.symbols):
                out.append(self.symbols[i])
        return "".join(out)


@dataclass(frozen=True)
class DlmExample:
    prompt: str
    answer: str  # the reference answer
    meta: dict[str, Any] = field(default_factory=dict)


class DlmTask:
    """Base class: subclasses set ``name``, ``vocab``, ``prompt_len``, ``answer_len`` and implement ``examples``
    and ``reward``."""

    name = ""
    vocab: CharVocab
    prompt_len = 0
    answer_len = 0
    splits = ("train", "test")
    valid_answer_symbols: str | None = None  # the symbols an answer may hold, when the task restricts them

    def examples(self, split: str, n: int, seed: int = 0) -> list[DlmExample]:
        raise NotImplementedError

    def reward(self, ex: DlmExample, text: str) -> float:
        """Partial credit in [0, 1] for a decoded answer."""
        raise NotImplementedError

    def solved(self, ex: DlmExample, text: str) -> bool:
        return self.reward(ex, text) >= 1.0

    def score(self, examples: list[DlmExample], texts: list[str]) -> tuple[list[float], list[bool]]:
        """(rewards, solved) of a batch of decoded answers — one row at a time here; tasks whose rewards score a
        batch at once (:class:`thrifty.dlm.data.PromptTask`) override it."""
        pairs = list(zip(examples, texts, strict=True))
        return [self.reward(ex, t) for ex, t in pairs], [self.solved(ex, t) for ex, t in pairs]

    @property
    def valid_answer_ids(self) -> tuple[int, ...] | None:
        """The ids of ``valid_answer_symbols`` (plus EOS when the vocabulary pads answers with it); None when any
        symbol may appear (for samplers' :class:`~thrifty.dlm.samplers.constraints.AnswerConstraints`)."""
        if self.valid_answer_symbols is None:
            return None
        ids = tuple(self.vocab.encode(self.valid_answer_symbols))
        return ids + ((self.vocab.eos_id,) if self.vocab.eos_id is not None else ())

    @property
    def seq_len(self) -> int:
        return self.prompt_len + 1 + self.answer_len

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ConfigError(f"{self.name} has splits {', '.join(self.splits)}, got {split!r}")

    def prompt_ids(self, ex: DlmExample) -> list[int]:
        """The prompt, left-padded to ``prompt_len``, then SEP."""
        ids = self.vocab.encode(ex.prompt)
        if len(ids) > self.prompt_len:
            raise ConfigError(f"{self.name}: prompt of {len(ids)} symbols exceeds prompt_len {self.prompt_len}")
        return [self.vocab.pad_id] * (self.prompt_len - len(ids)) + ids + [self.vocab.sep_id]

    def answer_ids(self, ex: DlmExample) -> list[int]:
        """The reference answer, right-padded to ``answer_len``."""
        ids = self.vocab.encode(ex.answer)
        if len(ids) > self.answer_len:
            raise ConfigError(f"{self.name}: answer of {len(ids)} symbols exceeds answer_len {self.answer_len}")
        return ids + [self.vocab.pad_id] * (self.answer_len - len(ids))

    def decode(self, answer_ids: list[int]) -> str:
        return self.vocab.decode(answer_ids)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "vocab": self.vocab.symbols, "eos": self.vocab.eos_id is not None,
                "prompt_len": self.prompt_len, "answer_len": self.answer_len}


class Sudoku4(DlmTask):
    """4×4 Sudoku, split by solution grid (:mod:`thrifty.dlm.sudoku`): 16 clue digits in, 16 digits out."""

    name = "sudoku4"
    prompt_len = 16
    answer_len = 16
    valid_answer_symbols = "1234"  # a solved grid holds no blanks ("0")

    def __init__(self) -> None:
        self.vocab = CharVocab("01234")

    def examples(self, split: str, n: int, seed: int = 0) -> list[DlmExample]:
        from thrifty.dlm import sudoku

        self.check_split(split)
        return [DlmExample(p, s) for p, s in sudoku.make_puzzles(split, n, seed=seed)]

    def reward(self, ex: DlmExample, text: str) -> float:
        from thrifty.dlm import sudoku

        return sudoku.reward(ex.prompt, ex.answer, text)


def _lazy(module: str, cls: str, **kwargs: Any) -> Callable[[], DlmTask]:
    """A factory that imports ``thrifty.dlm.<module>`` only when the task is built (those modules import this one)."""

    def factory() -> DlmTask:
        from importlib import import_module

        return getattr(import_module(f"thrifty.dlm.{module}"), cls)(**kwargs)

    return factory


TASKS: dict[str, Callable[[], DlmTask]] = {
    "sudoku4": Sudoku4,
    "sudoku9": _lazy("sudoku9", "Sudoku9"),
    "countdown3": _lazy("countdown", "Countdown", n_numbers=3),
    "countdown4": _lazy("countdown", "Countdown", n_numbers=4),
    "add5": _lazy("arith", "Arith", op="+", digits=5),
    "mul3": _lazy("arith", "Arith", op="*", digits=3),
}


def register_task(name: str, factory: Callable[[], DlmTask]) -> None:
    TASKS[name] = factory


def get_task(name: str) -> DlmTask:
    check_choice("dlm task", name, sorted(TASKS))
    return TASKS[name]()


__all__ = ["TASKS", "CharVocab", "DlmExample", "DlmTask", "Sudoku4", "get_task", "register_task"]
