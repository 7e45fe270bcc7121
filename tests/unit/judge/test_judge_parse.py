"""Strict judge-output parsing on hand-written replies: what parses, and why everything else fails."""

from __future__ import annotations

import json

import pytest

from thrifty.judge.parse import GradeParseError, extract_object, parse_grades, schema_text, validate_grades

N = "0123456789abcdef"


def obj(*items, nonce=N, **extra):
    body = {"grades": [{"answer": a, "rationale": r, "label": lab} for a, r, lab in items], **extra}
    if nonce is not None:
        body = {"nonce": nonce, **body}
    return json.dumps(body)


def sub(text: str) -> str:
    """A hand-written reply with this file's nonce filled in."""
    return text.replace("NONCE", N)


TWO = obj((1, "right", "great"), (2, "wrong", "bad"))

GOOD = [
    (TWO, 2, N, {1: ("great", "right"), 2: ("bad", "wrong")}),
    ("  \n" + TWO + "\n\n", 2, N, {1: ("great", "right"), 2: ("bad", "wrong")}),
    ("```json\n" + TWO + "\n```", 2, N, {1: ("great", "right"), 2: ("bad", "wrong")}),
    ("```\n" + TWO + "\n```", 2, N, {1: ("great", "right"), 2: ("bad", "wrong")}),
    ("```JSON\n" + TWO + "\n```\n", 2, N, {1: ("great", "right"), 2: ("bad", "wrong")}),
    # order of entries and of keys does not matter
    (obj((2, "b", "ok"), (1, "a", "great")), 2, N, {1: ("great", "a"), 2: ("ok", "b")}),
    (sub('{"grades": [{"label": "ok", "answer": 1, "rationale": "x"}], "nonce": "NONCE"}'), 1, N, {1: ("ok", "x")}),
    # labels are trimmed and lower-cased; rationales trimmed
    (obj((1, "  fine  ", " Great ")), 1, N, {1: ("great", "fine")}),
    (obj((1, "", "BAD")), 1, N, {1: ("bad", "")}),
    # no nonce expected → none allowed, none needed
    (obj((1, "r", "ok"), nonce=None), 1, None, {1: ("ok", "r")}),
    # multi-line pretty JSON
    (json.dumps({"nonce": N, "grades": [{"answer": 1, "rationale": "r", "label": "ok"}]}, indent=2), 1, N,
     {1: ("ok", "r")}),
]


@pytest.mark.parametrize(("text", "n", "nonce", "expected"), GOOD)
def test_valid_replies_parse(text, n, nonce, expected):
    assert parse_grades(text, n, nonce) == expected


