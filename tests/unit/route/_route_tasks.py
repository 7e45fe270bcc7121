"""A tiny verifiable task shared by the route tests: "What is i + (seed + 1)?" with an "Answer: N" verifier."""

from __future__ import annotations

import re

from thrifty.tasks.base import Example, Score


class AddTask:
    """Tiny verifiable task with splits: add i and seed + 1; example ids are "<split>-<i>"."""

    def __init__(self, name: str) -> None:
        self.name = name

    def examples(self, split, n, seed=0):
        return [Example(id=f"{split}-{i}", prompt=f"What is {i} + {seed + 1}?", reference=str(i + seed + 1))
                for i in range(n)]

    def score(self, example, text):
        m = re.search(r"Answer:\s*(-?\d+)", text)
        parsed = m.group(1) if m else None
        ok = parsed == example.reference
        return Score(1.0 if ok else 0.0, ok, parsed, "match" if ok else "mismatch")
