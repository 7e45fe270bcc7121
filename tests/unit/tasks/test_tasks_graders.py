"""Graders: math-verify equivalence, choice letters and normalised exact match, with traps."""

from __future__ import annotations

import threading

import pytest

from thrifty.tasks.graders import grade_choice, grade_exact, grade_math, math_equal, normalize_text


@pytest.mark.parametrize(
    ("gold", "pred", "equal"),
    [
        ("72", "72.0", True),
        ("1400", "1,400", True),
        ("\\frac{1}{2}", "0.5", True),
        ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", True),
        ("x^2+1", "1 + x^2", True),
        ("5", "6", False),
        ("\\pi", "3.14159", False),
    ],
)
def test_math_equal(gold, pred, equal):
    pytest.importorskip("math_verify")
    assert math_equal(gold, pred) is equal


def test_math_equal_works_off_the_main_thread():
    pytest.importorskip("math_verify")
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault("v", math_equal("\\frac{1}{4}", "0.25")))
    worker.start()
    worker.join(30)
    assert out == {"v": True}


def test_grade_math_scores_and_reasons():
    pytest.importorskip("math_verify")
    good = grade_math("12", "2 dozen eggs... no: 12 eggs.\nAnswer: 12")
    assert good.correct and good.value == 1.0 and good.parsed == "12" and good.reason == "correct"
    bad = grade_math("12", "Answer: 13")
    assert not bad.correct and bad.value == 0.0 and bad.reason == "wrong answer"
    assert grade_math("12", "hmm").parsed is None


def test_grade_choice():
    opts = {"A": "red", "B": "blue", "C": "green"}
    assert grade_choice("B", "Answer: blue", "ABC", opts).correct
    assert not grade_choice("B", "Answer: C", "ABC", opts).correct
    assert grade_choice("B", "Answer: D", "ABC", opts).reason == "no answer found"


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  a   Cat ", "cat"),
        ("1,000", "1000"),
        ("**Paris.**", "paris"),
    ],
)
def test_normalize_text(raw, norm):
    assert normalize_text(raw) == norm


def test_grade_exact_uses_answer_line_then_last_line():
    assert grade_exact("Paris", "Thinking about France...\nAnswer: paris").correct
    assert grade_exact(["hot", "warm"], "Let me think.\nWarm.").correct
    assert not grade_exact(["hot", "warm"], "It is warm").correct  # exact match: no substring credit
    assert not grade_exact("Paris", "Answer: Lyon\nParis is the capital though").correct
    assert grade_exact("x", "").reason == "no answer found"
