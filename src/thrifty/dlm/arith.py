"""Multi-digit addition and multiplication for masked-diffusion models: fixed digit counts, seeded operand pairs
split by a hash of the unordered pair, answers least-significant digit first, partial credit per digit.

The prompt is the two operands as written (``"12345+67890"``); the answer is the result zero-padded to its
fixed width (digits + 1 for a sum, 2 × digits for a product) and written **least-significant digit first**
(``80235`` → ``532080`` for width 6). A masked-diffusion model can fill digits in any order, but the carries flow
from the low end, so with this order a left-to-right or block-wise decoder meets each digit after the ones it
depends on, and each answer digit sits at a fixed offset from the operand digits that decide it. The pair is
split by a hash of (smaller, larger), so ``a+b`` and ``b+a`` always share a split. Reward: the fraction of the
answer's positions that match the reference (missing characters count as wrong).
"""

from __future__ import annotations

import random

from thrifty.core.errors import ConfigError
from thrifty.dlm.leakage import split_of
from thrifty.dlm.tasks import CharVocab, DlmExample, DlmTask

TEST_SHARE = 0.2
OPS = {"+": "add", "*": "mul"}


def reward(reference: str, text: str) -> float:
    """Fraction of the reference's positions where ``text`` has the same character."""
    return sum(i < len(text) and text[i] == ch for i, ch in enumerate(reference)) / len(reference)


class Arith(DlmTask):
    """``digits``-digit ``a op b`` (op ``+`` or ``*``), both operands with exactly ``digits`` digits."""

    def __init__(self, op: str = "+", digits: int = 5) -> None:
        if op not in OPS or not 1 <= digits <= 12:
            raise ConfigError(f"arithmetic needs op in {sorted(OPS)} and 1 <= digits <= 12, got {op!r}, {digits}")
        self.op, self.digits = op, digits
        self.name = f"{OPS[op]}{digits}"
        self.prompt_len = 2 * digits + 1
        self.answer_len = digits + 1 if op == "+" else 2 * digits
        self.vocab = CharVocab("0123456789" + op)

    def answer(self, a: int, b: int) -> str:
        value = a + b if self.op == "+" else a * b
        return str(value).zfill(self.answer_len)[::-1]

    def n_pairs(self) -> int:
        """Distinct unordered operand pairs (both splits together)."""
        m = 9 * 10 ** (self.digits - 1)
        return m * (m + 1) // 2

    def examples(self, split: str, n: int, seed: int = 0) -> list[DlmExample]:
        self.check_split(split)
        share = TEST_SHARE if split == "test" else 1 - TEST_SHARE
        if n > share * self.n_pairs() / 2:
            raise ConfigError(f"{self.name}: {n} {split} examples requested, but the split holds only about "
                              f"{share * self.n_pairs():.0f} operand pairs; ask for at most half of that")
        rng = random.Random(f"{self.name}-{split}-{seed}")
        lo, hi = 10 ** (self.digits - 1), 10 ** self.digits - 1
        out: list[DlmExample] = []
        seen: set[tuple[int, int]] = set()
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 100 * n + 10_000:
                raise ConfigError(f"{self.name}: could not draw {n} distinct {split} operand pairs")
            a, b = rng.randint(lo, hi), rng.randint(lo, hi)
            pair = (min(a, b), max(a, b))
            if pair in seen or split_of(f"{self.name}:{pair[0]},{pair[1]}", TEST_SHARE) != split:
                continue
            seen.add(pair)
            out.append(DlmExample(f"{a}{self.op}{b}", self.answer(a, b), {"a": a, "b": b}))
        return out

    def reward(self, ex: DlmExample, text: str) -> float:
        return reward(ex.answer, text)


__all__ = ["OPS", "TEST_SHARE", "Arith", "reward"]
