"""Policies: two-way and three-way decisions, calibrators, parse failures, ladders, dict round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.route.decide.calibrators import apply_temperature, fit_isotonic
from thrifty.route.decide.policy import ANSWER, DEFER, REPAIR, Calibrator, Ladder, Policy
from thrifty.route.predictors.base import Prediction


def _pred(great, ok, bad, parsed=True):
    return Prediction(great, ok, bad, parsed=parsed)


def test_two_way_thresholds_p_good_not_argmax():
    policy = Policy(tau_good=0.6)
    assert policy.decide(_pred(0.3, 0.35, 0.35)) == ANSWER  # argmax is a tie, p_good 0.65 >= 0.6
    assert policy.decide(_pred(0.1, 0.45, 0.45)) == DEFER  # p_good 0.55
    assert policy.decide(_pred(0.6, 0.0, 0.4)) == ANSWER  # exactly at the threshold answers
    assert policy.decide(_pred(0.9, 0.1, 0.0, parsed=False)) == DEFER  # unreadable always defers
    assert Policy(tau_good=math.inf).decide(_pred(1.0, 0.0, 0.0)) == DEFER


def test_expected_grade_signal_counts_ok_as_half():
    policy = Policy(tau_good=0.6, signal="expected_grade")
    assert policy.decide(_pred(0.4, 0.4, 0.2)) == ANSWER  # 0.5 * 0.4 + 0.4 = 0.6: at the threshold answers
    assert policy.decide(_pred(0.1, 0.9, 0.0)) == DEFER  # p_good 1.0 but expected grade 0.55
    assert Policy(tau_good=0.6).decide(_pred(0.1, 0.9, 0.0)) == ANSWER  # the p_good signal answers it
    assert policy.score([[0.2, 0.4, 0.4]]).tolist() == pytest.approx([0.6])
    assert Policy.from_dict(policy.to_dict()) == policy and "signal" not in Policy(0.6).to_dict()
    with pytest.raises(ConfigError, match="signal"):
        Policy(0.5, signal="argmax")


def test_three_way_answers_repairs_or_defers():
    policy = Policy(tau_good=0.5, tau_great=0.7)
    assert policy.decide(_pred(0.8, 0.1, 0.1)) == ANSWER
    assert policy.decide(_pred(0.3, 0.4, 0.3)) == REPAIR
    assert policy.decide(_pred(0.1, 0.3, 0.6)) == DEFER
    assert policy.decide_probs([[0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [0.6, 0.3, 0.1]]) == [ANSWER, REPAIR, DEFER]


def test_calibrators_change_decisions_as_computed_by_hand():
    p = np.array([0.45, 0.1, 0.45])  # bad, ok, great: p_good 0.55
    temp = Calibrator("temperature", temperature=0.5)
    sharp = apply_temperature(p[None, :], 0.5)[0]
    good, great = temp.calibrate(p)
    assert good[0] == pytest.approx(sharp[1] + sharp[2]) and great[0] == pytest.approx(sharp[2])
    iso = fit_isotonic([0.2, 0.55, 0.9], [0, 0, 1])
    cal = Calibrator("isotonic", iso_x=iso.x, iso_y=iso.y)
    assert cal.calibrate(p)[0][0] == pytest.approx(0.0, abs=1e-8)  # never good on the calibration set (+ tie-break)
    assert Policy(0.5).decide_probs([p]) == [ANSWER]
    assert Policy(0.5, calibrator=cal).decide_probs([p]) == [DEFER]
    with pytest.raises(ConfigError, match="calibration"):
        Calibrator("platt")
    with pytest.raises(ConfigError, match="knots"):
        Calibrator("isotonic")


def test_policies_round_trip_through_dicts():
    iso = fit_isotonic([0.1, 0.5, 0.9], [0, 1, 1])
    for policy in (Policy(0.4), Policy(0.3, 0.8, Calibrator("temperature", 2.0)),
                   Policy(0.5, calibrator=Calibrator("isotonic", iso_x=iso.x, iso_y=iso.y))):
        assert Policy.from_dict(policy.to_dict()) == policy
    with pytest.raises(ConfigError, match="tau_good"):
        Policy.from_dict({})
    with pytest.raises(ConfigError, match="tau_good"):
        Policy(1.5)


def test_ladder_checks_its_shape():
    with pytest.raises(ConfigError, match="policies"):
        Ladder(("s", "m", "l"), (Policy(0.5),))
    with pytest.raises(ConfigError, match="two tiers"):
        Ladder(("s",), ())
    assert Ladder(("s", "m", "l"), (Policy(0.5), Policy(0.7)), max_tries=1).tries == 1


def test_isotonic_calibration_keeps_the_raw_order_inside_its_flat_blocks():
    iso = fit_isotonic([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 1, 0, 1, 0, 1])
    raw = np.array([[1 - g, g, 0.0] for g in (0.22, 0.25, 0.28)])  # all inside one fitted block
    good, _ = Calibrator("isotonic", iso_x=iso.x, iso_y=iso.y).calibrate(raw)
    assert np.all(np.diff(good) > 0) and np.allclose(good, iso([0.22, 0.25, 0.28]), atol=1e-8)
