"""Cross-fitted routing evaluation: out-of-fold predictions never see their own fold; savings and APGR checked
against hand-computed numbers; the paired APGR difference is zero for a router against itself."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.evals.routing_metrics import method_summary
from thrifty.route.replay.crossfit import apgr_diff_ci, oof_p_good


def test_each_item_is_predicted_once_by_a_router_fitted_without_it():
    y = np.array([1, 0] * 10, dtype=bool)
    seen = []

    def fit_predict(train, test):
        assert not set(train) & set(test)
        seen.extend(test.tolist())
        return np.full(len(test), y[train].mean())

    p = oof_p_good(fit_predict, y, k=5, seed=3)
    assert sorted(seen) == list(range(20)) and np.allclose(p, 0.5)  # folds stratified: 2 good + 2 bad each
    with pytest.raises(ConfigError, match="one p_good"):
        oof_p_good(lambda tr, te: np.full(len(te), 1.5), y)
    with pytest.raises(ConfigError, match="folds"):
        oof_p_good(lambda tr, te: np.zeros(len(te)), y[:3], k=5)


def test_saving_at_95_percent_of_large_quality_by_hand():
    # 4 items; small right on 0 and 1, large right on all. Costs: small answer 1, deferral 3 (1 prefill + 2
    # large), always-large 2 per item.
    qs, ql = np.array([1, 1, 0, 0.0]), np.ones(4)
    ans, dfr, large = np.ones(4), np.full(4, 3.0), np.full(4, 2.0)
    perfect = method_summary(qs, ql, np.array([0.9, 0.8, 0.2, 0.1]), ans, dfr, large)
    # 95 % of 1.0 needs all four right: defer items 2 and 3 -> cost (1 + 1 + 3 + 3) / 4 = 2 -> saving 0
    assert perfect["cost_at_target"] == pytest.approx(2.0) and perfect["saving_at_target"] == pytest.approx(0.0)
    assert perfect["defer_at_target"] == 0.5 and perfect["auroc_bad"] == 1.0 and perfect["apgr"] > 0.7
    cheap = method_summary(qs, ql, np.array([0.9, 0.8, 0.2, 0.1]), ans, np.full(4, 2.0), large)
    assert cheap["saving_at_target"] == pytest.approx(1 - 1.5 / 2.0)  # deferral without the prefill
    oracle = method_summary(qs, ql, None, ans, np.full(4, 2.0), large)
    assert oracle["saving_at_target"] == pytest.approx(0.25) and np.isnan(oracle["auroc_bad"])
    backwards = method_summary(qs, ql, np.array([0.1, 0.2, 0.8, 0.9]), ans, dfr, large)
    assert backwards["apgr"] < 0.5 and backwards["auroc_bad"] == 0.0


def test_paired_apgr_difference_of_a_router_with_itself_is_zero():
    rng = np.random.default_rng(0)
    qs, ql = (rng.random(40) < 0.5).astype(float), np.ones(40)
    good, noise = np.where(qs > 0, 0.8, 0.2) + 0.01 * rng.random(40), rng.random(40)
    same = apgr_diff_ci(qs, ql, good, good, n_boot=50)
    assert (same.point, same.lo, same.hi) == (0.0, 0.0, 0.0)
    better = apgr_diff_ci(qs, ql, good, noise, n_boot=200)
    assert better.point > 0.1 and better.lo > 0  # a perfect signal (APGR ~0.7) against noise (~0.5)
