"""The Task contract: Example, Score, the Task protocol and deterministic split helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from thrifty.core.errors import ConfigError, check_choice
from thrifty.core.types import Messages, content_hash

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Example:
    """One query. ``id`` is stable across runs; ``meta`` holds task, dataset, category and task-specific data."""

    id: str
    prompt: str
    reference: str | None = None
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def messages(self) -> Messages:
        """Chat messages for this example (system instruction first when set); a recorded conversation
        (``meta["messages"]``, e.g. live traffic) is returned as it was."""
        if self.meta.get("messages"):
            return [dict(m) for m in self.meta["messages"]]
        msgs: Messages = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        msgs.append({"role": "user", "content": self.prompt})
        return msgs


@dataclass(frozen=True)
class Score:
    """A verifier's verdict: value in [0, 1], correct, the parsed answer (None if none found) and why."""

    value: float
    correct: bool
    parsed: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.value <= 1.0:
            raise ValueError(f"score value must be in [0, 1], got {self.value}")


@runtime_checkable
class Task(Protocol):
    """A source of examples with a verifier."""

    name: str

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]: ...

    def score(self, example: Example, text: str) -> Score: ...


def check_split(split: str) -> str:
    """Return ``split`` or raise a one-line ConfigError naming the valid ones."""
    check_choice("split", split, SPLITS)
    return split


def split_of(key: str, fractions: Sequence[float] = (0.6, 0.2, 0.2), salt: str = "thrifty-split") -> str:
    """Deterministic split assignment of an item by the hash of its key: same key → same split, always."""
    if len(fractions) != len(SPLITS) or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ConfigError(f"split fractions must be {len(SPLITS)} non-negative numbers summing to 1")
    u = int(content_hash([salt, key])[:12], 16) / float(16**12)
    acc = 0.0
    for name, frac in zip(SPLITS, fractions, strict=True):
        acc += frac
        if u < acc:
            return name
    return SPLITS[-1]
