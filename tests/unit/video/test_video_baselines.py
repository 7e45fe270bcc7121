"""The baseline allocators by hand, their budget properties, and the token accounting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.core.errors import ConfigError
from thrifty.video.alloc_baselines import settle
from thrifty.video.allocate import allocate, ata
from thrifty.video.budget import account, allocation_stats, evidence_recall, gini


def test_uniform_and_topk_by_hand():
    assert allocate([0.1, 0.9, 0.5], 64, rule="uniform").tolist() == [21, 21, 21]  # ⌊64/3⌋
    assert allocate([0.1, 0.9, 0.5], 8192, rule="uniform").tolist() == [128] * 3  # capped at M
    assert allocate([0.1] * 5, 3, rule="uniform").tolist() == [0] * 5  # N > B
    # spread: the same when N divides B; otherwise the remainder goes to evenly spaced segments ⌊(j + ½)·N/R⌋
    assert allocate([0.1, 0.9, 0.5], 63, rule="uniform_spread").tolist() == [21, 21, 21]
    assert allocate([0.9] * 8, 4, rule="uniform_spread").tolist() == [0, 1, 0, 1, 0, 1, 0, 1]  # 1, 3, 5, 7
    assert allocate([0.9] * 5, 7, rule="uniform_spread").tolist() == [1, 2, 1, 2, 1]  # R = 2: ⌊1.25⌋, ⌊3.75⌋
    assert allocate([0.1] * 3, 500, 8, 1, rule="uniform_spread").tolist() == [8, 8, 8]  # capped at M
    # ⌊200/128⌋ = 1 segment at 128 (the 0.9); the 72 left go to the next best (0.5) unless remainder is off
    assert allocate([0.1, 0.9, 0.5], 200, rule="topk_no_anchor").tolist() == [0, 128, 72]
    assert allocate([0.1, 0.9, 0.5], 200, rule="topk_no_anchor", remainder=False).tolist() == [0, 128, 0]


def test_softmax_by_hand():
    # τ = 1: w = [1, e] / (1 + e) = [0.2689, 0.7311]; ⌊w·100⌋ = [26, 73] (Σ 99); 1 more to the larger weight
    assert allocate([0, 1], 100, rule="softmax", tau=1.0).tolist() == [26, 74]
    # τ = 0.1: w ≈ [4.5e-5, 0.99995] → [0, 99], clamped to [4, 128] → [4, 99] (Σ 103); the 3 extra come back
    # from the lowest weight still above k_min, i.e. segment 1 → [4, 96]
    assert allocate([0, 1], 100, rule="softmax", tau=0.1).tolist() == [4, 96]


def test_bolt_by_hand():
    # u = [0, 1, 0.5, 1], p = [0, 0.4, 0.2, 0.4], cdf = [0, 0.4, 0.6, 1]; 4 quantiles linspace(0.25, 0.75, 4)
    # = [0.25, 0.417, 0.583, 0.75] land in segments [1, 2, 2, 3] → draws [0, 1, 2, 1] → tokens ⌊d/4·100⌋
    assert allocate([0, 1, 0.5, 1], 100, rule="bolt", draws=4).tolist() == [0, 25, 50, 25]
    # α = 2 sharpens: p ∝ [0, 1, 0.25, 1] → cdf [0, 0.444, 0.556, 1] → picks [1, 1, 3, 3]: the middle
    # segment gets no draw at all → [0, 50, 0, 50]
    assert allocate([0, 1, 0.5, 1], 100, rule="bolt", draws=4, alpha=2.0).tolist() == [0, 50, 0, 50]


def test_aks_judge_and_split_by_hand():
    # N = 8, M = 16, k_min = 2, B = 16 + 2·14 = 44 → room for K = 2 segments at M
    r = [0.9, 0.8, 0, 0, 0, 0, 0, 0]
    # t1 = 0.5: mean(top 2) − mean = 0.85 − 0.2125 = 0.6375 > 0.5 → keep the bin whole: segments 0 and 1
    assert allocate(r, 44, 16, 2, rule="aks", t1=0.5).tolist() == [16, 16, 2, 2, 2, 2, 2, 2]
    # t1 = 0.8: 0.6375 ≤ 0.8 → halve; each half picks 1: left → 0 (0.9), right (all 0) → its first, 4
    assert allocate(r, 44, 16, 2, rule="aks", t1=0.8).tolist() == [16, 2, 2, 2, 16, 2, 2, 2]
    assert allocate(r, 44, 16, 2, rule="aks", t1=0.8, max_depth=0).tolist() == [16, 16, 2, 2, 2, 2, 2, 2]


def test_random_and_oracle():
    r = np.array([0.1, 0.9, 0.5, 0.3])
    a = allocate(r, 200, rule="random", rng=np.random.default_rng(3))
    b = allocate(r, 200, rule="random", rng=np.random.default_rng(3))
    assert a.tolist() == b.tolist() and sorted(a.tolist()) == sorted(ata(r, 200).tolist())
    with pytest.raises(ConfigError, match="Generator"):
        allocate(r, 200, rule="random")
    # the oracle runs ATA on the 0/1 mask: u = mask → [4, 128, 4, 4]
    assert allocate(r, 8192, rule="oracle", relevance=[0, 1, 0, 0]).tolist() == [4, 128, 4, 4]
    assert allocate(r, 8192, rule="oracle", relevance=[0, 1, 0, 0], normalize="absolute").tolist() == [4, 128, 4, 4]
    with pytest.raises(ConfigError, match="relevance"):
        allocate(r, 100, rule="oracle")
    with pytest.raises(ConfigError, match="0/1 mask"):
        allocate(r, 100, rule="oracle", relevance=[0, 0.5, 1, 0])


def test_settle_moves_to_the_target_inside_bounds():
    order = np.array([2, 0, 1])
    # one token per segment per round, best first: +2 → segments 2 and 0; −4 → all three, then segment 1
    assert settle(np.array([1, 1, 1]), 1, 4, 5, order).tolist() == [2, 1, 2]
    assert settle(np.array([4, 4, 4]), 1, 4, 8, order).tolist() == [3, 2, 3]
    assert settle(np.array([2, 1, 1]), 1, 4, 2, order).tolist() == [1, 1, 1]  # floored at lo
    assert settle(np.array([1, 1, 1]), 1, 4, 99, order).tolist() == [4, 4, 4]  # capped


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=40), st.integers(1, 5000),
       st.sampled_from([(8, 1), (32, 4), (128, 4)]))
def test_baselines_stay_within_budget_and_bounds(r, budget, mk):
    m, kmin = mk
    r = np.array(r)
    mask = (r >= np.median(r)).astype(int)
    outs = {"uniform": {}, "uniform_spread": {}, "topk_no_anchor": {}, "softmax": {}, "bolt": {}, "aks": {},
            "random": {"rng": np.random.default_rng(0)}, "oracle": {"relevance": mask}}
    for rule, opts in outs.items():
        k = allocate(r, budget, m, kmin, rule=rule, **opts)
        assert k.shape == r.shape and k.dtype == np.int64 and (k >= 0).all() and (k <= m).all(), rule
        if r.size <= budget:
            assert k.sum() <= budget, rule
    if r.size <= budget:  # the ones that settle to the budget spend all of it they can
        assert allocate(r, budget, m, kmin, rule="softmax").sum() == min(budget, r.size * m)
        assert allocate(r, budget, m, kmin, rule="topk_no_anchor").sum() == min(budget, r.size * m)
    assert allocate(r, budget, m, kmin, rule="uniform_spread").sum() == min(budget, r.size * m)  # even when N > B


def test_token_account_and_stats():
    acc = account([0, 5, 3], timestamp_tokens=6, text_tokens=10)
    assert (acc.visual, acc.timestamp, acc.text, acc.total) == (8, 12, 10, 30)  # the dropped one pays nothing
    assert account([2, 2], timestamp_tokens=[3, 5]).timestamp == 8
    assert acc.per_frame(16) == {"visual": 0.5, "timestamp": 0.75, "video": 1.25}
    st_ = allocation_stats([4, 66, 128, 35], budget=8192, k_min=4, m_max=128, n_frames=32)
    assert (st_.total, st_.theoretical_min, st_.theoretical_max, st_.at_k_min, st_.dropped) == (233, 16, 512, 1, 0)
    assert st_.tokens_per_frame == pytest.approx(233 / 32) and st_.utilisation == pytest.approx(233 / 8192)
    # gini of [0, 0, 0, 4]: 2·(4·4) / (4·4) − 5/4 = 0.75; equal values: 0
    assert gini([0, 0, 0, 4]) == pytest.approx(0.75) and gini([3, 3, 3]) == 0.0
    assert evidence_recall([4, 128, 4, 4], [0, 1, 0, 0]) == pytest.approx(128 / 140)
    assert evidence_recall([0, 0], [1, 0]) == 0.0
    for bad in (lambda: account([1.5, 2]), lambda: account([-1, 2]), lambda: evidence_recall([1, 2], [1]),
                lambda: acc.per_frame(0)):
        with pytest.raises(ConfigError):
            bad()
