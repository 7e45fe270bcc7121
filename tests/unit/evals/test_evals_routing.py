"""Routing metrics: a hand-computed 4-query curve, brute-force sweeps, APGR = mean PGR, CPT, cost@quality, AIQ."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.evals import (
    MetricInputError,
    RoutingCurve,
    aiq,
    aiq_curve,
    apgr,
    auc,
    cost_at_quality,
    cpt,
    grade_quality,
    operating_curve,
    oracle_curve,
    pgr,
    random_curve,
    routing_summary,
)

# 4 queries; r_W = 1.5/4 = 0.375, r_S = 3/4 = 0.75. Sorted by score: q1 (0.9), tie {q2, q3} (0.5), q0 (0.1).
QW = [1.0, 0.0, 0.5, 0.0]
QS = [1.0, 1.0, 1.0, 0.0]
SCORE = [0.1, 0.9, 0.5, 0.5]


def test_operating_curve_hand_values():
    cur = operating_curve(QW, QS, SCORE)
    # k=0: r_W; defer q1 (gain 1): 0.375 + 1/4 = 0.625 at c = 1/4;
    # defer the tie {q2 gain 0.5, q3 gain 0}: 0.625 + 0.5/4 = 0.75 at c = 3/4; defer q0 (gain 0): 0.75 at c = 1
    np.testing.assert_allclose(cur.c, [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(cur.r, [0.375, 0.625, 0.75, 0.75])
    np.testing.assert_allclose(cur.threshold, [np.inf, 0.9, 0.5, 0.1])
    np.testing.assert_allclose(cur.cost, cur.c)  # default costs: weak 0, strong 1
    assert (cur.r_weak, cur.r_strong, cur.cost_weak, cur.cost_strong) == (0.375, 0.75, 0.0, 1.0)
    np.testing.assert_allclose(pgr(cur), [0, 2 / 3, 1, 1])


def test_auc_apgr_cpt_hand_values():
    cur = operating_curve(QW, QS, SCORE)
    # trapezoids: 0.25·(0.375+0.625)/2 + 0.5·(0.625+0.75)/2 + 0.25·0.75 = 0.125 + 0.34375 + 0.1875
    assert auc(cur) == pytest.approx(0.65625)
    # APGR = (0.65625 - 0.375) / 0.375
    assert apgr(cur) == pytest.approx(0.75)
    # CPT(0.5): first segment reaching PGR 0.5 is [0, 0.25] (PGR 0 -> 2/3): c = 0.25 · 0.5/(2/3) = 0.1875
    assert cpt(cur, 0.5) == pytest.approx(0.1875)
    # CPT(0.8): segment [0.25, 0.75] (PGR 2/3 -> 1): c = 0.25 + 0.5 · (0.8 - 2/3)/(1/3) = 0.45
    assert cpt(cur, 0.8) == pytest.approx(0.45)
    assert cpt(cur, 1.0) == pytest.approx(0.75)
    assert cpt(cur, 0.0) == 0.0
    assert math.isnan(cpt(cur, 1.1))


def test_cost_at_quality_with_per_query_costs():
    cur = operating_curve(QW, QS, SCORE)
    # q* = 0.95 · 0.75 = 0.7125 reached first at c = 0.75 -> cost 0.75, savings 0.25 (default costs)
    caq = cost_at_quality(cur)
    assert caq.q_target == pytest.approx(0.7125) and caq.cost == pytest.approx(0.75)
    assert caq.savings == pytest.approx(0.25) and caq.c == 0.75 and caq.threshold == 0.5
    # weak costs 1 each; strong 11, 12, 10, 10 (e.g. router overhead added per query). Mean costs per point:
    # k=0: 1; defer q1: 1 + 11/4 = 3.75; defer q2, q3: 3.75 + 18/4 = 8.25; defer q0: 8.25 + 10/4 = 10.75
    cur2 = operating_curve(QW, QS, SCORE, cost_weak=[1, 1, 1, 1], cost_strong=[11, 12, 10, 10])
    np.testing.assert_allclose(cur2.cost, [1, 3.75, 8.25, 10.75])
    caq2 = cost_at_quality(cur2)
    assert caq2.cost == pytest.approx(8.25) and caq2.savings == pytest.approx(1 - 8.25 / 10.75)
    # a target below r_W is met by always-weak; one above every point is NaN
    assert cost_at_quality(cur2, 0.3).cost == 1.0
    assert math.isnan(cost_at_quality(cur2, 0.9).cost)


def test_operating_curve_matches_direct_threshold_sweep():
    rng = np.random.default_rng(0)
    n = 40
    qw, qs = rng.random(n), rng.random(n)
    score = rng.integers(0, 8, n).astype(float)  # ties
    cw, cs = rng.random(n), 1 + rng.random(n)
    cur = operating_curve(qw, qs, score, cw, cs)
    for tau, c, r, cost in zip(cur.threshold, cur.c, cur.r, cur.cost, strict=True):
        defer = score >= tau
        assert c == pytest.approx(defer.mean())
        assert r == pytest.approx(np.where(defer, qs, qw).mean(), abs=1e-12)
        assert cost == pytest.approx(np.where(defer, cs, cw).mean(), abs=1e-12)
    assert len(cur.c) == len(np.unique(score)) + 1


def test_apgr_equals_mean_pgr_over_fine_c_grid():
    rng = np.random.default_rng(1)
    n = 200
    qw = rng.random(n) * 0.6
    qs = np.clip(qw + rng.normal(0.2, 0.2, n), 0, 1)
    score = (qs - qw) + rng.normal(0, 0.2, n)
    cur = operating_curve(qw, qs, score)
    grid = np.linspace(0, 1, 200_001)
    mean_pgr = np.interp(grid, cur.c, pgr(cur)).mean()
    assert apgr(cur) == pytest.approx(mean_pgr, abs=1e-4)
    assert 0.5 < apgr(cur) <= apgr(oracle_curve(qw, qs))


def test_random_and_oracle_curves():
    assert apgr(random_curve(QW, QS)) == pytest.approx(0.5)
    rc = random_curve(QW, QS, n_points=5)
    np.testing.assert_allclose(rc.c, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(rc.r, 0.375 + rc.c * 0.375)
    assert np.isnan(rc.threshold).all()
    # oracle on q_w (0, 0, 1, 1), q_s (1, 1, 1, 0): gains (1, 1, 0, -1) -> r 0.5, 1.0 (c ½), 1.0 (c ¾), 0.75
    oc = oracle_curve([0, 0, 1, 1], [1, 1, 1, 0])
    np.testing.assert_allclose(oc.c, [0, 0.5, 0.75, 1])
    np.testing.assert_allclose(oc.r, [0.5, 1.0, 1.0, 0.75])
    assert cpt(oc, 2.0) == pytest.approx(0.5)  # r = 0.5 + 2·0.25 = 1.0 first reached at c = ½


def test_equal_endpoints_make_gain_metrics_nan():
    cur = oracle_curve([0, 1, 0.5], [1, 0, 0.5])  # r_W = r_S = 0.5
    assert np.isnan(pgr(cur)).all() and math.isnan(apgr(cur)) and math.isnan(cpt(cur, 0.5))
    assert auc(cur) > 0.5  # the curve itself is still defined


def test_cpt_on_hand_made_non_monotone_curve():
    c = np.array([0, 0.2, 0.4, 0.6, 1.0])
    r = np.array([0, 0.6, 0.3, 0.9, 1.0])
    cur = RoutingCurve(np.full(5, np.nan), c, r, c.copy(), 0.0, 1.0, 0.0, 1.0)
    assert cpt(cur, 0.5) == pytest.approx(0.2 * 0.5 / 0.6)  # first segment
    assert cpt(cur, 0.6) == pytest.approx(0.2)
    # 0.7 is not reached on [0, 0.4] (peak 0.6, then a dip); first crossing on [0.4, 0.6]: 0.4 + 0.2·(0.4/0.6)
    assert cpt(cur, 0.7) == pytest.approx(0.4 + 0.2 * 2 / 3)
    assert cpt(cur, 0.95) == pytest.approx(0.6 + 0.4 * 0.5)


def test_aiq_hand_values():
    # concave, increasing: equals the trapezoid integral over [0, 1]
    cur = operating_curve(QW, QS, SCORE)
    assert aiq_curve(cur) == pytest.approx(0.65625)
    # (0.5, 0.3) lies below the chord (0, 0.2)-(1, 0.8) -> hull is the chord; AIQ = (0.2 + 0.8) / 2
    assert aiq([0, 0.5, 1], [0.2, 0.3, 0.8]) == pytest.approx(0.5)
    # peak at 0.5 then worse: held flat -> (0.5+0.9)/2·0.5 + 0.9·0.5 = 0.8; duplicate cost with lower r ignored
    assert aiq([0, 0.5, 1, 0.5], [0.5, 0.9, 0.6, 0.1]) == pytest.approx(0.8)
    # costs on [2, 6]: hull (2, 0.4) -> (6, 0.8): average = 0.6
    assert aiq([6, 2, 4], [0.8, 0.4, 0.5]) == pytest.approx(0.6)
    assert aiq([3, 3], [0.2, 0.7]) == 0.7  # zero-width cost range -> best quality


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 10.0), min_size=2, max_size=20, unique=True))
def test_aiq_of_concave_increasing_curve_is_its_trapezoid_average(xs):
    x = np.sort(np.array(xs))
    if x[-1] - x[0] < 1e-3:
        return
    y = np.sqrt(x)  # concave and increasing: every point is on the hull
    expected = np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0])
    assert aiq(x, y) == pytest.approx(expected, rel=1e-9)


def test_summary_and_grade_quality():
    np.testing.assert_allclose(grade_quality(["bad", "ok", "great"]), [0, 0.5, 1])
    np.testing.assert_allclose(grade_quality([2, 0, 1]), [1, 0, 0.5])
    s = routing_summary(operating_curve(QW, QS, SCORE))
    assert s["apgr"] == pytest.approx(0.75) and s["cpt_50"] == pytest.approx(0.1875)
    assert s["cpt_80"] == pytest.approx(0.45) and s["savings"] == pytest.approx(0.25)
    assert set(s) >= {"cpt_20", "aiq", "auc", "cost_at_q", "q_target", "r_weak", "r_strong"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"q_weak": [0.5, 1.5]}, "q_weak"),
        ({"q_strong": [0.5]}, "differ in length"),
        ({"score": [0.1, float("nan")]}, "NaN"),
        ({"cost_strong": [1.0, -1.0]}, "≥ 0"),
        ({"q_weak": []}, "empty"),
    ],
)
def test_routing_input_errors(kwargs, match):
    args = {"q_weak": [0.5, 0.5], "q_strong": [1.0, 0.0], "score": [0.1, 0.2]} | kwargs
    with pytest.raises(MetricInputError, match=match):
        operating_curve(**args)


def test_random_curve_needs_two_points():
    with pytest.raises(MetricInputError, match="n_points"):
        random_curve(QW, QS, n_points=1)
