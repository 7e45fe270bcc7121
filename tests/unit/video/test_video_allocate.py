"""Tempo's ATA rule against hand-computed cases, its fix options, and property tests of its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.core.errors import ConfigError
from thrifty.video.allocate import ALLOCATORS, allocate, ata, ata_detail, pool_groups

# Golden cases (M = 128, k_min = 4 unless noted), worked by hand from the rule:
GOLDEN = [
    # u = r (min 0, max 1); k = 4 + ⌊u·124⌋ = [4, 4 + 62, 4 + 124, 4 + 31] = [4, 66, 128, 35], Σ 233 ≤ 8192
    ([0, 0.5, 1, 0.25], 8192, 128, 4, [4, 66, 128, 35], "linear"),
    # linear Σ 233 > 200 → E = 200 − 16 = 184, Σu = 1.75, w·E = [0, 52.57, 105.14, 26.29] → floors [0, 52, 105, 26]
    # (Σ 183), 1 leftover to the largest w (segment 2) → [4, 56, 110, 30], Σ 200
    ([0, 0.5, 1, 0.25], 200, 128, 4, [4, 56, 110, 30], "protect"),
    # flat: min(128, ⌊100/4⌋) = 25 each; and min(128, ⌊8192/4⌋) = 128 each
    ([0.75] * 4, 100, 128, 4, [25] * 4, "flat"),
    ([0.75] * 4, 8192, 128, 4, [128] * 4, "flat"),
    # guard: 3·4 = 12 > 10 → k_min = ⌊10/3⌋ = 3; linear [3, 128, 3 + ⌊0.25·125⌋ = 34] > 10 → E = 10 − 9 = 1,
    # Σu = 1.25, w·E = [0, 0.8, 0.2] → floors 0, leftover 1 to segment 1 → [3, 4, 3]
    ([0, 1, 0.25], 10, 128, 4, [3, 4, 3], "protect"),
    # relative scale: min 0.5, max 0.875 → u = [0, 1, 0, 1, 0.5] → [4, 128, 4, 128, 4 + 62]
    ([0.5, 0.875, 0.5, 0.875, 0.6875], 8192, 128, 4, [4, 128, 4, 128, 66], "linear"),
    # M = 32: k = 4 + ⌊u·28⌋ → [4, 4, 4, 32], Σ 44 ≤ 64
    ([0, 0, 0, 1], 64, 32, 4, [4, 4, 4, 32], "linear"),
    # N = 5 > B = 3: k_min = max(1, ⌊3/5⌋) = 1; linear [1, 2, 4, 6, 8] > 3 → E = 3 − 5 = −2, w = u/2.5,
    # w·E = [0, −0.2, −0.4, −0.6, −0.8] → floors [0, −1, −1, −1, −1] (Σ −4), leftover 2 to segments 4 and 3
    # → [1, 0, 0, 1, 1]; the clamp lifts all to 1 → Σ 5 > B: the faithful rule breaks the budget
    ([0, 0.25, 0.5, 0.75, 1], 3, 8, 4, [1, 1, 1, 1, 1], "protect"),
]


@pytest.mark.parametrize(("r", "budget", "m", "kmin", "want", "branch"), GOLDEN)
def test_golden_cases_match_the_reference_rule(r, budget, m, kmin, want, branch):
    res = ata_detail(r, budget, m, kmin)
    assert res.k.tolist() == want and res.branch == branch
    assert allocate(r, budget, m, kmin, rule="ata").tolist() == want  # the contract's entry point
    assert res.k.dtype == np.int64


def test_float_floor_quirk_is_kept():
    # Q8: u_4 = (0.3 − 0.1) / 0.8 = 0.2499… in float64, so 4 + ⌊30.99…⌋ = 34, not the hand value 35
    assert ata([0.1, 0.5, 0.9, 0.3], 8192).tolist() == [4, 66, 128, 34]


def test_leftover_ties_go_to_the_lower_index():
    # linear [128, 4, 128] > 13 → E = 1, w = [0.5, 0, 0.5], floors 0; the tie goes to segment 0
    assert ata([1, 0, 1], 13).tolist() == [5, 4, 4]


def test_normalize_options_by_hand():
    # Q1 absolute: u = r → k = 4 + ⌊r·124⌋ = [4 + 74, 4 + 111] (0.6·124 = 74.4, 0.9·124 = 111.6)
    assert ata([0.6, 0.9], 8192, normalize="absolute").tolist() == [78, 115]
    assert ata([0.6, 0.9], 8192).tolist() == [4, 128]  # faithful starves the less relevant one
    # rank: values 0.1 < 0.2 = 0.2 < 0.3 → average ranks [3, 0, 1.5, 1.5] / 3 → u = [1, 0, 0.5, 0.5]
    assert ata([0.3, 0.1, 0.2, 0.2], 8192, normalize="rank").tolist() == [128, 4, 66, 66]
    # softmax τ = 1: u = exp(r − max) = [e^-1, 1]; 4 + ⌊0.3679·124⌋ = 4 + 45 = 49
    assert ata([0, 1], 8192, normalize="softmax", tau=1.0).tolist() == [49, 128]
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        ata([0.2, 1.5], 100, normalize="absolute")


def test_flat_scores_keep_their_level_in_absolute_mode():
    # Q3: the faithful flat branch gives ⌊B/N⌋ whatever the level; absolute gives k_min + ⌊r·124⌋
    assert ata([0.0] * 4, 256).tolist() == ata([1.0] * 4, 256).tolist() == [64] * 4
    assert ata([0.0] * 4, 256, normalize="absolute").tolist() == [4] * 4
    assert ata([1.0] * 4, 256, normalize="absolute").tolist() == [64] * 4  # linear 512 > 256: protected, uniform w


def test_fill_budget_by_hand():
    # faithful [4, 66, 128, 35] leaves 67 of 300. water: the largest level λ with Σ max(k, λ) ≤ 300 is 53
    # ([53, 66, 128, 53] = 300). relevance: top up by score: segment 1 to 128 (+62), then segment 3 +5 → 40
    assert ata([0, 0.5, 1, 0.25], 300, fill_budget="water").tolist() == [53, 66, 128, 53]
    assert ata([0, 0.5, 1, 0.25], 300, fill_budget=True).tolist() == [53, 66, 128, 53]
    assert ata([0, 0.5, 1, 0.25], 300, fill_budget="relevance").tolist() == [4, 128, 128, 40]
    # linear [4, 4 + ⌊0.124⌋, 128] = [4, 4, 128] (136); water: λ = 5 gives 138 ≤ 139, λ = 6 gives 140; the one
    # token left goes to the better-scored of the two at the level
    assert ata([0, 0.001, 1], 139, fill_budget="water").tolist() == [5, 6, 128]


def test_timestamps_paid_from_the_budget():
    # Q6: B' = 100 − 2·6 = 88; linear [4, 128] > 88 → E = 80, w = [0, 1] → [4, 84]; 88 + 12 = 100
    res = ata_detail([0, 1], 100, count_timestamps=True, timestamp_tokens=6)
    assert res.k.tolist() == [4, 84] and res.visual_budget == 88


def test_overflow_options():
    r = np.array([0.1, 0.9, 0.2, 0.3, 0.8, 0.4])
    assert ata(r, 4).sum() == 6  # faithful: one token each, budget broken
    with pytest.raises(ConfigError, match="need at least 6 tokens"):
        ata(r, 4, overflow="raise")
    # drop_lowest keeps the 4 best (0.9, 0.8, 0.4, 0.3) with 1 token each
    assert ata(r, 4, overflow="drop_lowest").tolist() == [0, 1, 0, 1, 1, 1]
    # pool: 6 segments into 4 groups [0, 2) [2, 4) [4, 5) [5, 6); a group's tokens sit at its first segment
    assert pool_groups(6, 4) == [(0, 2), (2, 4), (4, 5), (5, 6)]
    assert ata(r, 4, overflow="pool").tolist() == [1, 0, 1, 0, 1, 1]
    # with timestamps counted: each kept segment costs 1 + 2, so ⌊10/3⌋ = 3 keep; B' = 10 − 6 = 4
    res = ata_detail(r, 10, overflow="drop_lowest", count_timestamps=True, timestamp_tokens=2)
    assert res.k.tolist() == [0, 2, 0, 0, 1, 1] and res.visual_budget == 4
    with pytest.raises(ConfigError, match="cannot hold even one segment"):
        ata(r, 2, overflow="pool", count_timestamps=True, timestamp_tokens=6)


def test_presets_and_bad_options():
    assert ata([0, 1], 100, preset="fixed").tolist() == ata(
        [0, 1], 100, normalize="absolute", fill_budget="water", overflow="drop_lowest", count_timestamps=True).tolist()
    for bad in ({"normalize": "zscore"}, {"fill_budget": "all"}, {"overflow": "wrap"}, {"tau": 0.0},
                {"colour": 1}):
        with pytest.raises(ConfigError):
            ata([0, 1], 100, **bad)
    with pytest.raises(ConfigError, match="preset"):
        ata([0, 1], 100, preset="best")
    for args in (([[0, 1]], 10), ([0, np.nan], 10), ([0, 1], 0), ([0, 1], 10.5)):
        with pytest.raises(ConfigError):
            ata(*args)
    with pytest.raises(ConfigError, match="k_min"):
        ata([0, 1], 100, 8, 9)
    assert ata([], 100).tolist() == []


def test_registry_names_and_errors():
    assert set(ALLOCATORS.names()) == {"ata", "uniform", "uniform_spread", "topk_no_anchor", "softmax", "bolt", "aks", "random",
                                       "oracle"}
    with pytest.raises(ConfigError, match="unknown allocator"):
        allocate([0, 1], 10, rule="best")
    with pytest.raises(ConfigError, match="takes no option"):
        allocate([0, 1], 10, rule="uniform", tau=1.0)


# ---- properties ----------------------------------------------------------------------------------------
scores_st = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=48)
budget_st = st.one_of(st.integers(1, 64), st.integers(1, 6000))  # small budgets reach N > B
mk_st = st.sampled_from([(8, 1), (8, 4), (32, 1), (32, 4), (128, 4), (128, 16)])
FIXES = st.fixed_dictionaries({
    "normalize": st.sampled_from(["minmax", "absolute", "rank", "softmax"]),
    "fill_budget": st.sampled_from(["off", "water", "relevance"]),
    "overflow": st.sampled_from(["pool", "drop_lowest"]),
    "count_timestamps": st.booleans(),
    "timestamp_tokens": st.integers(0, 8),
})


@settings(max_examples=300, deadline=None)
@given(scores_st, budget_st, mk_st)
def test_faithful_invariants(r, budget, mk):
    m, kmin = mk
    r = np.array(r)
    res = ata_detail(r, budget, m, kmin)
    k, n = res.k, r.size
    assert res.k_min == (kmin if n * kmin <= budget else max(1, budget // n))
    assert ((k >= res.k_min) & (k <= m)).all()
    if res.branch == "linear":
        assert k.sum() <= budget
        assert k[np.argmin(r)] == res.k_min and k[np.argmax(r)] == m
    if res.branch == "protect" and n <= budget:
        assert k.sum() == budget  # exact, and the clamp at M never binds
    if n <= budget:
        assert k.sum() <= budget


@settings(max_examples=300, deadline=None)
@given(scores_st, budget_st, mk_st, FIXES)
def test_budget_never_exceeded_with_the_fixes_on(r, budget, mk, fixes):
    m, kmin = mk
    r = np.array(r)
    try:
        res = ata_detail(r, budget, m, kmin, **fixes)
    except ConfigError as exc:  # only when not even one segment with its timestamp fits
        assert fixes["count_timestamps"] and budget < 1 + fixes["timestamp_tokens"], exc
        return
    k = res.k
    ts = fixes["timestamp_tokens"] if fixes["count_timestamps"] else 0
    assert k.sum() + ts * (k > 0).sum() <= budget
    kept = k[k > 0]
    assert kept.size >= 1 and ((kept >= res.k_min) & (kept <= m)).all()
    if fixes["fill_budget"] != "off":  # the fill spends the whole visual budget unless every kept one is at M
        assert k.sum() == min(res.visual_budget, kept.size * m)


def _monotone(r: np.ndarray, k: np.ndarray) -> bool:
    """A strictly higher score never gets fewer tokens."""
    hi = r[:, None] > r[None, :]
    return not (hi & (k[:, None] < k[None, :])).any()


@settings(max_examples=200, deadline=None)
@given(scores_st, budget_st, mk_st, FIXES)
def test_monotone_in_relevance(r, budget, mk, fixes):
    m, kmin = mk
    r = np.array(r)
    assert _monotone(r, ata(r, budget, m, kmin))
    if fixes["overflow"] == "pool":  # pooled groups sit at their first segment: not a per-segment ranking
        fixes = {**fixes, "overflow": "drop_lowest"}
    if not (fixes["count_timestamps"] and budget < 1 + fixes["timestamp_tokens"]):
        assert _monotone(r, ata(r, budget, m, kmin, **fixes))
    for rule in ("uniform", "topk_no_anchor", "softmax"):
        assert _monotone(r, allocate(r, budget, m, kmin, rule=rule))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 16), min_size=2, max_size=24), budget_st, mk_st)
def test_invariant_to_positive_affine_changes(ints, budget, mk):
    r = np.array(ints) / 16.0  # dyadic values: the affine map below is exact in float64
    assert ata(r, budget, *mk).tolist() == ata(4.0 * r - 3.0, budget, *mk).tolist()
