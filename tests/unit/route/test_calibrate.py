"""Calibration and thresholds against hand-computed values and brute force on tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.route.decide.calibrators import (
    apply_temperature,
    bernstein_upper,
    candidate_thresholds,
    fit_isotonic,
    fit_temperature,
    routed_quality,
    temperature_nll,
    threshold_for_budget,
    threshold_for_defer_rate,
    threshold_for_quality,
)


def test_temperature_by_hand():
    p = np.array([[0.64, 0.32, 0.04]])
    assert apply_temperature(p, 1.0) == pytest.approx(p)
    root = np.array([0.8, math.sqrt(0.32), 0.2])  # T = 2: square roots, renormalised
    assert apply_temperature(p, 2.0)[0] == pytest.approx(root / root.sum())
    sharp = apply_temperature(p, 0.5)[0]  # T = 1/2: squares, renormalised
    sq = np.array([0.64, 0.32, 0.04]) ** 2
    assert sharp == pytest.approx(sq / sq.sum())
    assert temperature_nll(p, [0], 1.0) == pytest.approx(-math.log(0.64))
    with pytest.raises(ConfigError, match="temperature"):
        apply_temperature(p, 0.0)
    with pytest.raises(ConfigError, match="sum"):
        apply_temperature([[0.5, 0.5, 0.5]], 1.0)


def test_fit_temperature_matches_a_brute_force_grid_and_softens_overconfidence():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    logits = rng.standard_normal((60, 3)) + 1.5 * np.eye(3)[y]  # informative but noisy
    p = np.exp(3 * logits)  # then made over-confident
    p /= p.sum(1, keepdims=True)
    t = fit_temperature(p, y)
    grid = np.exp(np.linspace(math.log(0.05), math.log(50), 4001))
    brute = grid[np.argmin([temperature_nll(p, y, g) for g in grid])]
    assert t == pytest.approx(brute, rel=3e-3) and t > 1.5
    assert temperature_nll(p, y, t) <= temperature_nll(p, y, 1.0)
    with pytest.raises(ConfigError, match="labels"):
        fit_temperature(p, y[:-1])


def test_isotonic_pav_by_hand_with_ties_and_interpolation():
    iso = fit_isotonic([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    assert iso([0.1, 0.2, 0.3, 0.4]) == pytest.approx([0.0, 0.5, 0.5, 1.0])  # 0.2 and 0.3 pooled
    assert iso([0.0, 0.35, 0.9]) == pytest.approx([0.0, 0.75, 1.0])  # flat outside, linear between blocks
    tied = fit_isotonic([0.5, 0.5, 0.5, 0.9], [1, 0, 0, 1])
    assert tied([0.5, 0.9]) == pytest.approx([1 / 3, 1.0])
    down = fit_isotonic([0.1, 0.2, 0.3], [1, 1, 0])  # a decreasing trend pools into one block
    assert down([0.1, 0.3]) == pytest.approx([2 / 3, 2 / 3])
    with pytest.raises(ConfigError):
        fit_isotonic([0.1, 0.2], [0, 2])


def test_isotonic_is_the_least_squares_monotone_fit_by_brute_force():
    rng = np.random.default_rng(3)
    s = rng.random(7)
    g = rng.integers(0, 2, 7).astype(float)
    order = np.argsort(s)
    fitted = fit_isotonic(s, g)(s[order])
    best = math.inf  # brute force over monotone fits with values on a 1/12 grid (PAV means are multiples of 1/k)
    levels = np.arange(13) / 12
    import itertools

    for combo in itertools.combinations_with_replacement(levels, 7):
        best = min(best, float(np.sum((np.array(combo) - g[order]) ** 2)))
    assert float(np.sum((fitted - g[order]) ** 2)) <= best + 1e-9
    assert np.all(np.diff(fitted) >= -1e-12)


def test_threshold_for_defer_rate_is_the_quantile_rule():
    s = [0.5, 0.1, 0.4, 0.2, 0.3]
    assert threshold_for_defer_rate(s, 0.4) == 0.3  # defers 0.1 and 0.2
    assert threshold_for_defer_rate(s, 0.0) == 0.1  # defers nothing
    assert threshold_for_defer_rate(s, 1.0) == math.inf
    assert threshold_for_defer_rate([0.2, 0.2, 0.2, 0.9], 0.5) == 0.2  # ties: never defer more than asked
    with pytest.raises(ConfigError):
        threshold_for_defer_rate(s, 1.5)


def test_bernstein_upper_by_hand():
    x = np.array([0.0, 1.0, 0.0, 1.0])
    lt = math.log(2 / 0.1)
    want = 0.5 + math.sqrt(2 * (1 / 3) * lt / 4) + 7 * 1.0 * lt / (3 * 3)
    assert bernstein_upper(x, 0.1, 1.0) == pytest.approx(want)
    assert bernstein_upper([0.3], 0.1, 1.0) == math.inf


def _brute_quality(s, qs, ql, target, delta):
    last = None
    for tau in candidate_thresholds(s):
        r = routed_quality(s, tau, qs, ql)
        if bernstein_upper(target * ql - r, delta, 2.0) > 0:
            break
        last = tau
    return last


def test_threshold_for_quality_matches_fixed_sequence_brute_force():
    rng = np.random.default_rng(5)
    n = 400
    ql = (rng.random(n) < 0.9).astype(float)
    good = rng.random(n) < 0.6
    qs = good.astype(float)
    s = np.clip(0.5 * good + 0.5 * rng.random(n), 0, 1)  # an informative score
    res = threshold_for_quality(s, qs, ql, target=0.8, delta=0.1)
    assert res.certified and res.tau == _brute_quality(s, qs, ql, 0.8, 0.1)
    assert res.bound <= 0 and 0 < res.defer_rate < 1
    assert res.quality == pytest.approx(routed_quality(s, res.tau, qs, ql).mean())
    assert res.quality >= 0.8 * res.quality_large
    strict = threshold_for_quality(s, qs, ql, target=0.8, delta=0.01)
    assert strict.defer_rate >= res.defer_rate  # more confidence, fewer answers risked


def test_threshold_for_quality_refuses_to_certify_on_too_few_queries():
    res = threshold_for_quality([0.9, 0.1, 0.5], [1, 0, 1], [1, 1, 1], target=0.95, delta=0.1)
    assert not res.certified and res.tau == math.inf and res.defer_rate == 1.0 and res.bound > 0
    with pytest.raises(ConfigError):
        threshold_for_quality([0.5], [1], [2])


def test_threshold_for_budget_by_brute_force():
    s = np.array([0.9, 0.2, 0.6, 0.4])
    ca = np.array([1.0, 1.0, 1.0, 1.0])  # answering: the small model's cost
    cd = np.array([5.0, 5.0, 5.0, 5.0])  # deferring: prediction + the large model
    qs, ql = np.array([1, 0, 1, 0.0]), np.array([1, 1, 1, 1.0])
    # budget 3: at most two deferrals; the best are the two wrong answers (s = 0.2, 0.4) -> tau 0.6
    assert threshold_for_budget(s, ca, cd, 3.0, qs, ql) == 0.6
    assert threshold_for_budget(s, ca, cd, 100.0, qs, ql) == 0.6  # deferring more buys no quality
    assert threshold_for_budget(s, ca, cd, 100.0) == math.inf  # no qualities: defer as much as affordable
    assert threshold_for_budget(s, ca, cd, 1.0, qs, ql) == 0.2
    with pytest.raises(ConfigError, match="budget"):
        threshold_for_budget(s, ca, cd, 0.5)
