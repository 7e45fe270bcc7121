"""Routing policies: the one place threshold semantics live.

A policy turns a :class:`~thrifty.route.predictors.base.Prediction` into an action:

- **two-way**: answer when the calibrated signal >= ``tau_good``, else defer. The signal is ``p_good`` (p_ok +
  p_great, the default) or the **expected grade** 0.5·p_ok + p_great (``signal="expected_grade"``: the
  quality the judge's grade maps to, so "ok" answers count half);
- **three-way** (``tau_great`` set): answer when the calibrated ``p_great`` >= ``tau_great``; otherwise repair
  (a cheaper intervention on the small model, e.g. one self-refinement pass) when ``p_good`` >= ``tau_good``;
  otherwise defer;
- an unreadable prediction (``parsed`` False) always defers.

A :class:`Ladder` chains tiers from cheapest to strongest, each with its own policy: the first tier whose policy
answers (or repairs) handles the query, the top tier always answers, and once ``max_tries`` lower tiers have
deferred the query goes straight to the top tier (a cap on prediction cost for tall ladders).

Calibration maps raw probabilities first (:class:`Calibrator`: none, temperature scaling of the three label
log-probabilities, or isotonic on p_good). Policies and calibrators round-trip through plain dicts (the router
file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError, check_choice
from thrifty.route.decide.calibrators import Isotonic, apply_temperature

ANSWER, REPAIR, DEFER = "answer", "repair", "defer"
CALIBRATIONS = ("none", "temperature", "isotonic")
SIGNALS = ("p_good", "expected_grade")
ISO_TIE_BREAK = 1e-9
"""Isotonic maps are flat on blocks; adding this × the raw p_good keeps the raw order inside a block, so a
defer-rate threshold can still split a block (values move by at most 1e-9)."""


@dataclass(frozen=True)
class Calibrator:
    """Raw (bad, ok, great) probabilities → calibrated p_good and p_great."""

    kind: str = "none"
    temperature: float = 1.0
    iso_x: tuple[float, ...] = ()
    iso_y: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        check_choice("calibration", self.kind, CALIBRATIONS)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"temperature must be positive and finite, got {self.temperature}")
        if self.kind == "isotonic" and (not self.iso_x or len(self.iso_x) != len(self.iso_y)):
            raise ConfigError("isotonic calibration needs knots iso_x and iso_y of one length")

    def calibrate(self, probs: Any) -> tuple[np.ndarray, np.ndarray]:
        """(p_good, p_great) for rows of (bad, ok, great) probabilities."""
        p = np.asarray(probs, dtype=np.float64)
        p = p[None, :] if p.ndim == 1 else p
        if self.kind == "temperature":
            p = apply_temperature(p, self.temperature)
        good, great = p[:, 1] + p[:, 2], p[:, 2]
        if self.kind == "isotonic":  # flat blocks would tie many queries: the raw score breaks ties (×1e-9)
            good = np.clip(Isotonic(self.iso_x, self.iso_y)(good) + ISO_TIE_BREAK * good, 0.0, 1.0)
            great = np.minimum(great, good)
        return good, great

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "temperature": self.temperature, "iso_x": list(self.iso_x),
                "iso_y": list(self.iso_y)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        return cls(str(d.get("kind", "none")), float(d.get("temperature", 1.0)),
                   tuple(float(v) for v in d.get("iso_x", ())), tuple(float(v) for v in d.get("iso_y", ())))


def _probs_of(prediction: Any) -> np.ndarray:
    return np.array([prediction.p_bad, prediction.p_ok, prediction.p_great], dtype=np.float64)


@dataclass(frozen=True)
class Policy:
    """Answer / (repair) / defer on calibrated probabilities; see the module notes for the semantics."""

    tau_good: float
    tau_great: float | None = None
    calibrator: Calibrator = field(default_factory=Calibrator)
    signal: str = "p_good"

    def __post_init__(self) -> None:
        check_choice("policy signal", self.signal, SIGNALS)
        for name, tau in (("tau_good", self.tau_good), ("tau_great", self.tau_great)):
            if tau is not None and (math.isnan(tau) or tau < 0 or (tau > 1 and not math.isinf(tau))):
                raise ConfigError(f"{name} must be in [0, 1] (or +inf: never), got {tau}")

    @property
    def three_way(self) -> bool:
        return self.tau_great is not None

    def decide(self, prediction: Any) -> str:
        """The action for one prediction."""
        if not getattr(prediction, "parsed", True):
            return DEFER
        return self.decide_probs(_probs_of(prediction)[None, :])[0]

    def score(self, probs: Any) -> np.ndarray:
        """The calibrated signal compared with ``tau_good``, for rows of raw (bad, ok, great) probabilities."""
        good, great = self.calibrator.calibrate(probs)
        return good if self.signal == "p_good" else 0.5 * (good - great) + great

    def decide_probs(self, probs: Any) -> list[str]:
        """Actions for rows of raw (bad, ok, great) probabilities (every row readable)."""
        _, great = self.calibrator.calibrate(probs)
        out = []
        for g, gr in zip(self.score(probs), great, strict=True):
            if self.three_way and gr >= self.tau_great:
                out.append(ANSWER)
            elif g >= self.tau_good:
                out.append(REPAIR if self.three_way else ANSWER)
            else:
                out.append(DEFER)
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {"tau_good": self.tau_good, "tau_great": self.tau_great, "calibrator": self.calibrator.to_dict()}
        return out if self.signal == "p_good" else {**out, "signal": self.signal}  # older files read unchanged

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Policy:
        if not isinstance(d, dict) or "tau_good" not in d:
            raise ConfigError("a policy needs at least tau_good")
        great = d.get("tau_great")
        return cls(float(d["tau_good"]), None if great is None else float(great),
                   Calibrator.from_dict(d.get("calibrator") or {}), str(d.get("signal", "p_good")))


@dataclass(frozen=True)
class DeferIfPBadAbove:
    """PA's simple rule: defer when the prediction is unreadable or ``p_bad`` > ``threshold``, else answer.
    Callable on a prediction too (``rule(prediction)``), as PA's ``decide`` argument is."""

    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {self.threshold}")

    def decide(self, prediction: Any) -> str:
        if not getattr(prediction, "parsed", True) or prediction.p_bad > self.threshold:
            return DEFER
        return ANSWER

    __call__ = decide


