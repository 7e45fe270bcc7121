"""Countdown: the safe evaluator, d1's 0 / 0.1 / 1 reward by hand, solvable seeded problems, no leakage."""

from __future__ import annotations

from fractions import Fraction

import pytest

from thrifty.core.errors import ConfigError
from thrifty.dlm import countdown
from thrifty.dlm.countdown import Countdown, evaluate, parse_prompt, reward
from thrifty.dlm.leakage import split_of
from thrifty.dlm.sft import DlmSFTConfig, train_sft
from thrifty.dlm.tasks import get_task


def test_evaluator_follows_precedence_and_rejects_what_it_cannot_parse():
    assert evaluate("(3+5)*2") == 16 and evaluate("3+5*2") == 13 and evaluate("10/4") == Fraction(5, 2)
    assert evaluate(" 2 * -3 ") == -6 and evaluate("8-3-2") == 3 and evaluate("2.5*2") == 5
    for bad in ("", "3+", "(3", "3)", "1/0", "2/(5-5)", "3 4", "*3", "2**3", "()", "1e5", "abs(3)"):
        assert evaluate(bad) is None, bad


def test_reward_zero_point_one_and_one():
    nums = [3, 5, 2]
    assert reward(nums, 16, "(3+5)*2") == 1.0 and reward(nums, 16, " 2 * ( 5 + 3 ) ") == 1.0
    assert reward([1, 3, 3], 9, "3/(1/3)") == 1.0  # fractional intermediates are fine
    assert reward(nums, 16, "") == 0.0 and reward(nums, 16, "   ") == 0.0  # no expression
    assert reward(nums, 16, "(3+5),2") == 0.0 and reward(nums, 16, "x=3+5+2") == 0.0  # not an expression
    assert reward(nums, 16, "3+5") == 0.1  # 2 unused
    assert reward(nums, 16, "3+5*2*2") == 0.1  # 2 used twice
    assert reward(nums, 16, "(3+5)+2") == 0.1  # wrong value
    assert reward(nums, 16, "(3+5)2") == 0.1  # does not parse
    assert reward([2, 5, 5], 1, "2/(5-5)") == 0.1  # division by zero


def test_malicious_text_scores_zero_without_being_evaluated(monkeypatch):
    def explode(expr):
        raise AssertionError(f"evaluated {expr!r}")

    monkeypatch.setattr(countdown, "evaluate", explode)
    for text in ("__import__('os').system('true')", "3+5*2 or exit()", "[3]*5+2"):
        assert reward([3, 5, 2], 13, text) == 0.0


@pytest.mark.parametrize("name", ["countdown3", "countdown4"])
def test_problems_are_solvable_distinct_seeded_and_never_cross_the_split(name):
    task = get_task(name)
    train, test = task.examples("train", 1500, seed=0), task.examples("test", 400, seed=0)
    keys = {split: [task.key(*parse_prompt(ex.prompt)) for ex in exs] for split, exs in (("train", train),
                                                                                        ("test", test))}
    assert not set(keys["train"]) & set(keys["test"])
    assert len(set(keys["train"])) == 1500 and all(split_of(k, countdown.TEST_SHARE) == "test" for k in keys["test"])
    for ex in train + test:
        numbers, target = parse_prompt(ex.prompt)
        assert len(numbers) == task.n_numbers and 1 <= target <= 100 and all(1 <= x <= 50 for x in numbers)
        assert evaluate(ex.answer) == target and task.reward(ex, ex.answer) == 1.0
        assert len(ex.prompt) <= task.prompt_len and len(ex.answer) <= task.answer_len
        ids = task.answer_ids(ex)
        assert task.decode(ids) == ex.answer and ids[len(ex.answer):] == [task.vocab.eos_id] * (
            task.answer_len - len(ex.answer))
    assert task.examples("test", 5, seed=2) == task.examples("test", 5, seed=2) != task.examples("test", 5, seed=3)


def test_impossible_requests_fail_clearly():
    with pytest.raises(ConfigError, match="3 or 4 numbers"):
        Countdown(n_numbers=5)
    with pytest.raises(ConfigError, match="could not draw"):
        Countdown(3, max_number=2, max_target=1).examples("train", 50)
    with pytest.raises(ConfigError, match="splits"):
        get_task("countdown3").examples("dev", 1)


def test_sft_runs_on_countdown(tmp_path):
    res = train_sft(DlmSFTConfig(task="countdown4", run_dir=str(tmp_path), steps=2, d_model=16, n_layers=1,
                                 n_heads=2, d_ff=32, n_train=8, n_eval=2, batch_size=4, eval_every=1000),
                    progress=False)
    assert res["step"] == 2 and 0.0 <= res["reward"] <= 1.0 and res["nfe"] == 16.0
