"""Two-stage cascade: predict before answering, and only where the prediction is unsure, answer and then verify.

Stage 1 is a pre-answer p_good (a plain-prompt probe, a prompt router). A :class:`Band` splits it three ways:

- ``p1 < lo``: defer at once (the small model pays its prefill at most);
- ``p1 >= hi``: answer and keep the answer;
- otherwise (``lo <= p1 < hi``): the small model answers, a verifier reads the answer (its token log-probs, its
  hidden state at the last token) and gives ``p2``; the answer is kept when ``p2 >= threshold``, else the query
  goes to the large model — which then pays for both answers.

With ``lo = hi`` nothing is verified (stage 1 alone); with ``lo = 0, hi > 1`` everything is (answer-then-verify).
For a cost-quality curve over thresholds the cascade is one score per query, :func:`cascade_scores` (``p1`` out of
the band, ``p2`` in it; both are calibrated P(good), so one threshold reads both), priced per query by
:func:`cascade_costs` according to the stage the query reached. A threshold inside ``[lo, hi]`` gives exactly the
three-way rule above; the band's edges themselves are chosen without labels (:func:`band_from_quantiles`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError

DEFER_NOW, ANSWER_NOW, VERIFY = "defer", "answer", "verify"


@dataclass(frozen=True)
class Band:
    """Stage-1 p_good at or above ``lo`` and below ``hi`` is unsure: answer, then verify."""

    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)) or self.lo > self.hi:
            raise ConfigError(f"a cascade band needs finite lo <= hi, got [{self.lo}, {self.hi})")

    def stage(self, p1: float) -> str:
        """Which stage a query with stage-1 ``p1`` takes (``defer``, ``answer`` or ``verify``)."""
        if p1 < self.lo:
            return DEFER_NOW
        return ANSWER_NOW if p1 >= self.hi else VERIFY


def in_band(p1: Any, band: Band) -> np.ndarray:
    """Boolean mask of the queries that reach the verifier."""
    p = np.asarray(p1, dtype=float)
    return (p >= band.lo) & (p < band.hi)


def band_from_quantiles(p1: Any, frac: float) -> Band:
    """The band holding the middle ``frac`` of the stage-1 scores ``p1`` (labels unused). ``frac`` 0 is an empty
    band at the median; 1 verifies everything."""
    if not 0.0 <= frac <= 1.0:
        raise ConfigError(f"band fraction must be in [0, 1], got {frac}")
    p = np.asarray(p1, dtype=float)
    if frac >= 1.0:
        return Band(0.0, 2.0)  # every p_good in [0, 1] is in it
    lo, hi = np.quantile(p, [0.5 - frac / 2, 0.5 + frac / 2])
    return Band(float(lo), float(hi) if frac > 0 else float(lo))


def cascade_scores(p1: Any, p2: Any, band: Band) -> np.ndarray:
    """One p_good per query: the verifier's in the band, stage 1's outside it."""
    a, b = np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)
    if a.shape != b.shape:
        raise ConfigError(f"stage scores differ in shape: {a.shape} vs {b.shape}")
    return np.where(in_band(a, band), b, a)


def cascade_costs(p1: Any, band: Band, answer_now: Any, defer_now: Any, answer_verified: Any,
                  defer_verified: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-query (cost if the small answer is kept, cost if the query is deferred), by the stage it reached.

    Outside the band: ``answer_now`` / ``defer_now`` (a prompt-side router's costs). In it: ``answer_verified``
    (the small answer plus the verifier's read) / ``defer_verified`` (that, plus the large model's answer)."""
    mask = in_band(p1, band)
    arrays = [np.broadcast_to(np.asarray(c, dtype=float), mask.shape) for c in
              (answer_now, defer_now, answer_verified, defer_verified)]
    return np.where(mask, arrays[2], arrays[0]), np.where(mask, arrays[3], arrays[1])


def decide(p1: float, band: Band, verify: Any, threshold: float) -> tuple[str, float | None]:
    """The cascade's decision for one query: (``answer`` or ``defer``, the verifier's p2 or None).

    ``verify()`` is called only in the band (it answers and reads the answer, returning p2)."""
    stage = band.stage(p1)
    if stage == DEFER_NOW:
        return "defer", None
    if stage == ANSWER_NOW:
        return "answer", None
    p2 = float(verify())
    return ("answer" if p2 >= threshold else "defer"), p2


__all__ = ["ANSWER_NOW", "DEFER_NOW", "VERIFY", "Band", "band_from_quantiles", "cascade_costs", "cascade_scores",
           "decide", "in_band"]
