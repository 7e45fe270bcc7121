"""Rewards in the user's own format: plain callables ``f(prompts, completions, **columns) -> list[float | None]``
named in a config as ``module:function`` (or ``path/to/file.py:function``), several summed with weights.

One call scores a batch: ``prompts`` are the JSONL rows' ``prompt`` values (a string, or a list of chat messages),
``completions`` the decoded answers (strings), and every other column of the rows arrives as a keyword argument
holding one value per row (so ``f(prompts, completions, answer, **_)`` reads an ``answer`` column). A function
returns one number per row, or ``None`` for a row it does not judge; ``None`` adds nothing to that row's sum (TRL's
convention for reward functions that apply to only some rows). Nothing is imported until a reward is loaded.

Three rewards come built in, for rows with an ``answer`` column, each named by its bare name or as
``thrifty.dlm.rewards:NAME`` (1 right, 0 wrong, ``None`` for a row whose answer is missing):

- ``math_answer`` — math-verify parses the completion (the last ``\\boxed{}``, LaTeX or a plain expression) and the
  answer (plain text, or LaTeX read as ``$…$`` when bare text does not parse) and compares them symbolically, so
  ``0.5`` matches ``\\frac{1}{2}``; imported only when the reward runs (``thrifty[train]`` installs it).
- ``exact_answer`` — the completion is the answer, ignoring case and runs of whitespace.
- ``contains_answer`` — the answer occurs in the completion as a whole token (``3`` matches ``is 3.`` but not ``13``
  or ``3.5``), ignoring case and runs of whitespace.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError

RewardFn = Callable[..., Sequence[float | None]]


def _module(name: str, spec: str) -> Any:
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"reward {spec!r}: no file {path}")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        mod_name = f"thrifty_user_reward_{path.stem}_{digest}"
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        found = importlib.util.spec_from_file_location(mod_name, path)
        if found is None or found.loader is None:
            raise ConfigError(f"reward {spec!r}: cannot load {path} as Python")
        module = importlib.util.module_from_spec(found)
        sys.modules[mod_name] = module
        try:
            found.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ConfigError(f"reward {spec!r}: importing {path} failed: {type(exc).__name__}: {exc}") from None
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"reward {spec!r}: no module named {exc.name!r} (is it on PYTHONPATH? a file path "
                          "ending in .py works too)") from None
    except Exception as exc:
        raise ConfigError(f"reward {spec!r}: importing {name} failed: {type(exc).__name__}: {exc}") from None


def load_callable(spec: str) -> Callable[..., Any]:
    """The function ``spec`` names: ``package.module:function`` or ``path/to/file.py:function`` (the attribute part
    may be dotted, e.g. ``module:Class.method``), or a bare built-in name (:data:`BUILTIN_REWARDS`); a bad name is a one-line :class:`ConfigError`."""
    if spec.strip() in BUILTIN_REWARDS:
        spec = f"{__name__}:{spec.strip()}"
    name, sep, attr = spec.strip().rpartition(":")
    if not sep or not name or not attr:
        raise ConfigError(f"reward {spec!r} must look like module:function or path/to/file.py:function")
    obj: Any = _module(name, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"reward {spec!r}: {name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"reward {spec!r}: {attr} is a {type(obj).__name__}, not a function")
    return obj


class RewardSum:
    """Σ_f weight_f · f(prompts, completions, **columns) per row, ``None`` counting as nothing."""

    def __init__(self, specs: Sequence[str], weights: Sequence[float] = ()) -> None:
        if not specs:
            raise ConfigError("no reward functions: name at least one as module:function (reward_funcs)")
        if weights and len(weights) != len(specs):
            raise ConfigError(f"reward_weights has {len(weights)} entries for {len(specs)} reward_funcs")
        self.names = [s.strip() for s in specs]
        self.funcs = [load_callable(s) for s in specs]
        self.weights = [float(w) for w in weights] if weights else [1.0] * len(specs)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[str], **columns: Sequence[Any]) -> list[float]:
        n = len(completions)
        total = [0.0] * n
        for name, fn, w in zip(self.names, self.funcs, self.weights, strict=True):
            values = fn(list(prompts), list(completions), **{k: list(v) for k, v in columns.items()})
            if values is None or len(values) != n:
                got = "None" if values is None else f"{len(values)} values"
                raise ConfigError(f"reward {name!r} returned {got} for {n} completions (one number or None each)")
            for i, v in enumerate(values):
                if v is None:
                    continue
                v = float(v)
                if math.isnan(v):
                    continue
                total[i] += w * v
        return total


BUILTIN_REWARDS = ("math_answer", "exact_answer", "contains_answer", "code_tests")


def _gold(name: str, answer: Sequence[Any] | None, columns: dict[str, Any]) -> list[Any]:
    if answer is None:
        raise ConfigError(f"reward {name} reads an 'answer' column; the rows have "
                          f"{', '.join(sorted(columns)) or 'no columns but prompt'}")
    return list(answer)


def _norm(text: Any) -> str:
    return " ".join(str(text).split()).casefold()


def exact_answer(prompts: Sequence[Any], completions: Sequence[str], answer: Sequence[Any] | None = None,
                 **columns: Any) -> list[float | None]:
    """1.0 when a completion is its row's answer (case and whitespace runs ignored), 0.0 if not, None without one."""
    gold = _gold("exact_answer", answer, columns)
    return [None if a is None else float(_norm(c) == _norm(a)) for c, a in zip(completions, gold, strict=True)]


