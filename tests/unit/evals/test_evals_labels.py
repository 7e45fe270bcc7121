"""Label metrics on hand-computed tiny cases, an explicit double-loop κ, degenerate cases and input errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.evals import (
    MetricInputError,
    accuracy,
    argmax_labels,
    confusion_matrix,
    label_summary,
    macro_f1,
    majority_baseline,
    overconfidence_rate,
    precision_recall_f1,
    quadratic_weighted_kappa,
)

# Tiny case used throughout:
#   y    = bad bad ok ok great great great
#   yhat = bad great ok bad great great ok
Y = [0, 0, 1, 1, 2, 2, 2]
P = [0, 2, 1, 0, 2, 2, 1]


def test_accuracy_and_majority_baseline():
    # correct at positions 0, 2, 4, 5 -> 4/7; class counts (2, 2, 3) -> majority 3/7
    assert accuracy(Y, P) == pytest.approx(4 / 7)
    assert majority_baseline(Y) == pytest.approx(3 / 7)
    assert majority_baseline([2, 2, 2, 0]) == 0.75


def test_confusion_matrix_rows_true():
    # true bad -> predicted (bad, great); true ok -> (ok, bad); true great -> (great, great, ok)
    expected = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 2]])
    cm = confusion_matrix(Y, P)
    assert cm.dtype.kind == "i"
    np.testing.assert_array_equal(cm, expected)
    np.testing.assert_array_equal(confusion_matrix(P, Y), expected.T)


def test_precision_recall_f1_and_macro():
    # column sums (2, 2, 3), row sums (2, 2, 3), diagonal (1, 1, 2)
    # P = R = (1/2, 1/2, 2/3) -> F1 = (1/2, 1/2, 2/3); macro = (1/2 + 1/2 + 2/3) / 3 = 5/9
    prec, rec, f1 = precision_recall_f1(Y, P)
    np.testing.assert_allclose(prec, [1 / 2, 1 / 2, 2 / 3])
    np.testing.assert_allclose(rec, [1 / 2, 1 / 2, 2 / 3])
    np.testing.assert_allclose(f1, [1 / 2, 1 / 2, 2 / 3])
    assert macro_f1(Y, P) == pytest.approx(5 / 9)


def test_f1_zero_when_precision_and_recall_are_zero():
    # y = (bad, bad), yhat = (bad, ok): P_bad = 1, R_bad = 1/2 -> F1_bad = 2/3;
    # ok: TP 0, FP 1 -> P 0; no true ok -> R 0 -> F1 := 0; great absent everywhere -> 0; macro = 2/9
    prec, rec, f1 = precision_recall_f1([0, 0], [0, 1])
    np.testing.assert_allclose(prec, [1, 0, 0])
    np.testing.assert_allclose(rec, [0.5, 0, 0])
    np.testing.assert_allclose(f1, [2 / 3, 0, 0])
    assert macro_f1([0, 0], [0, 1]) == pytest.approx(2 / 9)


def test_kappa_hand_value():
    # O = C/7; marginals n = (2, 2, 3); w = (j-k)^2 / 4
    # Σ w O = (1·C[0,2] + 1/4·C[1,0] + 1/4·C[2,1]) / 7 = 1.5 / 7
    # Σ w E = Σ_jk w_jk n_j n_k / 49 = (2·1/4·4 + 2·1·6 + 2·1/4·6) / 49 = 17 / 49
    # κ = 1 - (1.5/7) / (17/49) = 1 - 10.5/17 = 13/34
    assert quadratic_weighted_kappa(Y, P) == pytest.approx(13 / 34)


def _kappa_double_loop(y, p, k=3):
    n = len(y)
    o = [[0.0] * k for _ in range(k)]
    for a, b in zip(y, p, strict=True):
        o[a][b] += 1.0 / n
    rows = [sum(o[j][m] for m in range(k)) for j in range(k)]
    cols = [sum(o[j][m] for j in range(k)) for m in range(k)]
    num = den = 0.0
    for j in range(k):
        for m in range(k):
            w = (j - m) ** 2 / (k - 1) ** 2
            num += w * o[j][m]
            den += w * rows[j] * cols[m]
    return 1.0 - num / den


def test_kappa_matches_explicit_double_loop():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(2, 40))
        y = rng.integers(0, 3, n).tolist()
        p = rng.integers(0, 3, n).tolist()
        if len(set(y) | set(p)) == 1:
            continue
        assert quadratic_weighted_kappa(y, p) == pytest.approx(_kappa_double_loop(y, p), abs=1e-12)


def test_kappa_perfect_reversed_and_degenerate():
    assert quadratic_weighted_kappa([0, 1, 2], [0, 1, 2]) == pytest.approx(1.0)
    # perfectly reversed: Σ w O = (1 + 0 + 1)/3; E uniform: Σ w E = (2·1/4·2 + 2·1)/9 = 3/9 -> κ = 1 - 2 = -1
    assert quadratic_weighted_kappa([0, 1, 2], [2, 1, 0]) == pytest.approx(-1.0)
    # one grade everywhere: Σ w E = 0 -> NaN by definition
    assert math.isnan(quadratic_weighted_kappa([2, 2, 2], [2, 2, 2]))
    # only the labels constant but predictions vary: defined (= 0, no agreement beyond chance possible)
    assert quadratic_weighted_kappa([2, 2, 2], [2, 1, 2]) == pytest.approx(0.0)


def test_overconfidence_rate():
    # bad items at 0, 1; predicted (bad, great) -> 1/2
    assert overconfidence_rate(Y, P) == 0.5
    assert overconfidence_rate([0, 0, 0, 1], [2, 2, 1, 2]) == pytest.approx(2 / 3)
    assert math.isnan(overconfidence_rate([1, 2], [2, 2]))


def test_label_names_accepted_and_summary():
    names = ["bad", "bad", "ok", "ok", "great", "great", "great"]
    assert accuracy(names, P) == pytest.approx(4 / 7)
    s = label_summary(Y, P)
    assert s["n"] == 7 and s["kappa_quadratic"] == pytest.approx(13 / 34)
    assert s["confusion"] == [[1, 0, 1], [1, 1, 0], [0, 1, 2]]
    assert s["majority_baseline"] == pytest.approx(3 / 7)


def test_argmax_labels_ties_go_to_worse_grade():
    probs = [[0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3]]
    np.testing.assert_array_equal(argmax_labels(probs), [0, 1, 2, 0])


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0], "differ in length"),
        ([0, 3], [0, 1], r"0\.\.2"),
        ([], [], "empty"),
        ([[0, 1]], [[0, 1]], "1-D"),
        (["bad", "fine"], ["bad", "ok"], "unknown label"),
        ([0.5, 1], [0, 1], "whole numbers"),
    ],
)
def test_label_input_errors(y, p, match):
    with pytest.raises(MetricInputError, match=match) as info:
        accuracy(y, p)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_argmax_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="sums to"):
        argmax_labels([[0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        argmax_labels([[0.5, 0.5]])


def test_all_label_pairs_small_brute_force_accuracy():
    # every labelling of 3 items against every prediction: accuracy = matches / 3
    for y in itertools.product(range(3), repeat=3):
        for p in itertools.product(range(3), repeat=3):
            assert accuracy(y, p) == sum(a == b for a, b in zip(y, p, strict=True)) / 3
