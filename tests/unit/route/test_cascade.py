"""The two-stage cascade: stages at the band edges, its one score per query, and its per-stage prices."""

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.route.decide.cascade import (
    ANSWER_NOW,
    DEFER_NOW,
    VERIFY,
    Band,
    band_from_quantiles,
    cascade_costs,
    cascade_scores,
    decide,
    in_band,
)


def test_band_edges_lo_is_verified_and_hi_is_answered():
    band = Band(0.3, 0.7)
    assert band.stage(0.2999) == DEFER_NOW
    assert band.stage(0.3) == VERIFY
    assert band.stage(0.6999) == VERIFY
    assert band.stage(0.7) == ANSWER_NOW
    assert in_band([0.2999, 0.3, 0.6999, 0.7], band).tolist() == [False, True, True, False]


def test_empty_band_never_verifies_and_bad_bands_are_refused():
    band = Band(0.5, 0.5)
    assert [band.stage(p) for p in (0.0, 0.4999, 0.5, 1.0)] == [DEFER_NOW, DEFER_NOW, ANSWER_NOW, ANSWER_NOW]
    with pytest.raises(ConfigError):
        Band(0.7, 0.3)
    with pytest.raises(ConfigError):
        Band(float("nan"), 0.3)


def test_decide_calls_the_verifier_only_in_the_band():
    calls = []

    def verify():
        calls.append(1)
        return 0.8

    band = Band(0.3, 0.7)
    assert decide(0.1, band, verify, 0.5) == ("defer", None)
    assert decide(0.9, band, verify, 0.5) == ("answer", None)
    assert calls == []
    assert decide(0.5, band, verify, 0.5) == ("answer", 0.8)
    assert decide(0.5, band, verify, 0.8) == ("answer", 0.8)  # p2 at the threshold keeps the answer
    assert decide(0.5, band, verify, 0.81) == ("defer", 0.8)
    assert len(calls) == 3


def test_scores_take_the_verifier_in_the_band_only():
    p1 = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    p2 = np.array([0.9, 0.0, 1.0, 0.2, 0.2])
    assert cascade_scores(p1, p2, Band(0.3, 0.7)).tolist() == [0.1, 0.0, 1.0, 0.7, 0.9]
    with pytest.raises(ConfigError):
        cascade_scores(p1, p2[:3], Band(0.3, 0.7))


def test_a_threshold_inside_the_band_reproduces_the_three_way_rule():
    rng = np.random.default_rng(0)
    p1, p2 = rng.random(200), rng.random(200)
    band, t = Band(0.25, 0.75), 0.6
    s = cascade_scores(p1, p2, band)
    rule = [decide(a, band, lambda b=b: b, t)[0] for a, b in zip(p1, p2, strict=True)]
    assert [("answer" if v >= t else "defer") for v in s] == rule


def test_costs_by_stage_hand_computed():
    p1 = np.array([0.1, 0.5, 0.9])
    ans, dfr = cascade_costs(p1, Band(0.3, 0.7), answer_now=1.0, defer_now=[3.2, 3.2, 3.2], answer_verified=1.1,
                             defer_verified=np.array([4.1, 4.3, 4.1]))
    assert ans.tolist() == [1.0, 1.1, 1.0]
    assert dfr.tolist() == [3.2, 4.3, 3.2]


def test_band_from_quantiles():
    p = np.linspace(0, 1, 101)
    b = band_from_quantiles(p, 0.5)
    assert b.lo == pytest.approx(0.25) and b.hi == pytest.approx(0.75)
    assert in_band(p, b).sum() == 50
    assert in_band(p, band_from_quantiles(p, 0.0)).sum() == 0
    assert in_band(p, band_from_quantiles(p, 1.0)).all()
    with pytest.raises(ConfigError):
        band_from_quantiles(p, 1.5)
