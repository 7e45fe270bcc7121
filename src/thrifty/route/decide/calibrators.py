"""Calibration of predicted grade probabilities and the choice of a deferral threshold (pure functions).

Probabilities are (n, 3) arrays in the ordinal order bad, ok, great (:data:`thrifty.judge.base.LABEL_INDEX`);
labels are those indices. A router answers with the small model when the calibrated ``p_good`` (= p_ok +
p_great) is at least the threshold ``tau`` and defers otherwise.

Calibrators
- **temperature**: ``q_c ∝ p_c^(1/T)`` — temperature scaling of the three label log-probabilities; ``T`` minimises
  the negative log-likelihood on held-out labels. The NLL is convex in ``β = 1/T`` (a log-sum-exp of functions
  linear in β minus a linear term), so a golden-section search on ``β`` finds the optimum.
- **isotonic**: a non-decreasing map of ``p_good`` to the observed rate of acceptable answers, fitted by the pool
  adjacent violators algorithm; applied by linear interpolation between fitted block ends, constant outside.

Thresholds (``s`` = calibrated p_good; quality values ``q`` in [0, 1])
- :func:`threshold_for_defer_rate` — the quantile rule: defer the ``rate`` least confident fraction.
- :func:`threshold_for_quality` — the most aggressive threshold whose routed quality is, with probability at
  least ``1 - delta``, at least ``target`` × the large model's quality. Candidate thresholds are tested from
  the most conservative (defer all) down, stopping at the first that fails (fixed-sequence testing, so the
  family-wise error stays at ``delta``; the "learn then test" recipe of risk control). Each test bounds the mean
  of ``L_i = target·qL_i − r_i`` (``r_i`` the routed quality) from above with the empirical Bernstein bound of
  Maurer & Pontil (range 2). The bound, not the point estimate, is reported.
- :func:`threshold_for_budget` — the highest-quality threshold whose mean cost per query fits a budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError

_EPS = 1e-12
_BETA_RANGE = (1e-3, 1e3)


def _probs(p: Any) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise ConfigError(f"probabilities must be a non-empty (n, 3) array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < -1e-9) or np.any(np.abs(arr.sum(1) - 1) > 1e-6):
        raise ConfigError("probabilities must be finite, non-negative rows summing to 1")
    return np.clip(arr, 0.0, 1.0)


def _labels(y: Any, n: int, k: int = 3) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer) or np.any((arr < 0) | (arr >= k)):
        raise ConfigError(f"labels must be {n} integers in [0, {k})")
    return arr.astype(np.int64)


# ---- temperature scaling -------------------------------------------------------------------------------

def apply_temperature(p: Any, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row-wise (zeros stay zero for any finite T)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature must be a positive finite number, got {temperature!r}")
    logp = np.log(np.maximum(_probs(p), _EPS)) / float(temperature)
    logp -= logp.max(axis=1, keepdims=True)
    q = np.exp(logp)
    return q / q.sum(axis=1, keepdims=True)


def temperature_nll(p: Any, y: Any, temperature: float) -> float:
    """Mean negative log-likelihood of labels ``y`` under the tempered probabilities."""
    arr = _probs(p)
    labels = _labels(y, arr.shape[0])
    q = apply_temperature(arr, temperature)
    return float(-np.mean(np.log(np.maximum(q[np.arange(len(labels)), labels], _EPS))))


def fit_temperature(p: Any, y: Any, tol: float = 1e-7) -> float:
    """The temperature minimising :func:`temperature_nll`, searched over ``1/T`` in [1e-3, 1e3]."""
    arr = _probs(p)
    labels = _labels(y, arr.shape[0])
    lo, hi = (math.log(b) for b in _BETA_RANGE)  # golden section on log β: unimodal since NLL is convex in β

    def f(log_beta: float) -> float:
        return temperature_nll(arr, labels, 1.0 / math.exp(log_beta))

    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return 1.0 / math.exp((a + b) / 2)


# ---- isotonic regression ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Isotonic:
    """A fitted non-decreasing map: knots ``x`` (ascending) and values ``y``; linear between, flat outside."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, s: Any) -> np.ndarray:
        return np.interp(np.asarray(s, dtype=np.float64), self.x, self.y)


