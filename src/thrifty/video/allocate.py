"""Adaptive Token Allocation: Tempo's exact rule, switchable fixes for its quirks, and the allocator registry.

Faithful rule (Tempo spec §6), scores r_1..r_N, visual budget B, k_max = M:
  1. guard: if N·k_min > B then k_min ← max(1, ⌊B/N⌋);
  2. flat: if max r − min r < 1e-8, k_i = min(M, ⌊B/N⌋);
  3. u_i = (r_i − min r) / (max r − min r);
  4. k_i = k_min + ⌊u_i · (M − k_min)⌋;
  5. if Σk > B: E = B − N·k_min, w = u / Σu, k_i = k_min + ⌊w_i·E⌋, the E − Σ⌊w_i·E⌋ leftover tokens one each
     to the highest weights (ties: higher raw score, then lower index);
  6. clamp to [k_min, M] (also after the flat branch).
Options (spec §7), all off by default: ``normalize`` (Q1), ``fill_budget`` (Q2), ``flat_eps`` (Q3),
``overflow`` (Q4/Q5), ``count_timestamps`` (Q6). Every allocator takes ``(scores, budget, m_max, k_min, **opts)``
and returns int64 tokens per segment; ``allocate(..., rule=NAME)`` picks one from ``ALLOCATORS``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from thrifty.core.errors import ConfigError, check_choice
from thrifty.core.registry import Registry

NORMALIZE = ("minmax", "absolute", "rank", "softmax")
FILL = ("off", "water", "relevance")
OVERFLOW = ("faithful", "pool", "drop_lowest", "raise")


@dataclass(frozen=True)
class ATAOptions:
    """ATA switches; the defaults are Tempo's behaviour."""

    normalize: str = "minmax"  # Q1: minmax (faithful) | absolute (u = r ∈ [0, 1]) | rank | softmax (τ)
    tau: float = 0.1  # softmax temperature: u_i = exp((r_i − max r) / τ)
    fill_budget: str = "off"  # Q2: off | water (raise the lowest first, cap M) | relevance (top up the best first)
    flat_eps: float = 1e-8  # Q3: relative modes treat a score range below this as flat
    overflow: str = "faithful"  # Q4: when N segments (with timestamps) cannot fit B: faithful | pool | drop_lowest | raise
    count_timestamps: bool = False  # Q6: timestamp tokens are paid out of B
    timestamp_tokens: int = 6  # tokens per rendered timestamp when they are counted (set from the tokenizer)

    def __post_init__(self) -> None:
        fill = {False: "off", True: "water"}.get(self.fill_budget, self.fill_budget)  # type: ignore[call-overload]
        object.__setattr__(self, "fill_budget", fill)
        for name, allowed in (("normalize", NORMALIZE), ("fill_budget", FILL), ("overflow", OVERFLOW)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"ATA {name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if not self.tau > 0:
            raise ConfigError(f"softmax temperature tau must be positive, got {self.tau}")
        if not self.flat_eps >= 0:
            raise ConfigError(f"flat_eps must be >= 0, got {self.flat_eps}")
        if self.timestamp_tokens < 0:
            raise ConfigError(f"timestamp_tokens must be >= 0, got {self.timestamp_tokens}")


PRESETS = {
    "faithful": ATAOptions(),
    "fixed": ATAOptions(normalize="absolute", fill_budget="water", overflow="drop_lowest", count_timestamps=True),
}


@dataclass(frozen=True)
class ATAResult:
    """Tokens per segment plus what the rule did (for printing and tests)."""

    k: np.ndarray
    branch: str  # flat | linear | protect (+ "+pool" / "+drop" when overflow handling ran)
    k_min: int  # the anchor size after the guard
    visual_budget: int  # B after timestamps were paid (equal to B unless count_timestamps)


def check_inputs(scores, budget: int, m_max: int, k_min: int) -> np.ndarray:
    """Validate the common allocator arguments; scores as float64 (one-line ConfigError otherwise)."""
    r = np.asarray(scores, dtype=np.float64)
    if r.ndim != 1:
        raise ConfigError(f"scores must be one number per segment (1-D), got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ConfigError("scores must be finite numbers")
    if int(budget) != budget or budget < 1:
        raise ConfigError(f"budget must be a positive whole number of tokens, got {budget}")
    if int(m_max) != m_max or m_max < 1:
        raise ConfigError(f"m_max must be a positive whole number of tokens, got {m_max}")
    if int(k_min) != k_min or not 1 <= k_min <= m_max:
        raise ConfigError(f"k_min must be a whole number in [1, m_max={m_max}], got {k_min}")
    return r


def resolve_options(preset: str = "faithful", **overrides) -> ATAOptions:
    """A preset with fields overridden; unknown names are one-line errors."""
    check_choice("ATA preset", preset, PRESETS)
    fields = {f.name for f in dataclasses.fields(ATAOptions)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown ATA option(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    return dataclasses.replace(PRESETS[preset], **overrides)


def priority(primary: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Segment indices, best first: larger ``primary``, then larger raw score, then lower index (stable)."""
    return np.lexsort((np.arange(primary.size), -scores, -primary))


def pool_groups(n: int, n_groups: int) -> list[tuple[int, int]]:
    """Split n adjacent segments into ``n_groups`` contiguous [start, stop) runs, earlier runs one longer."""
    size, extra = divmod(n, n_groups)
    bounds, start = [], 0
    for g in range(n_groups):
        stop = start + size + (1 if g < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def normalise(r: np.ndarray, how: str, tau: float = 0.1) -> np.ndarray:
    """Scores → u ∈ [0, 1] (minmax needs a non-flat r; absolute needs r ∈ [0, 1])."""
    if how == "minmax":
        return (r - r.min()) / (r.max() - r.min())
    if how == "absolute":
        if r.min() < 0 or r.max() > 1:
            raise ConfigError("normalize=absolute needs scores in [0, 1] (probabilities of relevance)")
        return r.copy()
    if how == "rank":  # average rank of ties, scaled to [0, 1]
        values, inverse, counts = np.unique(r, return_inverse=True, return_counts=True)
        avg = np.cumsum(counts) - (counts + 1) / 2.0
        return avg[inverse] / max(r.size - 1, 1) if values.size > 1 else np.ones_like(r)
    return np.exp((r - r.max()) / tau)  # softmax rescaled so the best segment has u = 1


def _fill(k: np.ndarray, r: np.ndarray, budget: int, m_max: int, how: str) -> np.ndarray:
    """Spend the unused budget (Q2) without passing M: ``water`` raises the lowest segments to a common level,
    ``relevance`` tops up segments to M in order of score."""
    spare = budget - int(k.sum())
    if spare <= 0 or how == "off":
        return k
    k = k.copy()
    if how == "relevance":
        for i in priority(r, r):
            add = min(spare, m_max - int(k[i]))
            k[i] += add
            spare -= add
            if spare == 0:
                break
        return k
    lo, hi = 0, m_max  # largest level λ with Σ max(k, λ) <= budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int(np.maximum(k, mid).sum()) <= budget:
            lo = mid
        else:
            hi = mid - 1
    k = np.maximum(k, lo)
    spare = budget - int(k.sum())
    if spare > 0 and lo < m_max:
        at_level = np.flatnonzero(k == lo)
        k[at_level[priority(r[at_level], r[at_level])[:spare]]] += 1
    return k


def _core(r: np.ndarray, budget: int, m_max: int, k_min: int, opts: ATAOptions) -> tuple[np.ndarray, str, int]:
    """Steps 1–6 (+ fill) on N >= 1 scores; ``budget`` may be below N (the faithful overflow)."""
    n = r.size
    if n * k_min > budget:  # 1. guard
        k_min = max(1, budget // n)
    relative = opts.normalize in ("minmax", "rank")
    spread = r.max() - r.min()
    if relative and (spread < opts.flat_eps or spread == 0):  # 2. flat
        k = np.full(n, min(m_max, budget // n), dtype=np.int64)
        branch = "flat"
    else:
        u = normalise(r, opts.normalize, opts.tau)  # 3.
        k = k_min + np.floor(u * (m_max - k_min)).astype(np.int64)  # 4.
        branch = "linear"
        if int(k.sum()) > budget:  # 5. budget protection
            spare = budget - n * k_min
            total = float(u.sum())
            w = u / total if total > 1e-12 else np.full(n, 1.0 / n)
            base = np.floor(w * spare).astype(np.int64)
            left = spare - int(base.sum())
            order = priority(w, r)
            if left > 0:
                base[order[:left]] += 1
            elif left < 0:  # float rounding only: take back from the lowest weights
                base[order[::-1][:-left]] -= 1
            k = k_min + base
            branch = "protect"
    k = np.clip(k, k_min, m_max)  # 6. clamp
    return _fill(k, r, budget, m_max, opts.fill_budget), branch, k_min


def ata_detail(scores, budget: int, m_max: int = 128, k_min: int = 4, *, preset: str = "faithful",
               **options) -> ATAResult:
    """Tempo's ATA (with any fixes switched on) and what it did."""
    r = check_inputs(scores, budget, m_max, k_min)
    opts = resolve_options(preset, **options)
    n = r.size
    if n == 0:
        return ATAResult(np.zeros(0, dtype=np.int64), "empty", k_min, budget)
    ts = opts.timestamp_tokens if opts.count_timestamps else 0
    if n * (1 + ts) <= budget or opts.overflow == "faithful":
        k, branch, kmin = _core(r, budget - n * ts, m_max, k_min, opts)
        return ATAResult(k, branch, kmin, budget - n * ts)
    if opts.overflow == "raise":
        raise ConfigError(f"{n} segments need at least {n * (1 + ts)} tokens (one each"
                          f"{f' plus {ts} per timestamp' if ts else ''}) but the budget is {budget}")
    kept = budget // (1 + ts)
    if kept < 1:
        raise ConfigError(f"budget {budget} cannot hold even one segment with its {ts}-token timestamp")
    k = np.zeros(n, dtype=np.int64)
    if opts.overflow == "pool":  # merge adjacent segments; a group's tokens sit at its first segment
        groups = pool_groups(n, kept)
        starts = np.array([s for s, _ in groups])
        sub, branch, kmin = _core(np.array([r[s:e].max() for s, e in groups]), budget - kept * ts, m_max, k_min,
                                  opts)
        k[starts] = sub
        return ATAResult(k, branch + "+pool", kmin, budget - kept * ts)
    keep = np.sort(priority(r, r)[:kept])  # drop_lowest: the best-scored segments keep their anchors
    k[keep], branch, kmin = _core(r[keep], budget - kept * ts, m_max, k_min, opts)
    return ATAResult(k, branch + "+drop", kmin, budget - kept * ts)


def ata(scores, budget: int, m_max: int = 128, k_min: int = 4, *, preset: str = "faithful",
        **options) -> np.ndarray:
    """Tokens per segment by Tempo's ATA; ``preset="faithful"`` with no options is the released rule."""
    return ata_detail(scores, budget, m_max, k_min, preset=preset, **options).k


Allocator = Callable[..., np.ndarray]
ALLOCATORS: Registry[Allocator] = Registry("allocator")
ALLOCATORS.add("ata", ata)
for _name in ("uniform", "uniform_spread", "topk_no_anchor", "softmax", "bolt", "aks", "random", "oracle"):
    ALLOCATORS.add(_name, f"thrifty.video.alloc_baselines:{_name}")


def allocate(scores, budget: int, m_max: int = 128, k_min: int = 4, rule: str = "ata", **options) -> np.ndarray:
    """Tokens per segment by the allocator named ``rule`` (pure numpy; int64 array, one entry per score)."""
    fn = ALLOCATORS.get(rule)
    params = inspect.signature(fn).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            known = [p for p in params if p not in ("scores", "budget", "m_max", "k_min")]
            raise ConfigError(f"allocator {rule!r} takes no option(s) {', '.join(unknown)}; "
                              f"its options: {', '.join(known) or '(none)'}")
    return fn(scores, budget, m_max, k_min, **options)
