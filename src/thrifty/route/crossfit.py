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
from thrifty.evals.prob_metrics import auroc
from thrifty.evals.routing_metrics import apgr, cost_at_quality, operating_curve, oracle_curve
from thrifty.route.probe_fit import stratified_folds

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


def method_summary(q_small: Any, q_large: Any, p_good: Any | None, cost_answer: Any, cost_defer: Any,
                   cost_large: Any, target: float = 0.95, curve_points: bool = False) -> dict[str, Any]:
    """APGR, cost and saving at ``target`` × the large model's quality, deferral at that point, AUROC.

    ``p_good`` None is the oracle (defers by quality gain). ``cost_large`` is always-large's per-item cost.
    ``curve_points``: also the operating curve as ``curve`` = {cost, quality, defer} lists (for plots)."""
    qs, ql = np.asarray(q_small, float), np.asarray(q_large, float)
    if p_good is None:
        curve = oracle_curve(qs, ql, cost_answer, cost_defer)
        auc = float("nan")
    else:
        pg = np.asarray(p_good, float)
        curve = operating_curve(qs, ql, 1.0 - pg, cost_answer, cost_defer)
        auc = float(auroc(1.0 - pg, qs < 0.5))  # the deferral signal against "the small answer is bad"
    at = cost_at_quality(curve, target * float(ql.mean()))
    large = float(np.mean(cost_large))
    out: dict[str, Any] = {
        "apgr": float(apgr(curve)), "cost_at_target": at.cost, "saving_at_target": 1.0 - at.cost / large,
        "defer_at_target": at.c, "auroc_bad": auc, "quality_small": float(qs.mean()),
        "quality_large": float(ql.mean()), "cost_small": float(np.mean(cost_answer)), "cost_large": large}
    if curve_points:
        out["curve"] = {"cost": curve.cost.tolist(), "quality": curve.r.tolist(), "defer": curve.c.tolist()}
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
