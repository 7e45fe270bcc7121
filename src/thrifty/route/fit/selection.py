"""Choosing a router's predictor on held-out records.

Each candidate predictor (a plain-prompt probe, a prompt router, a report card...) is replayed on the same
calibration rows and priced by the same cost function, its own prediction cost included; its operating curve
over all thresholds gives the mean cost at which it reaches ``quality`` × the large model's mean quality there
(and APGR). The candidate that reaches it cheapest is kept (ties: higher APGR, then the earlier listed). The
chosen predictor is then calibrated as usual. Selection and calibration share the split, so the chosen
candidate's fitted numbers are optimistic by the selection; test-split evaluation (``route eval``) is the
unbiased read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError


def candidate_summary(d: dict[str, Any], quality: float) -> dict[str, Any]:
    """Cost, saving against always-large and deferral at ``quality`` × large quality, APGR and AUROC of one
    candidate's gathered rows (``score``: the policy's signal per row, -1 where unreadable; ``q_small``/``q_large``
    and per-row costs)."""
    from thrifty.evals.routing_metrics import method_summary

    m = method_summary(d["q_small"], d["q_large"], np.clip(d["score"], 0.0, 1.0), d["cost_answer"], d["cost_defer"],
                       d["cost_large"], target=quality)
    return {k: m[k] for k in ("apgr", "cost_at_target", "saving_at_target", "defer_at_target", "auroc_bad")} | {
        "n": len(d["rows"])}


def choose_predictor(data: dict[str, dict[str, Any]], quality: float) -> tuple[str, dict[str, Any]]:
    """The candidate to keep and the selection record (every candidate's summary, the rule, the choice)."""
    if not data:
        raise ConfigError("no candidate predictors to choose from")
    sizes = {name: len(d["rows"]) for name, d in data.items()}
    if len(set(sizes.values())) > 1:  # candidates must be compared on the same queries
        raise ConfigError(f"candidates were replayed on different numbers of rows: {sizes}")
    summaries = {name: candidate_summary(d, quality) for name, d in data.items()}
    order = list(data)

    def key(name: str) -> tuple[float, float, int]:
        s = summaries[name]
        saving = s["saving_at_target"]
        return (saving if np.isfinite(saving) else -np.inf, s["apgr"], -order.index(name))

    chosen = max(order, key=key)
    rule = f"lowest cost at {quality:g} x the large model's quality on the calibration split (ties: APGR)"
    return chosen, {"rule": rule, "quality": quality, "chosen": chosen, "candidates": summaries}


__all__ = ["candidate_summary", "choose_predictor"]
