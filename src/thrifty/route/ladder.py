"""N-tier ladders: built from calibrated router files, replayed over stored records.

A ladder file chains router files cheapest → strongest: step i is a router whose small model is tier i, and
whose large model is a stronger tier (the next one, or the top), so each lower tier decides with its own
predictor and its own calibrated threshold. ``max_tries`` caps how many lower tiers are consulted before a query
goes straight to the top.

Replay (:func:`ladder_outcomes`, pure): a query climbs from tier 0; tier i answers when its calibrated p_good
≥ τ_i, else the query moves up; the top tier answers whatever reaches it. Its cost is every consulted tier's
prediction plus the answering tier's answer. :func:`ladder_curve` sweeps a shared defer rate over the lower tiers
and places each operating point at its **normalised cost** (0 = always the cheapest tier, 1 = always the top),
so APGR and CPT keep their meaning between the cheapest and the strongest always-X policies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.core.types import content_hash

LADDER_VERSION = 1


def build_ladder(router_paths: Sequence[str | Path], max_tries: int | None = None) -> dict[str, Any]:
    """The ladder record chaining these router files (cheapest first); one-line errors for a broken chain."""
    from thrifty.route.router_file import load_router

    if not router_paths:
        raise ConfigError("a ladder needs at least one router file")
    steps = [load_router(p)[1] for p in router_paths]
    tiers = [s["small"] for s in steps] + [steps[-1]["large"]]
    if len(set(tiers)) != len(tiers):
        raise ConfigError(f"a ladder's tiers must be distinct models, got {' → '.join(tiers)}")
    for i, (path, step) in enumerate(zip(router_paths, steps, strict=True)):
        if step["large"] not in tiers[i + 1:]:
            raise ConfigError(f"{path}: defers to {step['large']!r}, which is not a stronger tier of this ladder "
                              f"({' → '.join(tiers)})")
    if max_tries is not None and max_tries < 1:
        raise ConfigError("max_tries must be >= 1 (or omitted: no cap)")
    record: dict[str, Any] = {"v": LADDER_VERSION, "kind": "ladder", "tiers": tiers, "steps": steps,
                              "max_tries": max_tries}
    record["version"] = content_hash({k: v for k, v in record.items()})[:12]
    return record


def save_ladder(record: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
    tmp.replace(out)
    return out


def check_ladder(record: Any, path: str | Path) -> dict[str, Any]:
    """A parsed ladder file's record; one-line errors for anything malformed."""
    if not isinstance(record, dict) or record.get("kind") != "ladder" or record.get("v") != LADDER_VERSION:
        raise ConfigError(f"{path}: not a version-{LADDER_VERSION} ladder file")
    tiers, steps = record.get("tiers"), record.get("steps")
    if not isinstance(tiers, list) or not isinstance(steps, list) or len(tiers) != len(steps) + 1 or not steps:
        raise ConfigError(f"{path}: a ladder file needs tiers and one step per lower tier")
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("small") != tiers[i] or "policy" not in step:
            raise ConfigError(f"{path}: step {i} is not a router for tier {tiers[i]!r}")
    return record


def load_ladder(path: str | Path) -> dict[str, Any]:
    """A ladder file's record; one-line errors for anything malformed."""
    from thrifty.route.router_file import read_json_file

    return check_ladder(read_json_file(path, "ladder file", "write one with `thrifty route ladder build`"), path)


def ladder_outcomes(p_good: Any, taus: Any, quality: Any, answer_cost: Any, predict_cost: Any,
                    max_tries: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(answering tier, quality, cost) per query.

    ``p_good`` (n, T−1): calibrated p_good of each lower tier (−1 for an unreadable prediction: it defers);
    ``taus`` (T−1,) thresholds, or (n, T−1) when each query has its own (per-task policies); ``quality`` and ``answer_cost`` (n, T): each tier's answer quality and cost
    (for a lower tier, the cost beyond its prediction, whose prefix the answer continues); ``predict_cost``
    (n, T−1): each lower tier's prediction cost, paid whenever that tier is consulted.
    """
    pg, q = np.asarray(p_good, dtype=float), np.asarray(quality, dtype=float)
    ac, pc = np.asarray(answer_cost, dtype=float), np.asarray(predict_cost, dtype=float)
    taus = np.asarray(taus, dtype=float)
    n, lower = pg.shape
    if q.shape != (n, lower + 1) or ac.shape != q.shape or pc.shape != pg.shape or taus.shape not in ((lower,),
                                                                                                     pg.shape):
        raise ConfigError("p_good/predict_cost must be (n, T-1), quality/answer_cost (n, T) and taus (T-1,) or "
                          "(n, T-1)")
    taus = np.broadcast_to(taus, pg.shape)
    tries = lower if max_tries is None else min(lower, max_tries)
    tier = np.full(n, lower)
    for i in reversed(range(tries)):  # the lowest tier that answers wins
        tier = np.where(pg[:, i] >= taus[:, i], i, tier)
    rows = np.arange(n)
    consulted = np.minimum(tier + 1, tries)  # lower tiers whose prediction was paid
    paid = np.where(np.arange(lower)[None, :] < consulted[:, None], pc, 0.0).sum(axis=1)
    return tier, q[rows, tier], ac[rows, tier] + paid


def ladder_curve(p_good: Any, quality: Any, answer_cost: Any, predict_cost: Any, always_cost: Any,
                 max_tries: int | None = None, rates: Sequence[float] | None = None) -> Any:
    """Operating points of the ladder when every lower tier defers the same fraction d of queries (d swept over
    ``rates``), as a RoutingCurve in normalised cost: c = (cost − cost of always-cheapest) / (cost of always-top −
    cost of always-cheapest), with ``always_cost`` (n, T) each tier's plain answer cost. Points outside c ∈ [0, 1]
    are dropped; the always-cheapest and always-top endpoints are added."""
    from thrifty.evals.routing_metrics import RoutingCurve
    from thrifty.route.calibrate import threshold_for_defer_rate

    pg, q, k = np.asarray(p_good, dtype=float), np.asarray(quality, dtype=float), np.asarray(always_cost, float)
    rates = np.linspace(0.0, 1.0, 21) if rates is None else np.asarray(rates, dtype=float)
    lo, hi = float(k[:, 0].mean()), float(k[:, -1].mean())
    if hi <= lo:
        raise ConfigError("the top tier must cost more than the cheapest for a normalised-cost curve")
    pts = []
    for d in rates:
        # never below 0: an unreadable prediction (-1) defers at every operating point, as the policy does
        taus = [max(threshold_for_defer_rate(pg[:, i], float(d)), 0.0) for i in range(pg.shape[1])]
        _, qq, cc = ladder_outcomes(pg, taus, q, answer_cost, predict_cost, max_tries)
        c = (cc.mean() - lo) / (hi - lo)
        if 0.0 <= c <= 1.0:
            pts.append((c, qq.mean(), cc.mean(), d))
    r_w, r_s = float(q[:, 0].mean()), float(q[:, -1].mean())
    pts = sorted([(0.0, r_w, lo, np.nan), *pts, (1.0, r_s, hi, np.nan)])
    c, r, cost, d = (np.array(v) for v in zip(*pts, strict=True))
    return RoutingCurve(d, c, r, cost, r_w, r_s, lo, hi)


__all__ = ["LADDER_VERSION", "build_ladder", "check_ladder", "ladder_curve", "ladder_outcomes", "load_ladder", "save_ladder"]
