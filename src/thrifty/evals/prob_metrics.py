"""Probability-quality and deferral-signal metrics: Brier, ECE and reliability bins, AUROC, AUPRC, AURC.

Inputs: ``probs`` is either an (n, 3) array of (p_bad, p_ok, p_great) rows summing to 1, or a 1-D array taken
as p_good = p_ok + p_great itself. ``y_true`` holds grades (bad=0, ok=1, great=2 or their names);
b_i = 1[y_i = bad], g_i = 1 − b_i. For AUROC/AUPRC the positive class is ``bad`` and the score is
p_bad = 1 − p_good.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from thrifty.evals._checks import (
    MetricInputError,
    as_float_1d,
    as_labels,
    as_p_good,
    as_probs,
    check_bins,
    same_length,
)

DEFAULT_BINS = 15


# --- Brier -------------------------------------------------------------------------------------------------

def brier_binary(probs: Any, y_true: Any) -> float:
    """Binary Brier score (1/n) Σ_i (p_good,i − g_i)² with g_i = 1[y_i ≠ bad]; 0 is perfect, 1 the worst."""
    pg = as_p_good(probs)
    g = (as_labels(y_true, "y_true") != 0).astype(float)
    same_length(probs=pg, y_true=g)
    return float(np.mean((pg - g) ** 2))


def brier_multiclass(probs: Any, y_true: Any) -> float:
    """Multiclass Brier score (1/n) Σ_i Σ_c (p_i,c − 1[y_i = c])² over the three grades; range [0, 2]."""
    p = as_probs(probs)
    y = as_labels(y_true, "y_true")
    same_length(probs=p, y_true=y)
    onehot = np.eye(3)[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


# --- calibration ---------------------------------------------------------------------------------------------

class Reliability(NamedTuple):
    """Per-bin reliability-diagram data: bin m covers (edges[m], edges[m+1]] (the first bin also holds 0)."""

    edges: np.ndarray  # (M + 1,) bin edges m / M
    conf: np.ndarray  # (M,) mean confidence in each bin; NaN for an empty bin
    acc: np.ndarray  # (M,) mean outcome in each bin; NaN for an empty bin
    count: np.ndarray  # (M,) number of items in each bin


def bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each confidence for M equal-width bins on [0, 1]: bin m (0-based) is (m/M, (m+1)/M].

    Edges are the floats nearest m/M (``arange(M+1) / M``), so a confidence equal to an interior edge falls in
    the lower bin (0.2 with M = 5 is in bin 0); 0 falls in the first bin and 1 in the last.
    """
    edges = np.arange(n_bins + 1) / n_bins
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def reliability_bins(confidence: Any, outcome: Any, n_bins: int = DEFAULT_BINS) -> Reliability:
    """Reliability data for any (confidence ∈ [0,1], outcome ∈ [0,1]) pairs, binned as in :func:`bin_index`."""
    m = check_bins(n_bins)
    conf = as_float_1d(confidence, "confidence", unit=True)
    out = as_float_1d(outcome, "outcome", unit=True)
    same_length(confidence=conf, outcome=out)
    idx = bin_index(conf, m)
    count = np.bincount(idx, minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=m) / count
        mean_acc = np.bincount(idx, weights=out, minlength=m) / count
    return Reliability(np.arange(m + 1) / m, mean_conf, mean_acc, count)


def ece_from_bins(rel: Reliability) -> float:
    """ECE = Σ_m (|B_m| / n) · |acc(B_m) − conf(B_m)| over the non-empty bins."""
    used = rel.count > 0
    n = rel.count.sum()
    return float(np.sum(rel.count[used] / n * np.abs(rel.acc[used] - rel.conf[used])))


def reliability_binary(probs: Any, y_true: Any, n_bins: int = DEFAULT_BINS) -> Reliability:
    """Binary reliability data: confidence = p_good, outcome = g = 1[y ≠ bad]."""
    pg = as_p_good(probs)
    g = (as_labels(y_true, "y_true") != 0).astype(float)
    return reliability_bins(pg, g, n_bins)


def reliability_top_label(probs: Any, y_true: Any, n_bins: int = DEFAULT_BINS) -> Reliability:
    """Top-label reliability data: confidence = max_c p_i,c, outcome = 1[ŷ_i = y_i] (ŷ = argmax, ties low)."""
    p = as_probs(probs)
    y = as_labels(y_true, "y_true")
    same_length(probs=p, y_true=y)
    correct = (np.argmax(p, axis=1) == y).astype(float)
    return reliability_bins(p.max(axis=1), correct, n_bins)


def ece_binary(probs: Any, y_true: Any, n_bins: int = DEFAULT_BINS) -> float:
    """Binary ECE: Σ_m (|B_m|/n) |mean g − mean p_good| over M equal-width bins of p_good (default M = 15)."""
    return ece_from_bins(reliability_binary(probs, y_true, n_bins))


