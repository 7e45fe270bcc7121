"""The built-in rewards on real strings: math-verify's symbolic match, exact match and whole-token containment,
each reading the rows' `answer` column and loadable by its bare name."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.dlm.rewards import RewardSum, contains_answer, exact_answer, load_callable, math_answer


def test_math_answer_compares_final_answers_symbolically():
    completions = [
        "Natalia sold 48 / 2 = 24 clips in May, so 48 + 24 = 72 in all. The answer is \\boxed{72}.",
        "Half of it: $\\frac{1}{2}$",
        "So the result is \\boxed{0.5}",
        "I get \\boxed{71}",
        "x squared plus one: \\boxed{1 + x^2}",
        "no idea",
        "anything",
    ]
    answers = ["72", "0.5", "\\frac{1}{2}", "72", "x^2+1", "3", None]
    assert math_answer(["q"] * 7, completions, answers) == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, None]


def test_exact_and_contains_answer():
    completions = ["  Paris ", "paris, France", "The answer is 3.", "It is 13", "about 3.5", "Three cats",
                   "x"]
    answers = ["PARIS", "Paris", "3", "3", "3", "three", None]
    assert exact_answer(None, completions, answers) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, None]
    assert contains_answer(None, completions, answers) == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, None]
    assert contains_answer(None, ["a  b c"], ["A b"]) == [1.0]  # runs of whitespace and case are ignored


def test_builtins_load_by_bare_name_and_sum_with_the_answer_column():
    assert load_callable("math_answer") is math_answer
    assert load_callable("thrifty.dlm.rewards:contains_answer") is contains_answer
    total = RewardSum(["math_answer", "contains_answer"], [2.0, 0.5])
    assert total(["q", "q"], ["so \\boxed{4}", "5"], answer=["4", "4"]) == [2.5, 0.0]
    with pytest.raises(ConfigError, match="reads an 'answer' column; the rows have target"):
        RewardSum(["exact_answer"])(["q"], ["4"], target=["4"])
    with pytest.raises(ConfigError, match="module:function"):
        load_callable("not_a_builtin")


def test_code_tests_runs_each_completion_with_its_tests_in_the_sandbox():
    from thrifty.dlm.rewards import code_tests

    tests = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
    completions = [
        "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```",
        "```python\nimport os\ndef add(a, b):\n    os._exit(0)\n```",  # an early clean exit is not a pass
        "def add(a, b): return a + b",
    ]
    got = code_tests(None, completions, tests=[tests, tests, tests, None], entry_point=["add", None, "add", "add"])
    assert got == [1.0, 0.0, 0.0, None]
    assert load_callable("code_tests") is code_tests
    with pytest.raises(ConfigError, match="'tests' column"):
        code_tests(None, ["x"], answer=["1"])
