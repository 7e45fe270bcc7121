"""Serving-time routing for two models or an N-tier ladder, without a server: thin entry points to the routing
engine (:func:`thrifty.route.decide.engine.climb`), which holds the one climber and the one :class:`Routed`.

- **answer**: the small model answers by continuing its own prediction prompt (prefix + predicted label);
- **repair** (three-way policies): that answer, then :func:`self_refine` (or any ``repair`` callable);
- **defer**: the next tier gets the original conversation, with no trace of the small model's prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.types import Messages
from thrifty.llm.base import GenParams
from thrifty.route.decide.engine import (
    REFINE_INSTRUCTION,
    Hooks,
    Repair,
    Routed,
    climb,
    continue_answer,
    self_refine,
)
from thrifty.route.decide.policy import ANSWER, DEFER, REPAIR, Ladder, Policy


def route_query(small: Any, large: Any, predictor: Any, policy: Policy, messages: Messages,
                params: GenParams | None = None, task: str | None = None, repair: Repair = self_refine) -> Routed:
    """Route one conversation between ``small`` (which predicts with ``predictor``) and ``large``."""
    return route_ladder([small, large], [predictor], Ladder(("small", "large"), (policy,)), messages, params,
                        task, repair)


def route_ladder(models: Sequence[Any], predictors: Sequence[Any], ladder: Ladder, messages: Messages,
                 params: GenParams | None = None, task: str | None = None, repair: Repair = self_refine,
                 start: int = 0) -> Routed:
    """Climb ``ladder``: tier i predicts with ``predictors[i]`` (asked only when reached) and answers, repairs or
    passes the query up; the top tier answers whatever reaches it. Tiers below ``start`` are skipped."""
    if len(models) != len(ladder.tiers) or len(predictors) != len(ladder.policies):
        raise ConfigError(f"a ladder of {len(ladder.tiers)} tiers needs as many models and "
                          f"{len(ladder.policies)} predictors")
    for i, predictor in enumerate(predictors):
        if predictor.model is not models[i]:
            raise ConfigError(f"tier {i} must predict with its own model (self-prediction)")
    names = [str(getattr(m, "model_id", "") or ladder.tiers[i]) for i, m in enumerate(models)]
    return climb(models, predictors, ladder.policies, messages, params, task, start=start,
                 max_tries=ladder.max_tries, names=names, hooks=Hooks(repair=repair))


__all__ = ["ANSWER", "DEFER", "REFINE_INSTRUCTION", "REPAIR", "Routed", "continue_answer", "route_ladder", "route_query",
           "self_refine"]
