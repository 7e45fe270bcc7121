"""Label-prediction metrics for the 3-grade scale (bad=0, ok=1, great=2): accuracy, F1, weighted κ, confusion.

Every function takes true labels and predicted labels (integers 0..2 or the names 'bad', 'ok', 'great').
Use :func:`argmax_labels` to turn an (n, 3) probability array (p_bad, p_ok, p_great) into predicted labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thrifty.evals._checks import as_labels, as_probs, same_length

K = 3  # number of grades


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = as_labels(y_true, "y_true", K)
    p = as_labels(y_pred, "y_pred", K)
    same_length(y_true=t, y_pred=p)
    return t, p


def argmax_labels(probs: Any) -> np.ndarray:
    """ŷ_i = argmax_c p_i,c over (p_bad, p_ok, p_great); exact ties go to the lower (worse) grade."""
    return np.argmax(as_probs(probs), axis=1).astype(np.int64)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Exact accuracy (1/n) Σ_i 1[ŷ_i = y_i] — the paper's metric."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def majority_baseline(y_true: Any) -> float:
    """Majority-class baseline max_c n_c / n: the accuracy of always predicting the most frequent grade."""
    t = as_labels(y_true, "y_true", K)
    return float(np.bincount(t, minlength=K).max() / t.size)


def confusion_matrix(y_true: Any, y_pred: Any) -> np.ndarray:
    """3×3 integer counts C[j, k] = #{i : y_i = j, ŷ_i = k} (rows true, columns predicted)."""
    t, p = _pair(y_true, y_pred)
    return np.bincount(K * t + p, minlength=K * K).reshape(K, K)


def precision_recall_f1(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (P, R, F1), each of shape (3,), indexed bad, ok, great.

    P_c = TP_c / (TP_c + FP_c), R_c = TP_c / (TP_c + FN_c), F1_c = 2 P_c R_c / (P_c + R_c).
    A zero denominator gives 0 for that P_c or R_c, and F1_c := 0 when P_c + R_c = 0.
    """
    cm = confusion_matrix(y_true, y_pred).astype(float)
    tp = np.diag(cm)
    pred_pos = cm.sum(axis=0)  # TP + FP
    true_pos = cm.sum(axis=1)  # TP + FN
    prec = np.divide(tp, pred_pos, out=np.zeros(K), where=pred_pos > 0)
    rec = np.divide(tp, true_pos, out=np.zeros(K), where=true_pos > 0)
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros(K), where=denom > 0)
    return prec, rec, f1


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Macro-F1 = (1/3) Σ_c F1_c over all three grades (a grade absent from both labels and predictions adds 0)."""
    return float(np.mean(precision_recall_f1(y_true, y_pred)[2]))


def quadratic_weighted_kappa(y_true: Any, y_pred: Any) -> float:
    """Quadratic-weighted κ_w = 1 − Σ_jk w_jk O_jk / Σ_jk w_jk E_jk.

    O = confusion matrix / n (rows true, columns predicted), E = outer(row marginals of O, column marginals
    of O), w_jk = (j − k)² / (K − 1)² with K = 3.
    Degenerate case: Σ w E = 0 happens only when every label and every prediction is the same single grade;
    chance agreement is then total and κ is 0/0, so the function returns NaN.
    """
    o = confusion_matrix(y_true, y_pred).astype(float)
    o /= o.sum()
    e = np.outer(o.sum(axis=1), o.sum(axis=0))
    idx = np.arange(K)
    w = (idx[:, None] - idx[None, :]) ** 2 / (K - 1) ** 2
    den = float(np.sum(w * e))
    if den <= 0.0:
        return float("nan")
    return 1.0 - float(np.sum(w * o)) / den


def overconfidence_rate(y_true: Any, y_pred: Any) -> float:
    """Over-confidence rate P(ŷ = great | y = bad) = #{y=bad, ŷ=great} / #{y=bad}; NaN when no label is bad."""
    t, p = _pair(y_true, y_pred)
    bad = t == 0
    n_bad = int(bad.sum())
    if n_bad == 0:
        return float("nan")
    return float(np.sum(bad & (p == 2)) / n_bad)


def label_summary(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """All label metrics in one dict: accuracy beside the majority baseline, macro-F1, κ_w, confusion."""
    t, p = _pair(y_true, y_pred)
    prec, rec, f1 = precision_recall_f1(t, p)
    return {
        "n": int(t.size),
        "accuracy": accuracy(t, p),
        "majority_baseline": majority_baseline(t),
        "macro_f1": float(np.mean(f1)),
        "kappa_quadratic": quadratic_weighted_kappa(t, p),
        "overconfidence_rate": overconfidence_rate(t, p),
        "precision": prec.tolist(),
        "recall": rec.tolist(),
        "f1": f1.tolist(),
        "confusion": confusion_matrix(t, p).tolist(),
    }
