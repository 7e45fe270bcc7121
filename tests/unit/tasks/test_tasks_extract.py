"""Answer extraction: each rule of the cascade on hand-written model-like outputs, including traps."""

from __future__ import annotations

import pytest

from thrifty.tasks.extract import (
    extract_answer,
    extract_answer_line,
    extract_boxed,
    extract_choice,
    extract_last_number,
    extract_tagged,
    normalize_number,
    strip_decoration,
)

# ---- rule 1: the task's own tag convention ---------------------------------------------------------------


def test_tag_wins_over_everything_else():
    text = "Answer: 3\n\\boxed{4}\n<answer> 17 </answer> and later 99"
    assert extract_answer(text) == "17"


def test_last_complete_tag_wins_and_custom_tag():
    assert extract_tagged("<answer>1</answer> retry <answer>2</answer>") == "2"
    assert extract_answer("<final>x+1</final> 7", tag="final") == "x+1"


def test_unclosed_tag_only_counts_when_short_single_line():
    assert extract_tagged("thinking...\n<answer> 42") == "42"
    assert extract_tagged("<answer>\nline one\nline two") is None


def test_empty_tag_falls_through_to_next_rule():
    assert extract_answer("<answer></answer>\nAnswer: 5") == "5"


def test_tag_holding_boxed_is_unwrapped():
    assert extract_answer("<answer>$\\boxed{12}$</answer>") == "12"


# ---- rule 2: the answer line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Let me think. 3+4=7, then 7*2=14.\nAnswer: 14", "14"),
        ("**Answer:** 42", "42"),
        ("**Final Answer**: 9.", "9"),
        ("Final answer: -3", "-3"),
        ("The final answer is: 1,250", "1,250"),
        ("answer: `dog`", "dog"),
        ("Answer: $\\frac{1}{2}$", "\\frac{1}{2}"),
        ("#### 72", "72"),
        ("> **Answer: 6**", "6"),
    ],
)
def test_answer_line_variants(text, expected):
    assert extract_answer(text) == expected


def test_last_answer_line_wins_after_self_correction():
    assert extract_answer("Answer: 3\nWait, I made an error. Recheck: 2+3=5.\nFinal answer: 5") == "5"


def test_trap_answer_then_explanation_with_numbers():
    text = "Answer: 42\n\nExplanation: 6 times 7 is 42, and adding 100 gives 142 which is not asked."
    assert extract_answer(text) == "42"


def test_trap_explanation_on_the_same_line_is_cut():
    assert extract_answer("Answer: 42. This is because 6*7 = 42 and 8 more") == "42"
    assert extract_answer("Answer: 17 (since 10 + 7 = 17)") == "17"


def test_lists_and_expressions_are_not_cut():
    assert extract_answer_line("Answer: 2792, edition, how, meanwhile") == "2792, edition, how, meanwhile"
    assert extract_answer_line("Answer: 7.0 - 9.0i") == "7.0 - 9.0i"


def test_heading_then_block_below():
    assert extract_answer("### Final Answer\n\n\\[ \\boxed{12} \\]") == "12"
    assert extract_answer("Answer:\n1 2\n3 4\n\nDone, 9 steps") == "1 2\n3 4"


def test_multiline_answer_takes_the_grid():
    text = "Here it is.\nAnswer: 1 2 3\n4 5 6\n7 8 9\n\nI checked every row."
    assert extract_answer(text) == "1 2 3"
    assert extract_answer(text, multiline=True) == "1 2 3\n4 5 6\n7 8 9"
    fenced = "Answer:\n```\n0 1\n1 0\n```\nthat's it"
    assert extract_answer(fenced, multiline=True) == "0 1\n1 0"


def test_trailing_period_kept_on_request():
    text = "Answer: It was Mr. Smith."
    assert extract_answer(text) == "It was Mr. Smith"
    assert extract_answer(text, strip_period=False) == "It was Mr. Smith."


def test_words_containing_answer_are_not_answer_lines():
    assert extract_answer_line("I will answer this later: 3 apples") is None
    assert extract_answer_line("The answers: 1 and 2") is None


# ---- rule 3: boxed -------------------------------------------------------------------------------------


