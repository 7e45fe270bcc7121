"""reasoning-gym adapter: determinism, leakage-free splits, config validation, scoring and its label mapping."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("reasoning_gym")

from thrifty.core.errors import ConfigError
from thrifty.tasks.base import Example, Task, split_of
from thrifty.tasks.gym import GYM_FRACTIONS, GymTask, freeze, thaw


@pytest.fixture(scope="module")
def chain() -> GymTask:
    return GymTask("chain_sum")


def test_is_a_task_with_meta(chain):
    assert isinstance(chain, Task)
    ex = chain.examples("test", 3, seed=0)
    assert len(ex) == 3
    for e in ex:
        assert e.meta["task"] == "gym:chain_sum"
        assert e.meta["dataset"] == "chain_sum"
        assert e.meta["category"] == "arithmetic"
        json.dumps(e.meta)  # JSON-safe
        assert e.reference == str(e.meta["gym_entry"]["answer"])
        assert "Answer:" in e.system
        assert e.id.startswith("gym:chain_sum#")


def test_same_split_n_seed_gives_identical_examples(chain):
    a = chain.examples("val", 12, seed=5)
    b = GymTask("chain_sum").examples("val", 12, seed=5)
    assert a == b
    assert chain.examples("val", 5, seed=5) == a[:5]  # prefix property
    assert [e.id for e in chain.examples("val", 12, seed=6)] != [e.id for e in a]


def test_splits_are_disjoint_and_in_their_home_split(chain):
    qs = {s: {e.prompt for e in chain.examples(s, 60, seed=1)} for s in ("train", "val", "test")}
    assert len(qs["train"]) == len(qs["val"]) == len(qs["test"]) == 60  # no duplicates within a split
    assert not qs["train"] & qs["val"] and not qs["train"] & qs["test"] and not qs["val"] & qs["test"]
    for s, questions in qs.items():
        assert all(split_of(q, GYM_FRACTIONS, salt="thrifty-gym") == s for q in questions)


def test_no_leak_across_seeds_even_in_a_tiny_question_space():
    # one-digit sums of two terms: only a few hundred distinct questions, so repeats are common
    tiny = GymTask("chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    train = {e.prompt for seed in (0, 1) for e in tiny.examples("train", 40, seed=seed)}
    test = {e.prompt for seed in (0, 1, 2) for e in tiny.examples("test", 20, seed=seed)}
    assert train and test and not train & test


def test_exhausted_question_space_is_a_clear_error():
    tiny = GymTask("chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    with pytest.raises(ConfigError, match="question space is too small"):
        tiny.examples("test", 400, seed=0)


def test_config_is_applied_and_named_canonically():
    t = GymTask("basic_arithmetic", {"max_terms": 3, "min_terms": 2})
    assert t.name == "gym:basic_arithmetic?max_terms=3&min_terms=2"
    for e in t.examples("train", 10, seed=0):
        assert 2 <= e.meta["gym_entry"]["metadata"]["num_terms"] <= 3


@pytest.mark.parametrize(
    ("name", "config", "match"),
    [
        ("no_such_generator", None, "unknown reasoning-gym task"),
        ("chain_sum", {"bogus": 1}, "unknown option.*bogus.*valid: min_terms"),
        ("chain_sum", {"min_terms": 5, "max_terms": 2}, "invalid config"),
        ("chain_sum", {"seed": 3}, "set by thrifty"),
    ],
)
def test_bad_config_is_one_line_config_error(name, config, match):
    with pytest.raises(ConfigError, match=match) as info:
        GymTask(name, config)
    assert "\n" not in str(info.value)


def test_bad_split_and_n(chain):
    with pytest.raises(ConfigError, match="unknown split"):
        chain.examples("dev", 1)
    with pytest.raises(ConfigError):
        chain.examples("test", -1)
    assert chain.examples("test", 0) == []


def test_score_correct_wrong_missing(chain):
    ex = chain.examples("test", 1, seed=3)[0]
    ref = ex.reference
    good = chain.score(ex, f"I add the numbers step by step: 12 + 30 = 42.\nAnswer: {ref}")
    assert good.correct and good.value == 1.0 and good.parsed == ref and good.reason == "correct"
    wrong = chain.score(ex, f"Answer: {int(ref) + 1}")
    assert not wrong.correct and wrong.value < 0.99
    missing = chain.score(ex, "I am not sure.")
    assert missing == type(missing)(0.0, False, None, "no answer found")


def test_score_uses_tag_boxed_and_number_normalisation(chain):
    ex = chain.examples("test", 1, seed=4)[0]
    ref = ex.reference
    assert chain.score(ex, f"<answer>{ref}</answer>").correct
    assert chain.score(ex, f"so the total is \\boxed{{{ref}}}").correct
    assert chain.score(ex, f"Answer: {ref}.0").correct  # "-4.0" means "-4"
    assert chain.score(ex, f"Answer: {ref} apples").correct  # a unit after a numeric answer


def test_partial_credit_is_not_correct():
    # the base scorer gives len(ref)/len(answer) when the reference is a substring: partial, never correct
    t = GymTask("chain_sum")
    ex = next(e for e in t.examples("test", 30, seed=0) if len(e.reference) >= 2)
    s = t.score(ex, f"Answer: {ex.reference}{ex.reference}")
    assert 0.0 < s.value < 0.99 and not s.correct and s.reason.startswith("partial credit")


def test_format_credit_is_labelled_wrong():
    t = GymTask("gsm_symbolic")  # gives 0.01 for a well-formed wrong number
    ex = t.examples("test", 1, seed=0)[0]
    s = t.score(ex, "Answer: 123456789")
    assert s.value == pytest.approx(0.01) and not s.correct and "format credit" in s.reason


def test_grid_answers_are_extracted_multiline():
    t = GymTask("mini_sudoku")
    ex = t.examples("test", 1, seed=0)[0]
    assert "\n" in ex.reference
    assert t.score(ex, f"Let me fill the grid.\nAnswer:\n{ex.reference}\n\nDone.").correct


def test_score_survives_json_round_trip_of_tuple_metadata():
    t = GymTask("arc_1d")
    ex = t.examples("test", 1, seed=0)[0]
    stored = Example(**json.loads(json.dumps(ex.__dict__)))
    assert t.score(stored, f"Answer: {ex.reference}").correct


def test_freeze_thaw_round_trip():
    obj = {"t": (1, (2, 3)), "s": {3, 1}, "k": {(1, 2): "x", 5: "y"}, "f": float("inf"), "l": [1, "a"]}
    frozen = json.loads(json.dumps(freeze(obj)))
    assert thaw(frozen) == obj


def test_score_without_gym_entry_is_config_error(chain):
    with pytest.raises(ConfigError, match="no gym_entry"):
        chain.score(Example("x", "q", "1"), "Answer: 1")


def test_generator_prints_do_not_leak_to_stdout(capfd):
    GymTask("bf").examples("test", 2, seed=0)  # this generator prints progress dots while it builds items
    assert capfd.readouterr().out == ""