def ece_top_label(probs: Any, y_true: Any, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE: Σ_m (|B_m|/n) |mean 1[ŷ=y] − mean max_c p| over M equal-width bins (default M = 15)."""
    return ece_from_bins(reliability_top_label(probs, y_true, n_bins))


# --- ranking: AUROC and AUPRC --------------------------------------------------------------------------------

def _score_and_positive(score: Any, positive: Any) -> tuple[np.ndarray, np.ndarray]:
    s = as_float_1d(score, "score")
    pos = np.asarray(positive)
    if pos.ndim != 1 or pos.dtype.kind not in "biuf" or not np.all((pos == 0) | (pos == 1)):
        raise MetricInputError("positive: expected a 1-D array of 0/1 or booleans")
    same_length(score=s, positive=pos)
    return s, pos.astype(bool)


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x, tied values sharing the mean of their ranks."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # rank of the last member of each distinct value
    return (upper - (counts - 1) / 2.0)[inv]


def auroc(score: Any, positive: Any) -> float:
    """AUROC = P(s_pos > s_neg) + ½ P(s_pos = s_neg) over all (positive, negative) pairs; NaN if a class is absent.

    Computed from mid-ranks (Mann–Whitney): (Σ_{i pos} rank_i − n_pos(n_pos+1)/2) / (n_pos · n_neg).
    """
    s, pos = _score_and_positive(score, positive)
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _midranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(score: Any, positive: Any) -> float:
    """Step-wise average precision AP = Σ_t (R_t − R_{t−1}) P_t (area under the precision–recall steps).

    Thresholds t run over the distinct scores from high to low (a tied group enters at once); P_t and R_t
    are precision and recall of "s ≥ t", R_0 = 0. NaN when there is no positive.
    """
    s, pos = _score_and_positive(score, positive)
    n_pos = int(pos.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s_sorted, p_sorted = s[order], pos[order]
    tp = np.cumsum(p_sorted)
    ends = np.r_[np.nonzero(np.diff(s_sorted))[0], s.size - 1]  # last index of each tied group
    tp_t = tp[ends].astype(float)
    precision = tp_t / (ends + 1)
    recall = tp_t / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def auroc_bad(probs: Any, y_true: Any) -> float:
    """AUROC of the deferral signal: positive = judge says bad, score = p_bad = 1 − p_good."""
    pg = as_p_good(probs)
    return auroc(1.0 - pg, as_labels(y_true, "y_true") == 0)


def auprc_bad(probs: Any, y_true: Any) -> float:
    """AUPRC (step-wise average precision) for positive = bad with score p_bad = 1 − p_good."""
    pg = as_p_good(probs)
    return average_precision(1.0 - pg, as_labels(y_true, "y_true") == 0)


# --- selective prediction: risk–coverage and AURC ------------------------------------------------------------

def risk_coverage(probs: Any, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
    """Risk–coverage curve: coverage k/n and risk(k) = (1/k) Σ_{j≤k} b_(j) for k = 1..n.

    Queries are sorted by p_good descending (most confident kept first). Ties are broken by their expectation
    over a uniformly random order: each member of a tied group contributes the group's bad rate, so the
    result is deterministic and does not depend on the input order.
    """
    pg = as_p_good(probs)
    b = (as_labels(y_true, "y_true") == 0).astype(float)
    same_length(probs=pg, y_true=b)
    order = np.argsort(-pg, kind="stable")
    keys, bs = pg[order], b[order]
    _, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    group_rate = np.bincount(inv, weights=bs) / counts
    k = np.arange(1, pg.size + 1)
    return k / pg.size, np.cumsum(group_rate[inv]) / k


def aurc(probs: Any, y_true: Any) -> float:
    """AURC = (1/n) Σ_{k=1..n} risk(k), with risk(k) from :func:`risk_coverage`."""
    return float(np.mean(risk_coverage(probs, y_true)[1]))


def selective_risk(probs: Any, y_true: Any, coverage: float) -> float:
    """Selective risk at coverage c ∈ (0, 1]: risk(⌈c·n⌉) (⌈·⌉ taken with 1e-9 slack so 0.3·10 gives 3)."""
    if not (isinstance(coverage, numbers.Real) and 0.0 < coverage <= 1.0):
        raise MetricInputError(f"coverage must lie in (0, 1] (got {coverage!r})")
    _, risk = risk_coverage(probs, y_true)
    k = max(1, math.ceil(coverage * risk.size - 1e-9))
    return float(risk[k - 1])


def prob_summary(probs: Any, y_true: Any, n_bins: int = DEFAULT_BINS) -> dict[str, float]:
    """All probability metrics in one dict (binary ones use p_good; top-label ones need (n, 3) probs)."""
    out = {
        "brier": brier_binary(probs, y_true),
        "ece": ece_binary(probs, y_true, n_bins),
        "auroc_bad": auroc_bad(probs, y_true),
        "auprc_bad": auprc_bad(probs, y_true),
        "aurc": aurc(probs, y_true),
    }
    if np.asarray(probs).ndim == 2:
        out["brier_multiclass"] = brier_multiclass(probs, y_true)
        out["ece_top_label"] = ece_top_label(probs, y_true, n_bins)
    return out