BAD = [
    ("", 1, N, "empty"),
    ("   \n ", 1, N, "empty"),
    ("great", 1, N, "start with the JSON object"),
    ("Here is my evaluation:\n" + TWO, 2, N, "start with the JSON object"),
    (TWO + "\nI hope this helps!", 2, N, "extra text"),
    (TWO + "\n" + TWO, 2, N, "extra text"),
    ("```json\n" + TWO + "\n```\nThanks", 2, N, "single ```json block"),
    ("```json\n" + TWO + "\n```\n```json\n" + TWO + "\n```", 2, N, "single ```json block"),
    ("```json\n" + TWO, 2, N, "single ```json block"),
    (sub('{"nonce": "NONCE", "grades": [{"answer": 1, "rationale": "r", "label": "great"}'), 1, N, "not valid JSON"),
    ("{'grades': []}", 1, N, "not valid JSON"),
    ("[1, 2]", 1, N, "start with the JSON object"),
    # missing / wrong nonce
    (obj((1, "r", "ok"), nonce=None), 1, N, '"nonce" must be'),
    (obj((1, "r", "ok"), nonce="ffffffffffffffff"), 1, N, '"nonce" must be'),
    # nonce given but not expected is an unknown key
    (obj((1, "r", "ok")), 1, None, "unexpected key"),
    (obj((1, "r", "ok"), verdict="fine"), 1, N, "unexpected key"),
    # grades list shape
    (json.dumps({"nonce": N}), 1, N, '"grades" must be'),
    (json.dumps({"nonce": N, "grades": []}), 1, N, '"grades" must be'),
    (json.dumps({"nonce": N, "grades": {"answer": 1}}), 1, N, '"grades" must be'),
    (json.dumps({"nonce": N, "grades": ["great"]}), 1, N, "must be an object"),
    # entry keys
    (json.dumps({"nonce": N, "grades": [{"answer": 1, "label": "ok"}]}), 1, N, 'missing "rationale"'),
    (json.dumps({"nonce": N, "grades": [{"answer": 1, "rationale": "r", "label": "ok", "score": 3}]}), 1, N,
     'unexpected "score"'),
    (json.dumps({"nonce": N, "grades": [{"id": 1, "rationale": "r", "label": "ok"}]}), 1, N, "wrong keys"),
    # labels
    (obj((1, "r", "good")), 1, N, 'label "good"'),
    (obj((1, "r", "unparsed")), 1, N, 'label "unparsed"'),
    (obj((1, "r", "great|ok|bad")), 1, N, "label"),
    (json.dumps({"nonce": N, "grades": [{"answer": 1, "rationale": "r", "label": 2}]}), 1, N, "label 2"),
    (json.dumps({"nonce": N, "grades": [{"answer": 1, "rationale": "r", "label": None}]}), 1, N, "label null"),
    # answer ids
    (obj((1, "r", "ok")), 2, N, "no grade for answer(s) 2"),
    (obj((1, "r", "ok"), (3, "r", "ok")), 2, N, "out of range"),
    (obj((0, "r", "ok")), 1, N, "out of range"),
    (obj((1, "r", "ok"), (1, "r", "bad")), 1, N, "more than once"),
    (obj(("1", "r", "ok")), 1, N, "must be an integer"),
    (obj((1.0, "r", "ok")), 1, N, "must be an integer"),
    (obj((True, "r", "ok")), 1, N, "must be an integer"),
    # rationale type
    (json.dumps({"nonce": N, "grades": [{"answer": 1, "rationale": ["r"], "label": "ok"}]}), 1, N,
     '"rationale" of answer 1'),
    # duplicate keys, which json.loads would otherwise resolve silently to the last one
    (sub('{"nonce": "NONCE", "grades": [{"answer": 1, "rationale": "r", "label": "bad", "label": "great"}]}'), 1, N,
     "appears twice"),
    (sub('{"nonce": "NONCE", "grades": [], "grades": [{"answer": 1, "rationale": "r", "label": "ok"}]}'), 1, N,
     "appears twice"),
]


@pytest.mark.parametrize(("text", "n", "nonce", "reason"), BAD)
def test_invalid_replies_fail_with_a_reason(text, n, nonce, reason):
    with pytest.raises(GradeParseError) as info:
        parse_grades(text, n, nonce)
    assert reason in info.value.reason


def test_prose_mode_accepts_exactly_one_object_among_text():
    text = "Sure! Here are the grades:\n" + TWO + "\nLet me know if you need more."
    assert parse_grades(text, 2, N, allow_prose=True) == {1: ("great", "right"), 2: ("bad", "wrong")}
    fenced = "Grades:\n```json\n" + TWO + "\n```"
    assert parse_grades(fenced, 2, N, allow_prose=True)[1] == ("great", "right")
    for bad, why in [(TWO + " and " + TWO, "found 2"), ("no json {here", "found 0"), ("", "empty")]:
        with pytest.raises(GradeParseError, match=why):
            parse_grades(bad, 2, N, allow_prose=True)


def test_prose_mode_still_checks_the_schema():
    with pytest.raises(GradeParseError, match='"nonce" must be'):
        parse_grades("Result: " + obj((1, "r", "ok"), nonce="aaaaaaaaaaaaaaaa"), 1, N, allow_prose=True)


def test_extract_object_returns_the_single_value():
    assert extract_object('```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_object('x {"a": {"b": 2}} y', allow_prose=True) == {"a": {"b": 2}}


def test_validate_rejects_non_positive_n():
    with pytest.raises(ValueError):
        validate_grades({"grades": []}, 0)


def test_schema_text_names_every_answer_and_the_nonce():
    text = schema_text(3, N)
    assert f'"nonce": "{N}"' in text and "1 to 3" in text and '"great", "ok", "bad"' in text
    example = text.split("\n")[0].replace(", ...", "").replace('"..."', '"x"')
    assert json.loads(example)["grades"][0]["answer"] == 1
    assert "nonce" not in schema_text(1, None)
