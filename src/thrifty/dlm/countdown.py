"""Countdown for masked-diffusion models: reach a target from 3 or 4 numbers with + − × ÷, each number used once;
seeded solvable problems split by number set and target, and d1's 0 / 0.1 / 1 reward with a safe evaluator.

A problem draws its numbers, then builds a random expression over all of them (subtraction only to a positive
result, division only when exact and not by 1, products capped) until its value is a target in range: every
problem is solvable and that expression is the reference answer, fully parenthesised. A problem belongs to
train or test by a hash of its sorted numbers and target, so the same problem (in any order) is never in both.
The prompt is ``numbers:target`` (``"3,17,25:67"``); the answer an expression such as ``(25+17)+3``, EOS-padded.

The reward follows d1: 0 when the answer is not an expression (empty, or a character outside digits, + − × ÷,
parentheses, point and space — such text is never evaluated); 0.1 when the numbers are not each used exactly
once, the expression does not evaluate (syntax, division by zero) or its value misses; 1.0 when
|value − target| < 1e-5. The evaluator is a small recursive-descent parser over exact fractions, not ``eval``.
"""

from __future__ import annotations

import random
import re
from fractions import Fraction

from thrifty.core.errors import ConfigError
from thrifty.dlm.leakage import split_of
from thrifty.dlm.tasks import CharVocab, DlmExample, DlmTask

TEST_SHARE = 0.2
MAX_PRODUCT = 1000  # cap on any intermediate product while generating
_ALLOWED = re.compile(r"[\d+\-*/().\s]+")
_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+|[-+*/()])")


def _tokens(expr: str) -> list[str] | None:
    out, pos, text = [], 0, expr.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            return None
        out.append(m.group(1))
        pos = m.end()
    return out


def evaluate(expr: str) -> Fraction | None:
    """The exact value of an arithmetic expression (numbers, + − × ÷, unary signs, parentheses), or None when it
    does not parse, divides by zero or is too long. Nothing outside that grammar is ever run."""
    if len(expr) > 256 or not _ALLOWED.fullmatch(expr):
        return None
    toks = _tokens(expr)
    if not toks:
        return None
    pos = 0

    def peek() -> str | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return toks[pos - 1]

    def expression() -> Fraction:
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take() == "+" else value - term()
        return value

    def term() -> Fraction:
        value = factor()
        while peek() in ("*", "/"):
            if take() == "*":
                value *= factor()
            else:
                value /= factor()  # ZeroDivisionError on zero
        return value

    def factor() -> Fraction:
        tok = peek()
        if tok is None:
            raise ValueError("unexpected end")
        take()
        if tok in ("+", "-"):
            return factor() if tok == "+" else -factor()
        if tok == "(":
            value = expression()
            if peek() != ")":
                raise ValueError("unbalanced parenthesis")
            take()
            return value
        if tok in (")", "*", "/"):
            raise ValueError(f"unexpected {tok!r}")
        return Fraction(tok)

    try:
        value = expression()
    except (ValueError, ZeroDivisionError):
        return None
    return value if pos == len(toks) else None


def parse_prompt(prompt: str) -> tuple[list[int], int]:
    """``"3,17,25:67"`` → ([3, 17, 25], 67)."""
    nums, target = prompt.split(":")
    return [int(x) for x in nums.split(",")], int(target)


def reward(numbers: list[int], target: int, text: str) -> float:
    """d1's Countdown reward (module notes): 0, 0.1 or 1.0."""
    expr = text.strip()
    if not expr or not _ALLOWED.fullmatch(expr):
        return 0.0
    if sorted(int(x) for x in re.findall(r"\d+", expr)) != sorted(numbers):
        return 0.1
    value = evaluate(expr)
    if value is None:
        return 0.1
    return 1.0 if abs(float(value - target)) < 1e-5 else 0.1


def _random_solution(numbers: list[int], rng: random.Random) -> tuple[int, str]:
    """One random expression over all ``numbers`` with positive integer intermediates: (value, text)."""
    pool = [(n, str(n), False) for n in numbers]  # (value, text, compound)
    while len(pool) > 1:
        i, j = rng.sample(range(len(pool)), 2)
        (a, ta, ca), (b, tb, cb) = pool[i], pool[j]
        ops = ["+"] + (["-"] if a > b else []) + (["*"] if a * b <= MAX_PRODUCT else []) + \
            (["/"] if b > 1 and a % b == 0 else [])
        op = rng.choice(ops)
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a // max(b, 1)}[op]
        text = f"({ta})" if ca else ta
        text += op + (f"({tb})" if cb else tb)
        pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [(value, text, True)]
    return pool[0][0], pool[0][1]


class Countdown(DlmTask):
    """Countdown with ``n_numbers`` numbers in [1, ``max_number``] and targets in [1, ``max_target``]."""

    prompt_len = 16

    def __init__(self, n_numbers: int = 3, max_number: int = 50, max_target: int = 100) -> None:
        if n_numbers not in (3, 4) or not 2 <= max_number <= 99 or not 1 <= max_target <= 999:
            raise ConfigError("countdown needs 3 or 4 numbers, max_number in [2, 99], max_target in [1, 999]")
        self.n_numbers, self.max_number, self.max_target = n_numbers, max_number, max_target
        self.name = f"countdown{n_numbers}"
        self.answer_len = 4 * n_numbers  # 2-digit numbers, n−1 operators, 2(n−2) parentheses fit
        self.vocab = CharVocab("0123456789+-*/(),:", eos=True)

    def key(self, numbers: list[int], target: int) -> str:
        return f"{self.name}:{','.join(map(str, sorted(numbers)))}:{target}"

    def examples(self, split: str, n: int, seed: int = 0) -> list[DlmExample]:
        self.check_split(split)
        rng = random.Random(f"{self.name}-{split}-{seed}-{self.max_number}-{self.max_target}")
        out: list[DlmExample] = []
        seen: set[str] = set()
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 200 * n + 10_000:
                raise ConfigError(f"could not draw {n} distinct {split} {self.name} problems "
                                  f"(numbers up to {self.max_number}, targets up to {self.max_target})")
            numbers = [rng.randint(1, self.max_number) for _ in range(self.n_numbers)]
            value, expr = _random_solution(numbers, rng)
            key = self.key(numbers, value)
            if not 1 <= value <= self.max_target or key in seen or split_of(key, TEST_SHARE) != split:
                continue
            seen.add(key)
            out.append(DlmExample(f"{','.join(map(str, numbers))}:{value}", expr,
                                  {"numbers": numbers, "target": value}))
        return out

    def reward(self, ex: DlmExample, text: str) -> float:
        numbers, target = parse_prompt(ex.prompt)
        return reward(numbers, target, text)


__all__ = ["TEST_SHARE", "Countdown", "evaluate", "parse_prompt", "reward"]
