"""Multi-digit addition and multiplication: reversed answers by hand, per-digit credit, pairs never cross the split."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.dlm.arith import TEST_SHARE, Arith, reward
from thrifty.dlm.leakage import split_of
from thrifty.dlm.sft import DlmSFTConfig, train_sft
from thrifty.dlm.tasks import get_task


def test_answers_are_zero_padded_and_least_significant_digit_first():
    add, mul = get_task("add5"), get_task("mul3")
    assert (add.prompt_len, add.answer_len, mul.prompt_len, mul.answer_len) == (11, 6, 7, 6)
    assert add.answer(48203, 95326) == "925341"  # 143529 reversed
    assert add.answer(10000, 10000) == "000020"  # 020000 reversed
    assert mul.answer(359, 234) == "600480"  # 84006 → 084006 reversed
    assert mul.answer(999, 999) == "100899"  # 998001 reversed


def test_reward_is_the_fraction_of_matching_positions():
    assert reward("925341", "925341") == 1.0
    assert reward("925341", "925340") == pytest.approx(5 / 6)
    assert reward("925341", "92") == pytest.approx(2 / 6)  # missing digits are wrong
    assert reward("925341", "143529") == 0.0  # the right number in the wrong order
    assert reward("925341", "9253411111") == 1.0 and reward("925341", "") == 0.0


@pytest.mark.parametrize("name", ["add5", "mul3"])
def test_pairs_are_distinct_seeded_and_never_cross_the_split(name):
    task = get_task(name)
    train, test = task.examples("train", 3000, seed=0), task.examples("test", 800, seed=0)
    pairs = {split: {(min(e.meta["a"], e.meta["b"]), max(e.meta["a"], e.meta["b"])) for e in exs}
             for split, exs in (("train", train), ("test", test))}
    assert len(pairs["train"]) == 3000 and len(pairs["test"]) == 800 and not pairs["train"] & pairs["test"]
    for a, b in list(pairs["test"])[:50]:  # a+b and b+a share a split
        assert split_of(f"{task.name}:{a},{b}", TEST_SHARE) == "test"
    for ex in train + test:
        a, b = ex.meta["a"], ex.meta["b"]
        value = a + b if task.op == "+" else a * b
        assert ex.prompt == f"{a}{task.op}{b}" and int(ex.answer[::-1]) == value and task.reward(ex, ex.answer) == 1.0
        assert len(str(a)) == len(str(b)) == task.digits
        assert len(task.prompt_ids(ex)) == task.prompt_len + 1 and task.decode(task.answer_ids(ex)) == ex.answer
    assert task.examples("train", 4, seed=1) == task.examples("train", 4, seed=1) != task.examples("train", 4, seed=2)


def test_impossible_requests_fail_clearly():
    with pytest.raises(ConfigError, match="op"):
        Arith(op="-")
    with pytest.raises(ConfigError, match="digits"):
        Arith(digits=0)
    assert len(Arith(digits=1).examples("train", 18)) == 18
    with pytest.raises(ConfigError, match="operand pairs"):
        Arith(digits=1).examples("train", 30)  # 45 unordered pairs of one-digit numbers in all


def test_sft_runs_on_arithmetic(tmp_path):
    res = train_sft(DlmSFTConfig(task="mul3", run_dir=str(tmp_path), steps=2, d_model=16, n_layers=1, n_heads=2,
                                 d_ff=32, n_train=8, n_eval=2, batch_size=4, eval_every=1000), progress=False)
    assert res["step"] == 2 and 0.0 <= res["reward"] <= 1.0 and res["nfe"] == 6.0
