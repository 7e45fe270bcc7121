"""A router or ladder file made live: the tiers' models and predictors loaded, queries routed.

:func:`load_deployment` reads either file kind that ``thrifty route calibrate`` (one router: small → large) or
``thrifty route ladder build`` (N tiers) writes, builds each lower tier's predictor from its artefact, and returns
a :class:`Deployment` whose :meth:`~Deployment.route` answers one conversation. The server and ``thrifty route
ask`` both go through it.

Multi-turn conversations: the predictor sees the whole conversation, trimmed to ``history_tokens`` (the leading
system message and the latest turns that fit; the last message is always kept); the decision is made afresh
each turn. ``start_tier`` makes escalation sticky: a caller that saw an earlier turn of the conversation go to
tier k passes k, and lower tiers are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.types import Messages
from thrifty.llm.base import GenParams
from thrifty.route.decide.engine import Repair, Routed, self_refine
from thrifty.route.decide.files import LadderFile, load_routing_file
from thrifty.route.decide.policy import Ladder
from thrifty.route.serve.runtime import route_ladder


def approx_tokens(text: str) -> int:
    """A cheap token estimate (4 characters a token) for history budgets when no tokenizer is at hand."""
    return (len(text) + 3) // 4


def trim_history(messages: Messages, max_tokens: int | None,
                 count: Callable[[str], int] = approx_tokens) -> Messages:
    """The conversation cut to ``max_tokens`` (None: whole): a leading system message and the last message are
    always kept; earlier turns are kept newest first while they fit."""
    if max_tokens is None or len(messages) <= 1:
        return [dict(m) for m in messages]
    head = [dict(messages[0])] if messages[0].get("role") == "system" else []
    body = messages[len(head):]
    keep = [dict(body[-1])]
    used = sum(count(str(m.get("content", ""))) for m in head + keep)
    for m in reversed(body[:-1]):
        cost = count(str(m.get("content", "")))
        if used + cost > max_tokens:
            break
        keep.insert(0, dict(m))
        used += cost
    return head + keep


@dataclass
class Deployment:
    """Loaded tiers (cheapest first), their predictors (one per lower tier) and the ladder deciding between them."""

    models: list[Any]
    predictors: list[Any]
    ladder: Ladder
    file: LadderFile
    history_tokens: int | None = 2048

    @property
    def tiers(self) -> tuple[str, ...]:
        return self.ladder.tiers

    @property
    def version(self) -> str:
        """The routing file's version (a router's, or the ladder's)."""
        return self.file.version

    def ladder_for(self, task: str | None) -> Ladder:
        """The ladder with each tier's policy for ``task`` (its per-task policy when its router has one)."""
        if not task or not any(step.task_policies for step in self.file.steps):
            return self.ladder
        return self.file.ladder(task)

    def route(self, messages: Messages, params: GenParams | None = None, task: str | None = None,
              start_tier: int = 0, repair: Repair = self_refine) -> Routed:
        """Route one conversation; tiers below ``start_tier`` are skipped (sticky escalation)."""
        if not 0 <= start_tier < len(self.models):
            raise ConfigError(f"start_tier must be in [0, {len(self.models) - 1}], got {start_tier}")
        return route_ladder(self.models, self.predictors, self.ladder_for(task),
                            trim_history(messages, self.history_tokens), params, task, repair, start=start_tier)


def load_deployment(path: str | Path, load_model: Callable[[str], Any] | None = None,
                    history_tokens: int | None = 2048) -> Deployment:
    """Load every tier's model (once each) and every lower tier's predictor for a router or ladder file."""
    from thrifty.llm.factory import LazyChatModel
    from thrifty.llm.factory import load_model as default_loader
    from thrifty.route.predictors.build import build_predictor

    file = load_routing_file(path)
    loader = load_model or default_loader
    models: list[Any] = [LazyChatModel(spec, loader=loader) for spec in file.tiers]
    predictors = []
    for i, step in enumerate(file.steps):
        predictor, _ = build_predictor(step.predictor.name, step.small, models[i], step.predictor.artefact)
        models[i] = predictor.model  # the sft predictor answers with its own adapter-wrapped model
        predictors.append(predictor)
    return Deployment(models, predictors, file.ladder(), file, history_tokens)


__all__ = ["Deployment", "approx_tokens", "load_deployment", "trim_history"]