def contains_answer(prompts: Sequence[Any], completions: Sequence[str], answer: Sequence[Any] | None = None,
                    **columns: Any) -> list[float | None]:
    """1.0 when a row's answer occurs in the completion as a whole token, 0.0 if not, None without an answer."""
    gold = _gold("contains_answer", answer, columns)
    out: list[float | None] = []
    for c, a in zip(completions, gold, strict=True):
        if a is None or not _norm(a):
            out.append(None)
            continue
        pattern = r"(?<![\w.])" + re.escape(_norm(a)) + r"(?!\w|\.\d)"
        out.append(float(re.search(pattern, _norm(c)) is not None))
    return out


def _parse_gold(parse: Callable[[str], list[Any]], answer: str) -> list[Any]:
    found = parse(answer)
    return found if found or "$" in answer else parse(f"${answer}$")


def math_answer(prompts: Sequence[Any], completions: Sequence[str], answer: Sequence[Any] | None = None,
                **columns: Any) -> list[float | None]:
    """1.0 when math-verify finds a completion's final answer equal to its row's answer, 0.0 if not (or when
    either does not parse), None without an answer."""
    try:
        from math_verify import parse, verify
    except ImportError:
        raise ConfigError("reward math_answer needs math-verify (pip install 'thrifty[train]')") from None
    gold = _gold("math_answer", answer, columns)
    out: list[float | None] = []
    for c, a in zip(completions, gold, strict=True):
        if a is None or not str(a).strip():
            out.append(None)
            continue
        try:
            expected, got = _parse_gold(parse, str(a)), parse(str(c))
            out.append(float(bool(expected) and bool(got) and verify(expected, got)))
        except Exception:  # math-verify gives up on some inputs (timeouts, unparsable LaTeX): not a match
            out.append(0.0)
    return out


CODE_TIMEOUT_S = 10.0


def code_tests(prompts: Sequence[Any], completions: Sequence[str], tests: Sequence[Any] | None = None,
               entry_point: Sequence[Any] | None = None, **columns: Any) -> list[float | None]:
    """1.0 when a completion's code (its fenced block defining ``entry_point`` when the row names one, else its
    first Python block, else the raw text), followed by the row's ``tests`` (Python: asserts, or a ``check``
    function and its call), runs to the end in the sandbox of :mod:`thrifty.tasks.sandbox`; 0.0 if it fails, times
    out (``CODE_TIMEOUT_S``) or exits early; None for a row without tests. Untrusted code never runs outside the
    sandbox: without a working one this is a one-line error."""
    from thrifty.tasks.humaneval import extract_code, run_program

    if tests is None:
        raise ConfigError(f"reward code_tests reads a 'tests' column; the rows have "
                          f"{', '.join(sorted(columns)) or 'no columns but prompt'}")
    entries = list(entry_point) if entry_point is not None else [None] * len(completions)
    out: list[float | None] = []
    for c, t, e in zip(completions, list(tests), entries, strict=True):
        if t is None or not str(t).strip():
            out.append(None)
            continue
        program = f"{extract_code(str(c), str(e) if e else None)}\n\n{t}\n"
        out.append(float(run_program(program, timeout_s=CODE_TIMEOUT_S)[0]))
    return out


__all__ = ["BUILTIN_REWARDS", "CODE_TIMEOUT_S", "RewardFn", "RewardSum", "code_tests", "contains_answer", "exact_answer",
           "load_callable", "math_answer"]
