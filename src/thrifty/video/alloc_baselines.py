"""Baseline token allocators to set beside ATA: uniform, top-k without anchors, softmax, BOLT- and AKS-style
frame selection adapted to segments, random permutation of ATA's counts, and ATA fed the ground truth.

Every one takes ``(scores, budget, m_max, k_min, **options)`` and returns int64 tokens per segment (pure numpy);
they are registered by name in ``allocate.ALLOCATORS``.
"""

from __future__ import annotations

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.video.allocate import ata, check_inputs, priority


def settle(k: np.ndarray, lo: int, hi: int, target: int, order: np.ndarray) -> np.ndarray:
    """Move Σk to ``target`` one token at a time inside [lo, hi]: add in ``order`` (best first), take away in
    reverse; stops early when every segment is at the bound."""
    k = k.copy()
    diff = target - int(k.sum())
    while diff > 0:
        room = order[k[order] < hi][:diff]
        if room.size == 0:
            break
        k[room] += 1
        diff -= room.size
    while diff < 0:
        rev = order[::-1]
        spare = rev[k[rev] > lo][:-diff]
        if spare.size == 0:
            break
        k[spare] -= 1
        diff += spare.size
    return k


def _guarded_k_min(n: int, budget: int, k_min: int) -> int:
    """ATA's guard: anchors shrink to ⌊B/N⌋ (at least 1) when N·k_min > B."""
    return max(1, budget // n) if n * k_min > budget else k_min


def uniform(scores, budget: int, m_max: int = 128, k_min: int = 4) -> np.ndarray:
    """k_i = min(M, ⌊B/N⌋) for every segment, whatever its score (0 when N > B)."""
    r = check_inputs(scores, budget, m_max, k_min)
    return np.full(r.size, min(m_max, budget // max(r.size, 1)), dtype=np.int64)


def uniform_spread(scores, budget: int, m_max: int = 128, k_min: int = 4) -> np.ndarray:
    """Query-blind and in budget: every segment gets ⌊B/N⌋ (capped at M), and the R = B − N·⌊B/N⌋ tokens left go
    one each to R segments spread evenly over time (segment ⌊(j + ½)·N/R⌋ for j < R). Equals ``uniform`` when N
    divides B; when B < N it keeps B evenly spaced segments instead of none (our baseline, not Tempo's)."""
    r = check_inputs(scores, budget, m_max, k_min)
    n = r.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    base = min(m_max, budget // n)
    k = np.full(n, base, dtype=np.int64)
    extra = min(budget - base * n, n) if base < m_max else 0
    if extra > 0:
        k[np.floor((np.arange(extra) + 0.5) * n / extra).astype(np.int64)] += 1
    return k


def topk_no_anchor(scores, budget: int, m_max: int = 128, k_min: int = 4, remainder: bool = True) -> np.ndarray:
    """The ⌊B/M⌋ best-scored segments get M tokens, the rest 0 (dropped with their timestamps).

    ``remainder`` (our default): the B − ⌊B/M⌋·M tokens left over go to the next-best segment, so the
    baseline spends the same budget as the others (otherwise B < M would keep nothing).
    """
    r = check_inputs(scores, budget, m_max, k_min)
    k = np.zeros(r.size, dtype=np.int64)
    order = priority(r, r)
    top = budget // m_max
    k[order[:top]] = m_max
    if remainder and top < r.size:
        k[order[top]] = budget - top * m_max
    return k


def softmax(scores, budget: int, m_max: int = 128, k_min: int = 4, tau: float = 0.1) -> np.ndarray:
    """k_i ∝ softmax(r/τ)·B, floored, clamped to [k_min, M], then settled to min(B, N·M) by weight."""
    r = check_inputs(scores, budget, m_max, k_min)
    if r.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not tau > 0:
        raise ConfigError(f"softmax temperature tau must be positive, got {tau}")
    lo = _guarded_k_min(r.size, budget, k_min)
    z = np.exp((r - r.max()) / tau)
    w = z / z.sum()
    k = np.clip(np.floor(w * budget).astype(np.int64), lo, m_max)
    return settle(k, lo, m_max, min(budget, r.size * m_max), priority(w, r))


def bolt(scores, budget: int, m_max: int = 128, k_min: int = 4, alpha: float = 1.0,
         draws: int | None = None) -> np.ndarray:
    """BOLT-style inverse transform sampling, at segment level.

    Min–max normalise, raise to the power α, normalise into a CDF, take D draws at the quantiles
    linspace(1/D, 1 − 1/D, D) (the first segment whose CDF reaches q); tokens ∝ draws landing in a segment,
    capped at M, settled to the budget among segments with draws. No anchors: segments without draws get 0.
    Our defaults: α = 1, D = N.
    """
    r = check_inputs(scores, budget, m_max, k_min)
    n = r.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    d = n if draws is None else int(draws)
    if d < 1 or not alpha > 0:
        raise ConfigError(f"bolt needs draws >= 1 and alpha > 0, got draws={d}, alpha={alpha}")
    spread = r.max() - r.min()
    u = (r - r.min()) / spread if spread > 0 else np.ones(n)
    p = u**alpha
    p = p / p.sum() if p.sum() > 0 else np.full(n, 1.0 / n)
    cdf = np.cumsum(p)
    q = np.linspace(1.0 / d, 1.0 - 1.0 / d, d) if d > 1 else np.array([0.5])
    picks = np.minimum(np.searchsorted(cdf, q, side="left"), n - 1)
    counts = np.bincount(picks, minlength=n)
    k = np.minimum(np.floor(counts / d * budget).astype(np.int64), m_max)
    chosen = np.flatnonzero(counts > 0)
    order = chosen[priority(counts[chosen].astype(np.float64), r[chosen])]
    return settle(k, 1, m_max, min(budget, chosen.size * m_max), order)


def aks(scores, budget: int, m_max: int = 128, k_min: int = 4, t1: float = 0.8, max_depth: int = 5,
        n_select: int | None = None) -> np.ndarray:
    """AKS-style judge-and-split, at segment level: selected segments get M, the others k_min.

    K = n_select or the most segments that fit at M beside k_min anchors. A bin keeps its top K/2^d
    segments directly when mean(top) − mean(bin) > t1 or at depth ``max_depth``; otherwise it is halved and
    each half picks half the quota (the left half takes the odd one).
    """
    r = check_inputs(scores, budget, m_max, k_min)
    n = r.size
    lo = _guarded_k_min(n, budget, k_min) if n else k_min
    if n == 0 or m_max == lo:
        return np.full(n, lo, dtype=np.int64)
    room = max(budget - n * lo, 0) // (m_max - lo)
    quota = min(n, room if n_select is None else min(int(n_select), room))
    if max_depth < 0:
        raise ConfigError(f"max_depth must be >= 0, got {max_depth}")

    def judge(a: int, b: int, want: int, depth: int) -> list[int]:
        want = min(want, b - a)
        if want <= 0:
            return []
        seg = r[a:b]
        top = priority(seg, seg)[:want]
        if depth >= max_depth or b - a < 2 or seg[top].mean() - seg.mean() > t1:
            return [a + int(i) for i in top]
        mid = (a + b) // 2
        return judge(a, mid, (want + 1) // 2, depth + 1) + judge(mid, b, want // 2, depth + 1)

    k = np.full(n, lo, dtype=np.int64)
    k[judge(0, n, quota, 0)] = m_max
    return k


def random(scores, budget: int, m_max: int = 128, k_min: int = 4, rng: np.random.Generator | None = None,
           **ata_options) -> np.ndarray:
    """ATA's counts for these scores, randomly permuted across segments (needs an explicit ``rng``)."""
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("the random allocator needs rng=numpy.random.Generator (no global randomness)")
    return rng.permutation(ata(scores, budget, m_max, k_min, **ata_options))


def oracle(scores, budget: int, m_max: int = 128, k_min: int = 4, relevance=None, **ata_options) -> np.ndarray:
    """ATA fed the ground-truth relevance mask (1 = the segment holds evidence) instead of the scores."""
    r = check_inputs(scores, budget, m_max, k_min)
    if relevance is None:
        raise ConfigError("the oracle allocator needs relevance= the ground-truth 0/1 mask per segment")
    mask = np.asarray(relevance, dtype=np.float64)
    if mask.shape != r.shape or not np.isin(mask, (0.0, 1.0)).all():
        raise ConfigError(f"relevance must be a 0/1 mask with one entry per segment ({r.size}), got {mask.shape}")
    return ata(mask, budget, m_max, k_min, **ata_options)
