"""Router and ladder files read back: load, check, and a request's policy.

What serving needs from these files and nothing of how they were fitted: :func:`load_router` and :func:`load_ladder`
(one-line errors for a missing, unreadable or malformed file), :func:`policy_for` (a request's task policy, else the
global one). Fitting writes the files (:mod:`thrifty.route.fit.calibrate`, :mod:`thrifty.route.fit.ladder`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.route.decide.policy import Policy

ROUTER_VERSION = 1


def task_policies(router: dict[str, Any]) -> dict[str, Policy]:
    """The per-task (domain) policies a router file holds (empty unless calibrated with ``per_task``)."""
    return {t: Policy.from_dict(d) for t, d in (router.get("task_policies") or {}).items()}


def policy_for(router: dict[str, Any], task: str | None) -> Policy:
    """The policy for a request: its task's own when the router has one, else the global policy."""
    own = (router.get("task_policies") or {}).get(task) if task else None
    return Policy.from_dict(own if own is not None else router["policy"])


def read_json_file(path: str | Path, what: str, hint: str) -> Any:
    """A JSON file's content; a missing or unreadable file is a one-line ConfigError naming ``what``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found; {hint}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a {what} ({exc})") from None


def check_router(router: Any, path: str | Path) -> tuple[Policy, dict[str, Any]]:
    """The policy and the whole record of a parsed router file; one-line errors for anything malformed."""
    if not isinstance(router, dict) or router.get("v") != ROUTER_VERSION:
        raise ConfigError(f"{path}: not a version-{ROUTER_VERSION} router file")
    for key in ("small", "large", "predictor", "policy", "version"):
        if key not in router:
            raise ConfigError(f"{path}: router file lacks {key!r}")
    return Policy.from_dict(router["policy"]), router


def load_router(path: str | Path) -> tuple[Policy, dict[str, Any]]:
    """The policy and the whole record of a router file; one-line errors for anything malformed."""
    return check_router(read_json_file(path, "router file", "write one with `thrifty route calibrate`"), path)


LADDER_VERSION = 1


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
    return check_ladder(read_json_file(path, "ladder file", "write one with `thrifty route ladder build`"), path)


__all__ = ["LADDER_VERSION", "ROUTER_VERSION", "check_ladder", "check_router", "load_ladder", "load_router",
           "policy_for", "read_json_file", "task_policies"]
