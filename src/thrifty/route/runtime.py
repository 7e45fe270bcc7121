"""Serving-time routing: the small model predicts its grade, a Policy decides, and the query is answered,
repaired or deferred — for two models or an N-tier ladder.

- **answer**: the small model answers by continuing its own prediction prompt (prefix + predicted label), so
  the prediction's prefill is reused as in :func:`thrifty.route.paradigms.pa`.
- **repair** (three-way policies): that answer, then one cheap intervention on the small model. The default,
  :func:`self_refine`, shows the model its draft and asks it to check and correct it; any callable
  ``repair(model, messages, draft, params) -> Completion`` can replace it.
- **defer**: the next tier (the large model, or the next rung of a ladder) gets the original conversation, with
  no trace of the small model's prediction.

Every tier's prediction is kept in the result with its cost, so callers can account overhead per query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.types import Messages
from thrifty.llm.base import Completion, GenParams
from thrifty.route.policy import ANSWER, DEFER, REPAIR, Ladder, Policy

REFINE_INSTRUCTION = ("Check the answer you just gave for mistakes. Then reply with a corrected final answer, or "
                      "with the same answer if it is right.")

Repair = Callable[[Any, Messages, Completion, GenParams | None], Completion]


def self_refine(model: Any, messages: Messages, draft: Completion, params: GenParams | None = None) -> Completion:
    """One self-refinement pass: the conversation, the draft as the model's turn, then a request to check it."""
    follow_up = [*(dict(m) for m in messages), {"role": "assistant", "content": draft.text},
                 {"role": "user", "content": REFINE_INSTRUCTION}]
    return model.chat(follow_up, params)


@dataclass
class Routed:
    """The outcome of routing one query: the final action and tier, the reply, and what every step cost."""

    action: str  # answer, repair or defer (defer: the top tier answered after every lower tier deferred)
    tier: int  # index of the tier whose model produced the reply
    model: str
    text: str
    predictions: list[Any] = field(default_factory=list)  # one per consulted tier, in order
    completions: list[Completion] = field(default_factory=list)  # answer, then repair if any

    @property
    def overhead_tokens_in(self) -> int:
        return sum(int(p.tokens_in) for p in self.predictions)

    @property
    def overhead_latency_s(self) -> float:
        return sum(float(p.latency_s) for p in self.predictions)

    @property
    def latency_s(self) -> float:
        return self.overhead_latency_s + sum(c.latency_s for c in self.completions)


def continue_answer(model: Any, predictor: Any, prediction: Any, messages: Messages, params: GenParams | None,
                    task: str | None = None, **chat_kw: Any) -> Completion:
    """The model's answer continuing its own prediction prompt + predicted label (the prefill is reused);
    ``chat_kw`` go to ``chat`` (e.g. ``on_text`` to stream)."""
    return model.chat(predictor.prompt(messages, task), params, assistant_prefix=predictor.continuation(prediction.label),
                      **chat_kw)


def route_query(small: Any, large: Any, predictor: Any, policy: Policy, messages: Messages,
                params: GenParams | None = None, task: str | None = None, repair: Repair = self_refine) -> Routed:
    """Route one conversation between ``small`` (which predicts with ``predictor``) and ``large``."""
    return route_ladder([small, large], [predictor], Ladder(("small", "large"), (policy,)), messages, params,
                        task, repair)


def route_ladder(models: Sequence[Any], predictors: Sequence[Any], ladder: Ladder, messages: Messages,
                 params: GenParams | None = None, task: str | None = None, repair: Repair = self_refine) -> Routed:
    """Climb ``ladder``: tier i predicts with ``predictors[i]`` (asked only when reached) and answers, repairs or
    passes the query up; the top tier answers whatever reaches it."""
    if len(models) != len(ladder.tiers) or len(predictors) != len(ladder.policies):
        raise ConfigError(f"a ladder of {len(ladder.tiers)} tiers needs as many models and "
                          f"{len(ladder.policies)} predictors")
    for i, predictor in enumerate(predictors):
        if predictor.model is not models[i]:
            raise ConfigError(f"tier {i} must predict with its own model (self-prediction)")
    predictions = []
    for i in range(ladder.tries):
        prediction = predictors[i].predict(messages, task)
        predictions.append(prediction)
        action = ladder.policies[i].decide(prediction)
        if action == DEFER:
            continue
        draft = continue_answer(models[i], predictors[i], prediction, messages, params, task)
        done = [draft]
        if action == REPAIR:
            done.append(repair(models[i], messages, draft, params))
        return Routed(action, i, _model_id(models[i]), done[-1].text, predictions, done)
    top = len(models) - 1
    final = models[top].chat(messages, params)
    return Routed(DEFER if predictions else ANSWER, top, _model_id(models[top]), final.text, predictions, [final])


def _model_id(model: Any) -> str:
    return str(getattr(model, "model_id", type(model).__name__))


__all__ = ["ANSWER", "DEFER", "REFINE_INSTRUCTION", "REPAIR", "Routed", "continue_answer", "route_ladder", "route_query",
           "self_refine"]
