"""Router and ladder files read back, typed: one reader and one validator for each.

What serving needs from these files and nothing of how they were fitted. :func:`load_router` gives a
:class:`RouterFile`, :func:`load_ladder` a :class:`LadderFile`, :func:`load_routing_file` either as a ladder (a router
file is a two-tier ladder). A missing, unreadable or malformed file, or one of another version, is a one-line
:class:`ConfigError` naming the file. Fitting writes the files (:mod:`thrifty.route.fit.calibrate`,
:mod:`thrifty.route.fit.ladder`); the JSON layout is unchanged, so files written before these types still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.route.decide.policy import Ladder, Policy

ROUTER_VERSION = 1
LADDER_VERSION = 1


@dataclass(frozen=True)
class PredictorRef:
    """Which predictor a router uses: its name, its artefact (card, probe, router or adapter path; "" for
    zero-shot) and the artefact's version when it was fitted (None for zero-shot)."""

    name: str
    artefact: str = ""
    version: str | None = None


@dataclass(frozen=True)
class RouterFile:
    """A router file: the two models, the predictor, the global and per-task policies, and what it was fitted on.

    ``record`` is the file's JSON object as read (reports quote it); the typed fields are what code reads."""

    small: str
    large: str
    predictor: PredictorRef
    policy: Policy
    version: str
    task_policies: dict[str, Policy] = field(default_factory=dict)
    judge: str = "verifier"
    target: dict[str, Any] = field(default_factory=dict)  # what the threshold was fitted for: cost unit, prices, …
    fitted_on: dict[str, Any] = field(default_factory=dict)  # tasks, split, n of the calibration records
    fit: dict[str, Any] = field(default_factory=dict)  # calibration quality, predictor selection
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_record(cls, record: Any, path: str | Path) -> RouterFile:
        """The validator: a parsed router file, or a one-line error naming ``path``."""
        if not isinstance(record, dict) or record.get("v") != ROUTER_VERSION:
            raise ConfigError(f"{path}: not a version-{ROUTER_VERSION} router file")
        for key in ("small", "large", "predictor", "policy", "version"):
            if key not in record:
                raise ConfigError(f"{path}: router file lacks {key!r}")
        pred = record["predictor"]
        if not isinstance(pred, dict) or not isinstance(pred.get("name"), str):
            raise ConfigError(f"{path}: the router file's predictor needs a name")
        own = record.get("task_policies") or {}
        extras = {k: record.get(k) or {} for k in ("target", "fitted_on", "fit")}
        if not isinstance(own, dict) or not all(isinstance(v, dict) for v in extras.values()):
            raise ConfigError(f"{path}: task_policies, target, fitted_on and fit must be JSON objects")
        try:
            policy = Policy.from_dict(record["policy"])
            task_policies = {str(t): Policy.from_dict(d) for t, d in own.items()}
        except (ConfigError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: a policy in the router file is malformed ({exc})") from None
        return cls(str(record["small"]), str(record["large"]),
                   PredictorRef(pred["name"], str(pred.get("artefact") or ""), pred.get("version")),
                   policy, str(record["version"]), task_policies, str(record.get("judge") or "verifier"),
                   **extras, record=record)

    def policy_for(self, task: str | None) -> Policy:
        """The policy for a request: its task's own when the router has one, else the global policy."""
        return self.task_policies.get(task, self.policy) if task else self.policy


@dataclass(frozen=True)
class LadderFile:
    """Tiers cheapest → strongest and one router per lower tier; ``max_tries`` caps the lower tiers consulted."""

    tiers: tuple[str, ...]
    steps: tuple[RouterFile, ...]
    version: str
    max_tries: int | None = None
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_record(cls, record: Any, path: str | Path) -> LadderFile:
        """The validator: a parsed ladder file, or a one-line error naming ``path``."""
        if not isinstance(record, dict) or record.get("kind") != "ladder" or record.get("v") != LADDER_VERSION:
            raise ConfigError(f"{path}: not a version-{LADDER_VERSION} ladder file")
        tiers, steps = record.get("tiers"), record.get("steps")
        if not isinstance(tiers, list) or not isinstance(steps, list) or len(tiers) != len(steps) + 1 or not steps:
            raise ConfigError(f"{path}: a ladder file needs tiers and one step per lower tier")
        routers = []
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or step.get("small") != tiers[i] or "policy" not in step:
                raise ConfigError(f"{path}: step {i} is not a router for tier {tiers[i]!r}")
            routers.append(RouterFile.from_record(step, f"{path} (step {i})"))
        max_tries = record.get("max_tries")
        if max_tries is not None and (not isinstance(max_tries, int) or max_tries < 1):
            raise ConfigError(f"{path}: max_tries must be a positive integer or null")
        return cls(tuple(str(t) for t in tiers), tuple(routers), str(record.get("version", "")), max_tries, record)

    @classmethod
    def of_router(cls, router: RouterFile) -> LadderFile:
        """A router file as a two-tier ladder (small → large)."""
        record = {"v": LADDER_VERSION, "kind": "ladder", "tiers": [router.small, router.large],
                  "steps": [router.record], "max_tries": None, "version": router.version}
        return cls((router.small, router.large), (router,), router.version, None, record)

    def ladder(self, task: str | None = None) -> Ladder:
        """The decision ladder, each tier with its policy for ``task`` (its per-task policy when it has one)."""
        return Ladder(self.tiers, tuple(s.policy_for(task) for s in self.steps), self.max_tries)


def read_json_file(path: str | Path, what: str, hint: str) -> Any:
    """A JSON file's content; a missing or unreadable file is a one-line ConfigError naming ``what``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found; {hint}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a {what} ({exc})") from None


def load_router(path: str | Path) -> RouterFile:
    """A router file; one-line errors for anything missing or malformed."""
    return RouterFile.from_record(read_json_file(path, "router file", "write one with `thrifty route calibrate`"),
                                  path)


def load_ladder(path: str | Path) -> LadderFile:
    """A ladder file; one-line errors for anything missing or malformed."""
    return LadderFile.from_record(read_json_file(path, "ladder file", "write one with `thrifty route ladder build`"),
                                  path)


def load_routing_file(path: str | Path) -> LadderFile:
    """A router or ladder file as a ladder (a router file is a two-tier ladder); the file is read once."""
    record = read_json_file(path, "routing file", "write one with `thrifty route calibrate`")
    if not isinstance(record, dict):
        raise ConfigError(f"{path}: not a router or ladder file (a JSON object is expected)")
    if record.get("kind") == "ladder":
        return LadderFile.from_record(record, path)
    return LadderFile.of_router(RouterFile.from_record(record, path))


__all__ = ["LADDER_VERSION", "ROUTER_VERSION", "LadderFile", "PredictorRef", "RouterFile", "load_ladder",
           "load_router", "load_routing_file", "read_json_file"]