def defer_if_p_bad_above(threshold: float = 0.5) -> DeferIfPBadAbove:
    """The rule :class:`DeferIfPBadAbove` at ``threshold``."""
    return DeferIfPBadAbove(threshold)


@dataclass(frozen=True)
class DecisionRule:
    """A plain ``decide(prediction) -> action`` callable as a policy (actions checked against ``actions``)."""

    fn: Any
    actions: tuple[str, ...] = (ANSWER, DEFER)

    def decide(self, prediction: Any) -> str:
        action = self.fn(prediction)
        if action not in self.actions:
            raise ConfigError(f"decision must be one of {', '.join(self.actions)}, got {action!r}")
        return action


@dataclass(frozen=True)
class Ladder:
    """Tiers cheapest → strongest; ``policies[i]`` decides for tier i (the top tier needs none)."""

    tiers: tuple[str, ...]
    policies: tuple[Policy, ...]
    max_tries: int | None = None  # lower tiers consulted at most; None: all of them

    def __post_init__(self) -> None:
        if len(self.tiers) < 2:
            raise ConfigError("a ladder needs at least two tiers")
        if len(self.policies) != len(self.tiers) - 1:
            raise ConfigError(f"a ladder of {len(self.tiers)} tiers needs {len(self.tiers) - 1} policies")
        if self.max_tries is not None and self.max_tries < 1:
            raise ConfigError("max_tries must be >= 1 (or None: no cap)")

    @property
    def tries(self) -> int:
        """How many lower tiers are consulted at most."""
        n = len(self.policies)
        return n if self.max_tries is None else min(n, self.max_tries)
