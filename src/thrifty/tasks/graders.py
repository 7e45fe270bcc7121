"""Graders for local-file benchmarks: math equivalence (math-verify), choice letters, normalised exact match.

Each grader takes the gold answer (and options) plus the raw model text and returns a ``Score`` with the
extracted answer in ``parsed`` (None and reason "no answer found" when extraction fails). Scores are binary:
value 1.0 / correct True, or 0.0 / False.
"""

from __future__ import annotations

import re
import string
import threading
from collections.abc import Mapping

from thrifty.tasks.base import Score
from thrifty.tasks.extract import extract_answer, extract_choice, normalize_number, strip_decoration

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _verdict(ok: bool, parsed: str) -> Score:
    return Score(1.0 if ok else 0.0, ok, parsed, "correct" if ok else "wrong answer")


def _as_latex(s: str) -> str:
    s = s.strip()
    return s if s.startswith("$") else f"${s}$"


def math_equal(gold: str, pred: str) -> bool:
    """True when ``pred`` is mathematically equal to ``gold`` (math-verify, imported here).

    Both are parsed as LaTeX inside ``$…$``; math-verify's signal-based timeouts are used on the main thread
    and switched off elsewhere (signals only work there). Falls back to normalised string equality when
    math-verify cannot parse either side.
    """
    if normalize_number(gold) is not None and normalize_number(gold) == normalize_number(pred):
        return True
    from math_verify import parse, verify

    main = threading.current_thread() is threading.main_thread()
    t = 5 if main else None
    try:
        g = parse(_as_latex(gold), parsing_timeout=t)
        p = parse(_as_latex(pred), parsing_timeout=t)
        if g and p:
            return bool(verify(g, p, timeout_seconds=t))
    except Exception:  # math-verify raises on pathological input and on timeouts
        pass
    return normalize_text(gold) == normalize_text(pred)


def grade_math(gold: str, text: str) -> Score:
    """Extract a free-form answer (tag, Answer line, \\boxed{}, last number) and compare with math-verify."""
    parsed = extract_answer(text or "")
    if parsed is None:
        return Score(0.0, False, None, "no answer found")
    return _verdict(math_equal(gold, parsed), parsed)


def grade_choice(gold: str, text: str, letters: str, options: Mapping[str, str] | None = None) -> Score:
    """Extract a choice letter among ``letters`` (option texts also accepted) and compare with ``gold``."""
    parsed = extract_choice(text or "", letters=letters, options=options)
    if parsed is None:
        return Score(0.0, False, None, "no answer found")
    return _verdict(parsed == gold.strip().upper(), parsed)


def normalize_text(s: str) -> str:
    """Lower case, no punctuation, no articles (a/an/the), single spaces; numbers made canonical."""
    s = strip_decoration(s)
    num = normalize_number(s)
    if num is not None:
        return num
    s = s.lower()
    s = "".join(ch for ch in s if ch not in string.punctuation)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def grade_exact(gold: str | list[str], text: str) -> Score:
    """Normalised exact match of the extracted answer (or, without one, the last non-empty line).

    ``gold`` may be a list of acceptable answers.
    """
    parsed = extract_answer(text or "", numeric_fallback=False)
    if parsed is None:
        lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
        parsed = strip_decoration(lines[-1]) if lines else None
    if not parsed:
        return Score(0.0, False, None, "no answer found")
    golds = gold if isinstance(gold, list) else [gold]
    ok = normalize_text(parsed) in {normalize_text(g) for g in golds}
    return _verdict(ok, parsed)
