"""Token accounting for an allocation: visual, timestamp and text tokens kept apart, and allocation statistics.

A segment given 0 visual tokens is dropped together with its timestamp; every kept segment pays its timestamp.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from thrifty.core.errors import ConfigError


@dataclass(frozen=True)
class TokenAccount:
    """Context tokens of one assembled video prompt, by kind."""

    visual: int
    timestamp: int
    text: int

    @property
    def total(self) -> int:
        return self.visual + self.timestamp + self.text

    def per_frame(self, n_frames: int) -> dict[str, float]:
        """Visual, timestamp and total video (visual + timestamp) tokens per sampled frame."""
        if n_frames < 1:
            raise ConfigError(f"tokens per frame needs at least one frame, got {n_frames}")
        return {"visual": self.visual / n_frames, "timestamp": self.timestamp / n_frames,
                "video": (self.visual + self.timestamp) / n_frames}


@dataclass(frozen=True)
class AllocationStats:
    """What an allocation spent against what it could have (Tempo spec §9)."""

    n_segments: int
    total: int  # Σk
    budget: int
    utilisation: float  # Σk / B
    theoretical_min: int  # N·k_min
    theoretical_max: int  # N·M
    tokens_per_frame: float  # Σk / sampled frames
    k_lowest: int
    k_highest: int
    gini: float
    at_k_min: int  # segments left at the anchor size
    dropped: int  # segments with 0 tokens

    def as_dict(self) -> dict:
        return asdict(self)


def _counts(k) -> np.ndarray:
    arr = np.asarray(k)
    if arr.ndim != 1 or (arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0)):
        raise ConfigError("an allocation must be a 1-D array of non-negative whole token counts")
    return arr.astype(np.int64)


def gini(values) -> float:
    """Gini coefficient of non-negative values (0 = all equal; 0 when all are zero)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, s = x.size, x.sum()
    if n == 0 or s == 0:
        return 0.0
    return float(2.0 * np.sum(np.arange(1, n + 1) * x) / (n * s) - (n + 1) / n)


def account(k, timestamp_tokens=0, text_tokens: int = 0) -> TokenAccount:
    """Visual Σk; timestamps only for kept segments (an int per segment, or one int for all); text as given."""
    k = _counts(k)
    ts = np.broadcast_to(np.asarray(timestamp_tokens, dtype=np.int64), k.shape)
    if (ts < 0).any() or text_tokens < 0:
        raise ConfigError("token counts must be non-negative")
    return TokenAccount(visual=int(k.sum()), timestamp=int(ts[k > 0].sum()), text=int(text_tokens))


def allocation_stats(k, budget: int, k_min: int, m_max: int, n_frames: int) -> AllocationStats:
    """Σk, utilisation, the theoretical range [N·k_min, N·M], tokens/frame, spread and anchor counts."""
    k = _counts(k)
    if budget < 1 or n_frames < 1:
        raise ConfigError(f"budget and n_frames must be positive, got {budget} and {n_frames}")
    n = k.size
    return AllocationStats(
        n_segments=n, total=int(k.sum()), budget=int(budget), utilisation=float(k.sum()) / budget,
        theoretical_min=n * k_min, theoretical_max=n * m_max, tokens_per_frame=float(k.sum()) / n_frames,
        k_lowest=int(k.min()) if n else 0, k_highest=int(k.max()) if n else 0, gini=gini(k),
        at_k_min=int((k == k_min).sum()), dropped=int((k == 0).sum()))


def evidence_recall(k, evidence) -> float:
    """Budget-on-evidence recall: Σ_{i ∈ GT} k_i / Σ_i k_i (0 when nothing is allocated)."""
    k = _counts(k)
    mask = np.asarray(evidence, dtype=bool)
    if mask.shape != k.shape:
        raise ConfigError(f"evidence mask has shape {mask.shape}, allocation {k.shape}")
    total = int(k.sum())
    return float(k[mask].sum()) / total if total else 0.0
