"""Bootstrap CIs: the documented algorithm replayed by hand, paired resampling, NaN replicates, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.evals import BootstrapCI, MetricInputError, accuracy, bootstrap_ci, overconfidence_rate


def test_matches_manual_replay_of_the_algorithm():
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.05, 0.6])
    ci = bootstrap_ci(np.mean, x, n_boot=300, alpha=0.1, rng=np.random.default_rng(7))
    # same seed, same draws: n indices per replicate, then the 5% and 95% linear quantiles
    rng = np.random.default_rng(7)
    reps = [x[rng.integers(0, x.size, size=x.size)].mean() for _ in range(300)]
    lo, hi = np.quantile(reps, [0.05, 0.95])
    point, lo_ci, hi_ci = ci  # unpacks as a triple
    assert point == pytest.approx(x.mean()) and lo_ci == pytest.approx(lo) and hi_ci == pytest.approx(hi)
    assert isinstance(ci, BootstrapCI) and ci.n_boot == 300 and ci.n_nan == 0 and ci.alpha == 0.1


def test_same_seed_same_interval_and_different_seed_differs():
    x = np.random.default_rng(0).random(50)
    a = bootstrap_ci(np.mean, x, n_boot=200, rng=np.random.default_rng(1))
    b = bootstrap_ci(np.mean, x, n_boot=200, rng=np.random.default_rng(1))
    c = bootstrap_ci(np.mean, x, n_boot=200, rng=np.random.default_rng(2))
    assert tuple(a) == tuple(b) and tuple(a) != tuple(c)


def test_resampling_is_paired_across_arrays():
    # predictions equal labels everywhere: every paired resample has accuracy 1 (an unpaired one would not)
    y = np.array([0, 1, 2, 2, 1, 0, 2, 1])
    ci = bootstrap_ci(accuracy, y, y.copy(), n_boot=200, rng=np.random.default_rng(0))
    assert tuple(ci) == (1.0, 1.0, 1.0)
    # paired rows of a 2-D array travel together with the labels
    probs = np.eye(3)[y]
    ci2 = bootstrap_ci(lambda p, t: float(np.mean(p.argmax(1) == t)), probs, y, n_boot=100,
                       rng=np.random.default_rng(0))
    assert tuple(ci2) == (1.0, 1.0, 1.0)


def test_nan_replicates_are_dropped_and_counted():
    # one bad label in 20: P(no bad in a resample) = (19/20)^20 ≈ 0.36 -> those replicates are NaN
    y = np.array([0] + [2] * 19)
    p = np.array([2] + [2] * 19)
    ci = bootstrap_ci(overconfidence_rate, y, p, n_boot=500, rng=np.random.default_rng(3))
    rng = np.random.default_rng(3)
    expected_nan = sum(not np.any(y[rng.integers(0, 20, size=20)] == 0) for _ in range(500))
    assert ci.n_nan == expected_nan and 100 < ci.n_nan < 260
    assert (ci.point, ci.lo, ci.hi) == (1.0, 1.0, 1.0)  # every finite replicate is 1


def test_all_nan_replicates_give_nan_interval():
    ci = bootstrap_ci(lambda a: float("nan"), np.arange(5), n_boot=20, rng=np.random.default_rng(0))
    assert math.isnan(ci.point) and math.isnan(ci.lo) and math.isnan(ci.hi) and ci.n_nan == 20


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.arange(3),), {"rng": None}, "Generator"),
        ((np.arange(3),), {"rng": np.random.RandomState(0)}, "Generator"),
        ((np.arange(3),), {"n_boot": 0}, "n_boot"),
        ((np.arange(3),), {"alpha": 1.0}, "alpha"),
        ((np.arange(3), np.arange(4)), {}, "differ in length"),
        ((np.array([]),), {}, "empty"),
        ((), {}, "at least one array"),
    ],
)
def test_input_errors(args, kwargs, match):
    kw = {"rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(MetricInputError, match=match):
        bootstrap_ci(np.mean, *args, **kw)


def test_metric_must_return_a_scalar():
    with pytest.raises(MetricInputError, match="one number"):
        bootstrap_ci(lambda a: a, np.arange(3), n_boot=2, rng=np.random.default_rng(0))


def test_rng_is_required_keyword():
    with pytest.raises(TypeError):
        bootstrap_ci(np.mean, np.arange(3))  # no default generator, no global RNG


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=5, max_size=60), st.integers(0, 2**31))
def test_ci_contains_point_for_the_mean(xs, seed):
    x = np.array(xs)
    point, lo, hi = bootstrap_ci(np.mean, x, n_boot=200, rng=np.random.default_rng(seed))
    assert lo - 1e-9 <= point <= hi + 1e-9
