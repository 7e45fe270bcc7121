"""Cross-fitted routing evaluation: every item is a test item once, every router priced by the same costs.

Small benchmarks (HumanEval has 164 problems) cannot afford a fixed fit/test split. :func:`oof_p_good` deals the
items into ``k`` folds stratified on the label (is the small model's answer good?), fits a router on k − 1 folds
and predicts the held-out one, so each item gets an out-of-fold p_good. :func:`method_summary` turns one router's
p_good and its per-item costs (``cost_answer`` when the small model answers, ``cost_defer`` when it defers — each
including whatever the router itself paid: a prefill, an instruction, an embedding) into APGR, the cost and
saving at 95 % of the large model's quality, and the AUROC of the deferral signal; :func:`apgr_diff_ci` gives a
paired bootstrap interval of one router's APGR minus another's.

Savings are against **always-large** (the large model's plain answers), whatever a router pays on deferral. The
cost at a quality target is read from the router's operating curve over all thresholds (an ex-post operating
point, the same for every router — CPT/cost@quality as in RouteLLM).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.evals.bootstrap import BootstrapCI, bootstrap_ci
from thrifty.evals.routing_metrics import apgr, method_summary, operating_curve
from thrifty.route.fit.probe_fit import stratified_folds

FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(train indices, test indices) -> p_good for the test items, fitted on the train items only."""


def oof_p_good(fit_predict: FitPredict, y_good: Any, k: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold p_good for every item (see the module notes)."""
    y = np.asarray(y_good, dtype=bool)
    if k < 2 or len(y) < k:
        raise ConfigError(f"need k >= 2 folds and at least k items, got k={k} for {len(y)} items")
    fold = np.asarray(stratified_folds(y.astype(int).tolist(), k, random.Random(seed)))
    out = np.full(len(y), np.nan)
    for f in range(k):
        test, train = np.nonzero(fold == f)[0], np.nonzero(fold != f)[0]
        p = np.asarray(fit_predict(train, test), dtype=float).reshape(-1)
        if p.shape != (len(test),) or not np.all((p >= 0) & (p <= 1)):
            raise ConfigError(f"fold {f}: a router must return one p_good in [0, 1] per test item")
        out[test] = p
    return out


def _apgr(q_small: np.ndarray, q_large: np.ndarray, p_good: np.ndarray) -> float:
    return apgr(operating_curve(q_small, q_large, 1.0 - p_good))


def apgr_diff_ci(q_small: Any, q_large: Any, p_a: Any, p_b: Any, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> BootstrapCI:
    """Paired bootstrap CI of APGR(router a) − APGR(router b) over the same resampled items."""

    def diff(qs: np.ndarray, ql: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        if abs(ql.mean() - qs.mean()) <= 1e-12:
            return float("nan")
        return _apgr(qs, ql, a) - _apgr(qs, ql, b)

    arrays = [np.asarray(v, float) for v in (q_small, q_large, p_a, p_b)]
    return bootstrap_ci(diff, *arrays, n_boot=n_boot, alpha=alpha, rng=np.random.default_rng(seed))


__all__ = ["FitPredict", "apgr_diff_ci", "method_summary", "oof_p_good"]
