"""Cost–quality routing metrics for a weak/strong pair: operating curve, PGR, APGR, CPT, cost@quality, AIQ.

Inputs per query i: q_weak[i], q_strong[i] ∈ [0, 1] (quality of each model's answer; e.g. grades mapped by
:func:`grade_quality`), a deferral ``score`` (higher = more likely sent to the strong model) and optional
per-query costs ``cost_weak[i]`` (cost when the query stays on the weak model) and ``cost_strong[i]`` (cost
when it is deferred). Costs are whatever the caller counts (price × tokens, including router overhead such
as report-card, reasoning and label tokens); by default cost_weak = 0 and cost_strong = 1, so cost = c.
All curve quantities are means per query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from thrifty.evals._checks import MetricInputError, as_float_1d, as_labels, same_length
from thrifty.evals.prob_metrics import auroc

GAP_EPS = 1e-12  # |r_S − r_W| at or below this makes PGR, APGR and CPT undefined (NaN)
GRADE_QUALITY = (0.0, 0.5, 1.0)  # bad, ok, great


@dataclass(frozen=True)
class RoutingCurve:
    """Operating points sorted by strong-call fraction c (0 first, 1 last); the query is deferred iff score ≥ τ."""

    threshold: np.ndarray  # τ per point (+inf at c = 0: nothing deferred; NaN for the analytic random curve)
    c: np.ndarray  # strong-call fraction
    r: np.ndarray  # mean quality
    cost: np.ndarray  # mean cost per query
    r_weak: float  # mean quality of always-weak (c = 0)
    r_strong: float  # mean quality of always-strong (c = 1)
    cost_weak: float  # mean cost of always-weak
    cost_strong: float  # mean cost of always-strong


def grade_quality(labels: Any) -> np.ndarray:
    """Judge grades mapped to quality: bad → 0, ok → 0.5, great → 1."""
    return np.asarray(GRADE_QUALITY)[as_labels(labels, "labels")]


def _inputs(q_weak: Any, q_strong: Any, cost_weak: Any, cost_strong: Any):
    qw = as_float_1d(q_weak, "q_weak", unit=True)
    qs = as_float_1d(q_strong, "q_strong", unit=True)
    n = same_length(q_weak=qw, q_strong=qs)
    cw = np.zeros(n) if cost_weak is None else as_float_1d(cost_weak, "cost_weak", nonneg=True)
    cs = np.ones(n) if cost_strong is None else as_float_1d(cost_strong, "cost_strong", nonneg=True)
    same_length(q_weak=qw, cost_weak=cw, cost_strong=cs)
    return qw, qs, cw, cs


def operating_curve(q_weak: Any, q_strong: Any, score: Any, cost_weak: Any = None,
                    cost_strong: Any = None) -> RoutingCurve:
    """Sweep τ over the distinct scores: point k defers the queries with score ≥ τ_k.

    Sorted by score descending, a tied group is deferred all at once, so the points are c = 0, then c after
    each tied group, ending at c = 1. At a point deferring set D: c = |D|/n,
    r = (1/n)(Σ_{i∉D} q_weak,i + Σ_{i∈D} q_strong,i), cost = (1/n)(Σ_{i∉D} cost_weak,i + Σ_{i∈D} cost_strong,i).
    The c = 0 and c = 1 endpoints carry exactly (r_W, cost_W) and (r_S, cost_S).
    """
    qw, qs, cw, cs = _inputs(q_weak, q_strong, cost_weak, cost_strong)
    s = as_float_1d(score, "score")
    n = same_length(q_weak=qw, score=s)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    ends = np.r_[np.nonzero(np.diff(s_sorted))[0], n - 1]  # last index of each tied group
    r_w, r_s, k_w, k_s = float(qw.mean()), float(qs.mean()), float(cw.mean()), float(cs.mean())
    r = np.r_[r_w, r_w + np.cumsum(qs[order] - qw[order])[ends] / n]
    cost = np.r_[k_w, k_w + np.cumsum(cs[order] - cw[order])[ends] / n]
    r[-1], cost[-1] = r_s, k_s
    return RoutingCurve(np.r_[np.inf, s_sorted[ends]], np.r_[0.0, (ends + 1) / n], r, cost, r_w, r_s, k_w, k_s)


def oracle_curve(q_weak: Any, q_strong: Any, cost_weak: Any = None, cost_strong: Any = None) -> RoutingCurve:
    """The oracle router: defers in order of quality gain q_strong − q_weak (largest first)."""
    qw = as_float_1d(q_weak, "q_weak", unit=True)
    qs = as_float_1d(q_strong, "q_strong", unit=True)
    same_length(q_weak=qw, q_strong=qs)
    return operating_curve(qw, qs, qs - qw, cost_weak, cost_strong)


def random_curve(q_weak: Any, q_strong: Any, cost_weak: Any = None, cost_strong: Any = None,
                 n_points: int = 2) -> RoutingCurve:
    """Expected curve of a router deferring a uniformly random fraction c: the straight line
    r(c) = r_W + c (r_S − r_W), cost(c) = cost_W + c (cost_S − cost_W), at ``n_points`` evenly spaced c.
    Its APGR is ½ and its thresholds are NaN.
    """
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer) or n_points < 2:
        raise MetricInputError(f"n_points must be an integer ≥ 2 (got {n_points!r})")
    qw, qs, cw, cs = _inputs(q_weak, q_strong, cost_weak, cost_strong)
    r_w, r_s, k_w, k_s = float(qw.mean()), float(qs.mean()), float(cw.mean()), float(cs.mean())
    c = np.linspace(0.0, 1.0, int(n_points))
    r, cost = r_w + c * (r_s - r_w), k_w + c * (k_s - k_w)
    r[-1], cost[-1] = r_s, k_s
    return RoutingCurve(np.full(n_points, np.nan), c, r, cost, r_w, r_s, k_w, k_s)


def _gap(curve: RoutingCurve) -> float:
    gap = curve.r_strong - curve.r_weak
    return float("nan") if abs(gap) <= GAP_EPS else gap


def pgr(curve: RoutingCurve) -> np.ndarray:
    """PGR per point: (r − r_W) / (r_S − r_W); all NaN when r_S = r_W (within 1e-12)."""
    return (curve.r - curve.r_weak) / _gap(curve)


def auc(curve: RoutingCurve) -> float:
    """AUC = ∫_0^1 r dc by the trapezoid rule over the points sorted by c (endpoints c = 0, 1 included)."""
    return float(np.sum(np.diff(curve.c) * (curve.r[1:] + curve.r[:-1]) / 2.0))


def apgr(curve: RoutingCurve) -> float:
    """APGR = (AUC − r_W) / (r_S − r_W) (the flat always-W and always-S curves have AUC r_W and r_S).

    Equals the mean of PGR over c ∈ [0, 1] on the linearly interpolated curve. NaN when r_S = r_W (within
    1e-12); when r_S < r_W the same formula applies (PGR is then measured towards the worse model).
    """
    return float((auc(curve) - curve.r_weak) / _gap(curve))


def cpt(curve: RoutingCurve, x: float) -> float:
    """CPT(x): the strong-call fraction c at which PGR first reaches x (r = r_W + x (r_S − r_W)).

    The points are joined linearly in c and the curve is walked from c = 0: the answer is the first crossing
    (the cheapest c achieving the target), so a non-monotone curve that later dips below x does not matter.
    Equivalently, linear interpolation of the (running max of r → c) curve. 0 when x ≤ PGR(0) = 0;
    NaN when the curve never reaches x (possible only for x > 1) or when r_S = r_W.
    """
    p = pgr(curve)
    if not np.isfinite(p).all():
        return float("nan")
    hit = np.nonzero(p >= x)[0]
    if hit.size == 0:
        return float("nan")
    j = int(hit[0])
    if j == 0:
        return float(curve.c[0])
    frac = (x - p[j - 1]) / (p[j] - p[j - 1])
    return float(curve.c[j - 1] + frac * (curve.c[j] - curve.c[j - 1]))


class CostAtQuality(NamedTuple):
    """Cheapest operating point reaching a quality target, and its savings versus always-strong."""

    q_target: float
    cost: float  # NaN when no point reaches the target
    savings: float  # 1 − cost / cost(always S); NaN when that cost is 0 or no point qualifies
    c: float  # strong-call fraction of the chosen point
    threshold: float  # its τ


def cost_at_quality(curve: RoutingCurve, q_target: float | None = None) -> CostAtQuality:
    """cost@q* = min cost over operating points with r ≥ q* (default q* = 0.95·r_S; ties → smaller c);
    savings = 1 − cost@q* / cost(always S). Only the swept points count (no interpolation between them).
    """
    q = 0.95 * curve.r_strong if q_target is None else float(q_target)
    ok = np.nonzero(curve.r >= q - GAP_EPS)[0]
    if ok.size == 0:
        nan = float("nan")
        return CostAtQuality(q, nan, nan, nan, nan)
    j = int(ok[np.argmin(curve.cost[ok])])  # argmin keeps the first (smallest c) among equal costs
    cost = float(curve.cost[j])
    savings = 1.0 - cost / curve.cost_strong if curve.cost_strong > 0 else float("nan")
    return CostAtQuality(q, cost, savings, float(curve.c[j]), float(curve.threshold[j]))


def aiq(cost: Any, quality: Any) -> float:
    """AIQ (RouterBench): (1/(c_max − c_min)) ∫_{c_min}^{c_max} R̃(c) dc over operating points (cost_j, r_j).

    R̃ is the non-decreasing upper convex hull: the upper concave envelope of the points, held flat after its
    highest point (a costlier point that is worse is never chosen). When all costs are equal the interval is
    empty and AIQ is the limit of the average, i.e. the best quality.
    """
    x = as_float_1d(cost, "cost")
    y = as_float_1d(quality, "quality")
    same_length(cost=x, quality=y)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= GAP_EPS * max(1.0, abs(hi)):
        return float(y.max())
    order = np.lexsort((-y, x))  # by cost, best quality first within a cost
    hull: list[tuple[float, float]] = []
    for xi, yi in zip(x[order].tolist(), y[order].tolist(), strict=True):
        if hull and xi == hull[-1][0]:
            continue  # same cost, lower quality
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (yi - y1) - (y2 - y1) * (xi - x1) >= 0:  # hull[-1] on or below the chord
                hull.pop()
            else:
                break
        hull.append((xi, yi))
    hx, hy = np.array(hull).T
    peak = int(np.argmax(hy))
    area = np.sum(np.diff(hx[: peak + 1]) * (hy[1 : peak + 1] + hy[:peak]) / 2.0) + hy[peak] * (hi - hx[peak])
    return float(area / (hi - lo))


def aiq_curve(curve: RoutingCurve) -> float:
    """AIQ of a curve's operating points (cost, r)."""
    return aiq(curve.cost, curve.r)


def routing_summary(curve: RoutingCurve, xs: tuple[float, ...] = (0.2, 0.5, 0.8),
                    q_target: float | None = None) -> dict[str, float]:
    """The routing metrics in one dict: endpoints, AUC, APGR, CPT(x) per x, cost@quality, savings, AIQ."""
    caq = cost_at_quality(curve, q_target)
    out = {"r_weak": curve.r_weak, "r_strong": curve.r_strong, "cost_weak": curve.cost_weak,
           "cost_strong": curve.cost_strong, "auc": auc(curve), "apgr": apgr(curve)}
    out.update({f"cpt_{round(100 * x)}": cpt(curve, x) for x in xs})
    out.update({"q_target": caq.q_target, "cost_at_q": caq.cost, "savings": caq.savings, "aiq": aiq_curve(curve)})
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

