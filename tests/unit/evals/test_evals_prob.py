"""Probability metrics: hand-computed Brier/ECE/AUROC/AP/AURC, brute-force AUROC and AURC, bin edges, properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.evals import (
    MetricInputError,
    auprc_bad,
    aurc,
    auroc,
    auroc_bad,
    average_precision,
    bin_index,
    brier_binary,
    brier_multiclass,
    ece_binary,
    ece_from_bins,
    ece_top_label,
    prob_summary,
    reliability_bins,
    reliability_top_label,
    risk_coverage,
    selective_risk,
)

# rows (p_bad, p_ok, p_great); p_good = (0.3, 0.8, 0.9, 0.5); labels bad, ok, great, great -> g = (0, 1, 1, 1)
PROBS = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.5, 0.25, 0.25]])
Y = [0, 1, 2, 2]


def test_brier_binary_and_multiclass():
    # binary: (0.3² + 0.2² + 0.1² + 0.5²) / 4 = 0.39 / 4
    assert brier_binary(PROBS, Y) == pytest.approx(0.0975)
    assert brier_binary([0.3, 0.8, 0.9, 0.5], Y) == pytest.approx(0.0975)  # 1-D input = p_good
    # multiclass rows: 0.3²+0.2²+0.1² = 0.14; 0.2²+0.5²+0.3² = 0.38; 0.1²+0.3²+0.4² = 0.26;
    # 0.5²+0.25²+0.75² = 0.875 -> mean 1.655 / 4
    assert brier_multiclass(PROBS, Y) == pytest.approx(0.41375)


def test_ece_binary_hand_value_two_bins():
    # M = 2: bin (0, 0.5] holds p_good 0.3 and 0.5 (0.5 is an edge -> lower bin): conf 0.4, acc 0.5, |Δ| 0.1
    # bin (0.5, 1] holds 0.8, 0.9: conf 0.85, acc 1, |Δ| 0.15 -> ECE = 0.5·0.1 + 0.5·0.15 = 0.125
    assert ece_binary(PROBS, Y, n_bins=2) == pytest.approx(0.125)
    rel = reliability_bins([0.3, 0.8, 0.9, 0.5], [0, 1, 1, 1], n_bins=2)
    np.testing.assert_allclose(rel.conf, [0.4, 0.85])
    np.testing.assert_allclose(rel.acc, [0.5, 1.0])
    np.testing.assert_array_equal(rel.count, [2, 2])
    np.testing.assert_allclose(rel.edges, [0, 0.5, 1])


def test_ece_top_label_hand_value():
    # max p = (0.7, 0.5, 0.6, 0.5); argmax = (bad, ok, great, bad[tie -> lower]) -> correct (1, 1, 1, 0)
    # M = 2: bin 0 = {0.5, 0.5}: conf 0.5, acc 0.5 -> 0; bin 1 = {0.7, 0.6}: conf 0.65, acc 1 -> 0.35·2/4
    assert ece_top_label(PROBS, Y, n_bins=2) == pytest.approx(0.175)
    rel = reliability_top_label(PROBS, Y, n_bins=2)
    np.testing.assert_allclose(rel.acc, [0.5, 1.0])


def test_bin_edge_convention():
    # bin m is (m/M, (m+1)/M]; 0 -> first bin; 1 -> last; an edge goes to the lower bin
    np.testing.assert_array_equal(bin_index(np.array([0.0, 0.2, 0.2000001, 0.4, 0.99, 1.0]), 5), [0, 0, 1, 1, 4, 4])
    np.testing.assert_array_equal(bin_index(np.array([0.3, 0.7, 0.70001]), 10), [2, 6, 7])
    k = np.arange(1, 16)
    np.testing.assert_array_equal(bin_index(k / 15, 15), k - 1)  # every interior/outer edge k/15 -> bin k-1
    rel = reliability_bins([0.05, 0.95], [0, 1], n_bins=15)
    assert rel.count.sum() == 2 and np.isnan(rel.conf[5]) and rel.count[0] == 1 and rel.count[14] == 1


def test_auroc_with_ties_hand_value_and_average_precision():
    s = [0.9, 0.5, 0.5, 0.3, 0.5]
    pos = [1, 1, 0, 0, 0]
    # pairs: 0.9 beats 3 negatives -> 3; 0.5 vs (0.5, 0.3, 0.5) -> ½ + 1 + ½ = 2 -> 5/6
    assert auroc(s, pos) == pytest.approx(5 / 6)
    # thresholds 0.9: P 1, R ½; 0.5 (tie group enters at once): TP 2, FP 2 -> P ½, R 1; 0.3: ΔR 0
    # AP = ½·1 + ½·½ = 0.75
    assert average_precision(s, pos) == pytest.approx(0.75)
    assert math.isnan(auroc([0.1, 0.2], [0, 0])) and math.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_auroc_bad_uses_p_bad_as_score():
    # p_bad = (0.7, 0.2, 0.1, 0.5); one bad (0.7) above all three others -> 1
    assert auroc_bad(PROBS, Y) == 1.0
    assert auroc_bad([0.3, 0.8, 0.9, 0.5], Y) == 1.0
    assert auprc_bad(PROBS, Y) == 1.0
    # bad item ranked second of four by p_bad: AUROC 2/3, AP = 1/2
    assert auroc_bad([0.6, 0.8, 0.9, 0.5], Y) == pytest.approx(2 / 3)
    assert auprc_bad([0.6, 0.8, 0.9, 0.5], Y) == pytest.approx(0.5)


def _auroc_pairs(s, pos):
    ps = [a for a, p in zip(s, pos, strict=True) if p]
    ns = [a for a, p in zip(s, pos, strict=True) if not p]
    tot = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in ps for b in ns)
    return tot / (len(ps) * len(ns))


def test_auroc_matches_pair_enumeration():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(2, 30))
        s = rng.integers(0, 6, n).astype(float)  # many ties
        pos = rng.integers(0, 2, n)
        if pos.min() == pos.max():
            continue
        assert auroc(s, pos) == pytest.approx(_auroc_pairs(s.tolist(), pos.tolist()), abs=1e-12)


def test_aurc_and_selective_risk_hand_value():
    # p_good (0.9, 0.8, 0.8, 0.3), b = (0, 1, 0, 1). Sorted: 0.9 (b 0), tie {0.8: 1, 0} (rate ½ each), 0.3 (1)
    # cumulative bad (0, ½, 1, 2) -> risk (0, 1/4, 1/3, 1/2); AURC = (13/12) / 4 = 13/48
    pg, y = [0.9, 0.8, 0.8, 0.3], [2, 0, 1, 0]
    cov, risk = risk_coverage(pg, y)
    np.testing.assert_allclose(cov, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0, 1 / 4, 1 / 3, 1 / 2])
    assert aurc(pg, y) == pytest.approx(13 / 48)
    assert selective_risk(pg, y, 0.5) == pytest.approx(0.25)
    assert selective_risk(pg, y, 0.6) == pytest.approx(1 / 3)  # ⌈2.4⌉ = 3
    assert selective_risk(pg, y, 1.0) == pytest.approx(0.5)
    assert selective_risk(np.linspace(1, 0, 10), [0] * 3 + [2] * 7, 0.3) == 1.0  # ⌈0.3·10⌉ = 3, not 4
    with pytest.raises(MetricInputError, match="coverage"):
        selective_risk(pg, y, 0.0)


def _aurc_brute(pg, b):
    """Average over every ordering consistent with 'p_good descending' of (1/n) Σ_k (1/k) Σ_{j≤k} b."""
    n = len(pg)
    vals = []
    for perm in itertools.permutations(range(n)):
        if any(pg[perm[i]] < pg[perm[i + 1]] for i in range(n - 1)):
            continue
        tot = 0.0
        for k in range(1, n + 1):
            tot += sum(b[perm[j]] for j in range(k)) / k
        vals.append(tot / n)
    return sum(vals) / len(vals)


def test_aurc_matches_direct_loops_including_ties():
    rng = np.random.default_rng(1)
    for _ in range(25):
        n = int(rng.integers(1, 7))
        pg = (rng.integers(0, 4, n) / 4).tolist()  # coarse grid -> ties
        y = rng.integers(0, 3, n).tolist()
        b = [int(v == 0) for v in y]
        assert aurc(pg, y) == pytest.approx(_aurc_brute(pg, b), abs=1e-12)


def test_aurc_is_order_invariant():
    rng = np.random.default_rng(2)
    pg = rng.integers(0, 3, 50) / 2
    y = rng.integers(0, 3, 50)
    perm = rng.permutation(50)
    assert aurc(pg, y) == pytest.approx(aurc(pg[perm], y[perm]), abs=1e-12)


def test_prob_summary_keys():
    s = prob_summary(PROBS, Y, n_bins=2)
    assert s["ece"] == pytest.approx(0.125) and s["ece_top_label"] == pytest.approx(0.175)
    assert "brier_multiclass" not in prob_summary(PROBS[:, 1] + PROBS[:, 2], Y)


@pytest.mark.parametrize(
    ("probs", "y", "match"),
    [
        ([[0.5, 0.4, 0.0]], [0], "sums to"),
        ([[0.5, 0.5]], [0], "shape"),
        ([0.5, 1.2], [0, 1], r"\[0, 1\]"),
        ([0.5, float("nan")], [0, 1], "NaN"),
        ([], [], "empty"),
        ([0.5, 0.5], [0], "differ in length"),
    ],
)
def test_prob_input_errors(probs, y, match):
    with pytest.raises(ValueError, match=match):
        brier_binary(probs, y)


def test_bins_must_be_positive_int():
    with pytest.raises(MetricInputError, match="n_bins"):
        ece_binary(PROBS, Y, n_bins=0)


# --- properties -----------------------------------------------------------------------------------------------

_scored = st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=2, max_size=40).filter(
    lambda xs: len({p for _, p in xs}) == 2
)


@settings(max_examples=60, deadline=None)
@given(_scored)
def test_auroc_invariant_to_monotone_transforms(xs):
    s = np.array([v for v, _ in xs], dtype=float)
    pos = np.array([p for _, p in xs])
    a = auroc(s, pos)
    for f in (lambda v: 3 * v + 1, lambda v: v**3, lambda v: np.exp(v / 4)):
        assert auroc(f(s), pos) == pytest.approx(a, abs=1e-12)
    assert a + auroc(-s, pos) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 8), st.integers(0, 8)), min_size=1, max_size=12), st.integers(1, 20))
def test_ece_zero_for_perfectly_calibrated_groups(groups, n_bins):
    # each group: m items, all with confidence j/m and exactly j successes -> acc = conf in every bin
    conf, out = [], []
    for m, j in groups:
        j = min(j, m)
        conf += [j / m] * m
        out += [1.0] * j + [0.0] * (m - j)
    assert ece_from_bins(reliability_bins(conf, out, n_bins)) < 1e-12
    assert ece_binary(conf, [2 if o else 0 for o in out], n_bins) < 1e-12
