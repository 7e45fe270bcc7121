"""Paired bootstrap intervals of one replayed routing method: its APGR and its saving at 95 % of large quality.

Each replicate resamples the queries with replacement and rebuilds the method's operating curve on the
resample (the oracle re-sorts by the resampled quality gains; random is its straight line at the same 11
points as the point estimate). APGR is read from that curve; the saving is 1 − (cheapest cost reaching 95 % of
the resample's large-model quality) / (the resample's mean plain always-large cost). Every call draws its
indices from ``numpy.random.default_rng(seed)``, so every method and both metrics see the *same* resamples:
the intervals are paired, and two methods' intervals can be read side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thrifty.evals.bootstrap import bootstrap_ci
from thrifty.evals.routing_metrics import GAP_EPS, RoutingCurve, apgr, cost_at_quality

QUALITY_SHARE = 0.95  # the saving is read at this share of the large model's mean quality
RANDOM_POINTS = 11  # the random line is swept at these many evenly spaced defer rates


def method_curve(kind: str, q_small: np.ndarray, q_large: np.ndarray, score: np.ndarray | None,
                 cost_w: np.ndarray, cost_s: np.ndarray) -> RoutingCurve:
    """The operating curve of one method: ``random`` (expected line), ``oracle`` (by true quality gain), or any
    scored method (defer iff score ≥ τ)."""
    from thrifty.evals.routing_metrics import operating_curve, oracle_curve, random_curve

    if kind == "random":
        return random_curve(q_small, q_large, cost_w, cost_s, n_points=RANDOM_POINTS)
    if kind == "oracle":
        return oracle_curve(q_small, q_large, cost_w, cost_s)
    if score is None:
        raise ValueError(f"method {kind!r} needs a deferral score")
    return operating_curve(q_small, q_large, score, cost_w, cost_s)


def method_cis(kind: str, q_small: Any, q_large: Any, score: Any | None, cost_w: Any, cost_s: Any,
               cost_plain: Any, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """``apgr_ci`` and ``savings_ci`` ([lo, hi], NaN when no replicate is defined) of one method, with the
    point estimates the intervals belong to (``apgr``, ``savings``) and ``n_boot``. ``cost_plain`` is each
    query's plain always-large cost (no prediction paid), the yardstick of every method's saving."""
    qs, ql = np.asarray(q_small, float), np.asarray(q_large, float)
    cw, cs, plain = (np.asarray(a, float) for a in (cost_w, cost_s, cost_plain))
    s = np.zeros(len(qs)) if score is None else np.asarray(score, float)

    def curve(a: np.ndarray, b: np.ndarray, sc: np.ndarray, w: np.ndarray, d: np.ndarray) -> RoutingCurve:
        return method_curve(kind, a, b, None if score is None else sc, w, d)

    def apgr_of(a: np.ndarray, b: np.ndarray, sc: np.ndarray, w: np.ndarray, d: np.ndarray,
                p: np.ndarray) -> float:
        if abs(b.mean() - a.mean()) <= GAP_EPS:
            return float("nan")
        return apgr(curve(a, b, sc, w, d))

    def saving_of(a: np.ndarray, b: np.ndarray, sc: np.ndarray, w: np.ndarray, d: np.ndarray,
                  p: np.ndarray) -> float:
        large = float(p.mean())
        if large <= 0:
            return float("nan")
        c = curve(a, b, sc, w, d)
        return 1.0 - cost_at_quality(c, QUALITY_SHARE * c.r_strong).cost / large

    arrays = (qs, ql, s, cw, cs, plain)
    a_ci = bootstrap_ci(apgr_of, *arrays, n_boot=n_boot, alpha=alpha, rng=np.random.default_rng(seed))
    s_ci = bootstrap_ci(saving_of, *arrays, n_boot=n_boot, alpha=alpha, rng=np.random.default_rng(seed))
    return {"apgr": a_ci.point, "apgr_ci": [a_ci.lo, a_ci.hi], "savings": s_ci.point,
            "savings_ci": [s_ci.lo, s_ci.hi], "n_boot": int(n_boot)}


__all__ = ["QUALITY_SHARE", "RANDOM_POINTS", "method_cis", "method_curve"]