def fit_isotonic(s: Any, good: Any) -> Isotonic:
    """Pool-adjacent-violators fit of ``good`` (0/1 or [0, 1] outcomes) on scores ``s``; ties in ``s`` are pooled
    first (a function of s cannot give one score two values)."""
    xs = np.asarray(s, dtype=np.float64)
    ys = np.asarray(good, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0:
        raise ConfigError("scores and outcomes must be non-empty 1-D arrays of one length")
    if not (np.all(np.isfinite(xs)) and np.all((ys >= 0) & (ys <= 1))):
        raise ConfigError("scores must be finite and outcomes in [0, 1]")
    ux, inverse = np.unique(xs, return_inverse=True)
    w = np.bincount(inverse).astype(np.float64)
    m = np.bincount(inverse, weights=ys) / w
    blocks: list[list[float]] = []  # [mean, weight, first x, last x]
    for xi, mi, wi in zip(ux, m, w, strict=True):
        blocks.append([mi, wi, xi, xi])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, _, b2 = blocks.pop()
            m1, w1, a1, _ = blocks[-1]
            blocks[-1] = [(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, a1, b2]
    kx, ky = [], []
    for mean, _, a, b in blocks:
        kx.append(a)
        ky.append(mean)
        if b > a:
            kx.append(b)
            ky.append(mean)
    return Isotonic(tuple(float(v) for v in kx), tuple(float(v) for v in ky))


# ---- thresholds ---------------------------------------------------------------------------------------

def routed_quality(s: Any, tau: float, q_small: Any, q_large: Any) -> np.ndarray:
    """Per-query quality when answering with the small model iff ``s >= tau``."""
    s, qs, ql = (np.asarray(a, dtype=np.float64) for a in (s, q_small, q_large))
    return np.where(s >= tau, qs, ql)


def candidate_thresholds(s: Any) -> np.ndarray:
    """Every distinct operating point, most conservative first: +inf (defer all), then each distinct score in
    descending order (answering the queries with s >= it)."""
    return np.concatenate([[np.inf], np.unique(np.asarray(s, dtype=np.float64))[::-1]])


def threshold_for_defer_rate(s: Any, rate: float) -> float:
    """The threshold that defers (s < tau) as close to ``rate`` of these queries as their ties allow, never more."""
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"defer rate must be in [0, 1], got {rate}")
    arr = np.sort(np.asarray(s, dtype=np.float64))
    if arr.size == 0:
        raise ConfigError("no scores to set a threshold on")
    k = math.floor(rate * arr.size + 1e-9)  # defer the k least confident
    return math.inf if k >= arr.size else float(arr[k])


def bernstein_upper(x: Any, delta: float, value_range: float) -> float:
    """Empirical Bernstein upper confidence bound on the mean of i.i.d. ``x`` (Maurer & Pontil 2009, Thm 4):
    mean + sqrt(2·var·ln(2/δ)/n) + 7·R·ln(2/δ)/(3(n−1)), with the unbiased sample variance."""
    arr = np.asarray(x, dtype=np.float64)
    n = arr.size
    if n < 2:
        return math.inf
    log_term = math.log(2.0 / delta)
    var = float(arr.var(ddof=1))
    return float(arr.mean() + math.sqrt(2 * var * log_term / n) + 7 * value_range * log_term / (3 * (n - 1)))


@dataclass(frozen=True)
class QualityThreshold:
    """The result of :func:`threshold_for_quality`; ``certified`` False means not even deferring everything
    passed the test (too few queries for this target and delta) and ``tau`` is +inf."""

    tau: float
    defer_rate: float
    quality: float  # empirical mean routed quality at tau
    quality_large: float
    bound: float  # upper bound on mean(target·qL − r) at tau (<= 0 when certified)
    certified: bool


def threshold_for_quality(s: Any, q_small: Any, q_large: Any, target: float = 0.95,
                          delta: float = 0.1) -> QualityThreshold:
    """The most aggressive threshold certified (at level ``delta``) to keep routed quality >= ``target`` ×
    the large model's, by fixed-sequence testing from "defer all" (see the module notes)."""
    if not 0.0 < target <= 1.0 or not 0.0 < delta < 1.0:
        raise ConfigError(f"target must be in (0, 1] and delta in (0, 1), got {target}, {delta}")
    s_arr, qs, ql = (np.asarray(a, dtype=np.float64) for a in (s, q_small, q_large))
    if s_arr.ndim != 1 or s_arr.size == 0 or qs.shape != s_arr.shape or ql.shape != s_arr.shape:
        raise ConfigError("scores and qualities must be non-empty 1-D arrays of one length")
    if np.any((qs < 0) | (qs > 1) | (ql < 0) | (ql > 1)):
        raise ConfigError("qualities must lie in [0, 1]")
    best: QualityThreshold | None = None
    for tau in candidate_thresholds(s_arr):
        r = routed_quality(s_arr, tau, qs, ql)
        bound = bernstein_upper(target * ql - r, delta, 2.0)
        if bound > 0:
            break
        best = QualityThreshold(float(tau), float(np.mean(s_arr < tau)), float(r.mean()), float(ql.mean()),
                                bound, True)
    if best is None:
        r = ql
        return QualityThreshold(math.inf, 1.0, float(r.mean()), float(ql.mean()),
                                bernstein_upper(target * ql - r, delta, 2.0), False)
    return best


def threshold_for_budget(s: Any, cost_answer: Any, cost_defer: Any, budget: float,
                         q_small: Any = None, q_large: Any = None) -> float:
    """The threshold with the best mean routed quality (ties: the cheaper; without qualities: the most
    deferring) among those whose mean cost per query is within ``budget``; raises when even answering everything costs more.
    ``cost_answer``/``cost_defer`` are per-query costs of each outcome (prediction overhead included)."""
    s_arr, ca, cd = (np.asarray(a, dtype=np.float64) for a in (s, cost_answer, cost_defer))
    if s_arr.ndim != 1 or s_arr.size == 0 or ca.shape != s_arr.shape or cd.shape != s_arr.shape:
        raise ConfigError("scores and costs must be non-empty 1-D arrays of one length")
    best_tau, best_key = None, None
    for tau in candidate_thresholds(s_arr):
        answer = s_arr >= tau
        cost = float(np.where(answer, ca, cd).mean())
        if cost > budget + 1e-12:
            continue
        if q_small is not None:  # best quality; at equal quality, the cheaper
            key = (float(routed_quality(s_arr, tau, q_small, q_large).mean()), -cost)
        else:
            key = (float(np.mean(~answer)), 0.0)
        if best_key is None or key > best_key:
            best_tau, best_key = float(tau), key
    if best_tau is None:
        raise ConfigError(f"budget {budget:g} per query is below every threshold's mean cost (answering "
                          f"everything with the small model costs {float(ca.mean()):g})")
    return best_tau
