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

from thrifty.core.errors import ConfigError
from thrifty.core.types import content_hash
from thrifty.route.decide.files import LADDER_VERSION


def build_ladder(router_paths: Sequence[str | Path], max_tries: int | None = None) -> dict[str, Any]:
    """The ladder record chaining these router files (cheapest first); one-line errors for a broken chain."""
    from thrifty.route.decide.files import load_router

    if not router_paths:
        raise ConfigError("a ladder needs at least one router file")
    routers = [load_router(p) for p in router_paths]
    tiers = [r.small for r in routers] + [routers[-1].large]
    if len(set(tiers)) != len(tiers):
        raise ConfigError(f"a ladder's tiers must be distinct models, got {' → '.join(tiers)}")
    for i, (path, router) in enumerate(zip(router_paths, routers, strict=True)):
        if router.large not in tiers[i + 1:]:
            raise ConfigError(f"{path}: defers to {router.large!r}, which is not a stronger tier of this ladder "
                              f"({' → '.join(tiers)})")
    if max_tries is not None and max_tries < 1:
        raise ConfigError("max_tries must be >= 1 (or omitted: no cap)")
    record: dict[str, Any] = {"v": LADDER_VERSION, "kind": "ladder", "tiers": tiers,
                              "steps": [r.record for r in routers], "max_tries": max_tries}
    record["version"] = content_hash({k: v for k, v in record.items()})[:12]
    return record


def save_ladder(record: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
    tmp.replace(out)
    return out


__all__ = ["build_ladder", "save_ladder"]