def test_boxed_nested_braces_last_one_wins():
    text = "first \\boxed{1}, then x = \\boxed{\\frac{\\sqrt{3}}{2}} and 99 bottles"
    assert extract_answer(text) == "\\frac{\\sqrt{3}}{2}"
    assert extract_boxed("\\fbox{7}") == "7"


def test_unbalanced_boxed_is_ignored():
    assert extract_boxed("\\boxed{\\frac{1}{2}") is None
    assert extract_answer("\\boxed{\\frac{1}{2} so 5") == "5"


# ---- rule 4/5: "answer is N" and last number -----------------------------------------------------------


def test_answer_is_phrase_beats_later_numbers():
    assert extract_answer("Thus the answer is 56, since 7*8=56 ... check 3 times") == "56"


def test_answer_is_followed_by_word_is_not_an_answer():
    assert extract_answer("I wonder if the answer is correct. It gives 12") == "12"


def test_last_number_fallback_and_trap():
    assert extract_answer("The result is 12 - 15 = -3") == "-3"
    # trap: a number in the closing sentence beats the real one (documented limit of the fallback)
    assert extract_answer("So she has 25 rolls left after 2 days") == "2"
    assert extract_answer("no digits at all") is None
    assert extract_answer("no digits 5", numeric_fallback=False) is None


def test_last_number_shapes():
    assert extract_last_number("a total of 1,234 apples") == "1,234"
    assert extract_last_number("ratio 3/4") == "3/4"
    assert extract_last_number("x2 and v3.5") is None
    assert extract_last_number("temperature −7 today") == "-7"
    assert extract_last_number("5-3") == "3"


def test_empty_input():
    assert extract_answer("") is None
    assert extract_choice("") is None


# ---- helpers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canon"),
    [
        ("1,234.50", "1234.5"),
        ("+7", "7"),
        ("−3", "-3"),
        ("007", "7"),
        ("-0.0", "0"),
        (".5", "0.5"),
        ("4.0", "4"),
    ],
)
def test_normalize_number(raw, canon):
    assert normalize_number(raw) == canon


@pytest.mark.parametrize("raw", ["1/2", "12 apples", "1,23", "", "x"])
def test_normalize_number_rejects_non_numbers(raw):
    assert normalize_number(raw) is None


def test_strip_decoration():
    assert strip_decoration("**$\\boxed{5}$**.") == "5"
    assert strip_decoration("```python\nprint(1)\n```") == "print(1)"
    assert strip_decoration("...") == "..."


# ---- multiple choice -----------------------------------------------------------------------------------

OPTIONS = ["London", "Paris", "Rome", "Oslo"]


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Answer: B", "B"),
        ("<answer>(c)</answer>", "C"),
        ("<answer>C</answer>", "C"),
        ("The answer is (C).", "C"),
        ("**Answer: (D) Oslo**", "D"),
        ("\\boxed{A}", "A"),
        ("Answer: Paris", "B"),
        ("Final answer: option b", "B"),
        ("Answer: a farmer would pick B", None),
        ("Final answer: option B", "B"),
        ("A", "A"),
        ("Let us see (A) 1 (B) 2 (C) 3\nSo I pick\n(B)", "B"),
        ("I think it is likely correct.", None),
    ],
)
def test_choice_cascade(text, letter):
    assert extract_choice(text, options=OPTIONS) == letter


def test_choice_trap_options_discussed_in_reasoning():
    text = "Option A is wrong because... Option B is also wrong.\nThe correct option is C"
    assert extract_choice(text) == "C"


def test_choice_trap_article_a_in_reasoning_is_not_a_choice():
    text = "A farmer has two fields.\nThe best choice is the larger field."
    assert extract_choice(text) is None


def test_choice_letter_outside_range_is_rejected():
    assert extract_choice("Answer: E") is None
    assert extract_choice("Answer: E", letters="ABCDE") == "E"
    assert extract_choice("Answer: J", letters="ABCDEFGHIJ") == "J"


def test_choice_answer_line_with_unknown_text_does_not_fall_back_to_reasoning_letters():
    assert extract_choice("(A) is tempting.\nAnswer: Berlin", options=OPTIONS) is None
