"""Paradigms: plain answering (the baseline), PA (predict, then answer or defer) and RPRA (reason around it).

PA (Predict-Answer/Act) asks the answering model to predict its own grade with the grade label as the first
token after an assistant prefix (``"Grade:"``), decides on the prediction, and, when the decision is "answer",
continues generation from the same prompt plus ``"Grade: <label>\\n"`` — so a backend with a KV cache re-uses
the whole prediction prompt and the answer costs only the few label tokens extra. On "defer" nothing is answered
(the caller asks a stronger model). The decision is injected (any policy or ``decide`` callable;
:func:`~thrifty.route.decide.policy.defer_if_p_bad_above` by default) and the walk is the routing engine's one-tier
climb (:func:`thrifty.route.decide.engine.climb` with no top tier): thresholds live in policies, this module only
formats prompts. On a backend that declares ``label_stream`` (OpenAI-compatible ones) the climb makes prediction
and answer one streamed call (:mod:`thrifty.route.decide.single_call`), closed at the label on defer.

RPRA (Reason-Predict-Reason-Answer/Act) adds one capped line of reasoning before the grade and, when answering,
one capped line after it; the answer then continues from all of it. On defer the reasoning is discarded (kept
only in ``prediction.reasoning`` for inspection).

Overhead accounting: ``overhead_tokens_in/out`` and ``overhead_latency_s`` are what the prediction call itself
cost (its prompt tokens, its generated tokens, its wall time) — for RPRA also both reasoning calls. The answer's own accounting stays in
``completion`` (whose ``cached_tokens`` counts the prompt tokens it reused from the prediction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.types import Messages
from thrifty.judge.base import LABELS
from thrifty.llm.base import Completion, GenParams
from thrifty.route.decide.engine import climb
from thrifty.route.decide.policy import DecisionRule, defer_if_p_bad_above
from thrifty.route.predictors.base import Prediction, Predictor, read_prediction

ANSWER, DEFER = "answer", "defer"
ACTIONS = (ANSWER, DEFER)


@dataclass
class PAResult:
    """Outcome of one PA call: the action taken, the prediction, the answer (None on defer) and the overhead."""

    action: str
    prediction: Prediction
    completion: Completion | None
    overhead_tokens_in: int
    overhead_tokens_out: int
    overhead_latency_s: float
    reasoning_after: str = ""
    overhead_cached_tokens: int = 0

    @property
    def prefill_tokens(self) -> int:
        """Prompt tokens evaluated over all calls, cached ones left out (exact for PA; for RPRA an upper bound,
        as a label read does not report the tokens it re-used)."""
        c = self.completion
        fresh = self.overhead_tokens_in - self.overhead_cached_tokens
        return fresh + (c.tokens_in - c.cached_tokens if c is not None else 0)

    @property
    def latency_s(self) -> float:
        """Wall time of prediction plus answer."""
        return self.overhead_latency_s + (self.completion.latency_s if self.completion is not None else 0.0)


def answer(model: Any, messages: Messages, params: GenParams | None = None) -> Completion:
    """The baseline: the model answers the conversation directly, with no prediction."""
    return model.chat(messages, params)


def _setup(model: Any, predictor: Predictor | None, decide: Callable[[Prediction], str] | None):
    if predictor is None:
        from thrifty.route.predictors.zero_shot import ZeroShotPredictor

        predictor = ZeroShotPredictor(model)
    elif predictor.model is not model:
        raise ConfigError("PA is self-prediction: the predictor must wrap the answering model itself")
    return predictor, decide or defer_if_p_bad_above(0.5)


def _decide(decide: Callable[[Prediction], str], prediction: Prediction) -> str:
    return DecisionRule(decide).decide(prediction)


def pa(
    model: Any,
    predictor: Predictor | None,
    messages: Messages,
    params: GenParams | None = None,
    decide: Callable[[Prediction], str] | None = None,
    task: str | None = None,
) -> PAResult:
    """Predict-then-answer-or-defer with ``model``.

    ``predictor`` None means zero-shot with ``model``; a given predictor must predict with ``model`` itself
    (PA is self-prediction, and the answer continues its prompt). ``decide`` maps the prediction to "answer"
    or "defer" (default: :func:`defer_if_p_bad_above` at 0.5). ``task`` is the request's task tag (report-card
    lookup). The answer continues from ``prefix + " " + predicted label + "\\n"`` with the same messages.
    """
    predictor, decide = _setup(model, predictor, decide)
    res = climb([model], [predictor], [DecisionRule(decide)], messages, params, task, top=False)
    prediction = res.predictions[0]
    completion = res.completions[0] if res.completions else None
    return PAResult(res.action, prediction, completion, prediction.tokens_in, prediction.tokens_out,
                    prediction.latency_s)


REASON_TAG = "Reasoning:"


def rpra_format(prefix: str) -> str:
    """RPRA's reply format: a reasoning line, the grade line, a second reasoning line, then the reply."""
    return (f'Reply in this format: first a line "{REASON_TAG} <brief thoughts on the request and on how well you '
            f'can answer it>", then a line "{prefix} <label>" where <label> is one of {", ".join(LABELS)}, then a '
            f'line "{REASON_TAG} <brief plan for the reply>", then a new line, then your reply to the user.')


def rpra(
    model: Any,
    predictor: Predictor | None,
    messages: Messages,
    params: GenParams | None = None,
    decide: Callable[[Prediction], str] | None = None,
    task: str | None = None,
    reason_before: int = 64,
    reason_after: int = 64,
) -> PAResult:
    """Reason (≤ ``reason_before`` tokens, one line), predict the grade, and — when answering — reason again
    (≤ ``reason_after`` tokens, one line) before the answer, all in one growing assistant turn.

    Each step continues the previous one's text as the assistant prefix, so a KV-caching backend re-uses it.
    On defer no answer or second reasoning is produced and the first reasoning is discarded.
    """
    if reason_before < 1 or reason_after < 1:
        raise ConfigError("reasoning budgets must be >= 1 token")
    predictor, decide = _setup(model, predictor, decide)
    prompt = predictor.prompt(messages, task, rpra_format(predictor.prefix))
    first = model.chat(prompt, GenParams(max_tokens=reason_before, stop=("\n",)), assistant_prefix=REASON_TAG)
    thought = " ".join(first.text.split())
    grade_prefix = f"{REASON_TAG} {thought}\n{predictor.prefix}"
    read = read_prediction(model, prompt, grade_prefix)
    prediction = replace(read, reasoning=thought, tokens_in=read.tokens_in + first.tokens_in,
                         tokens_out=read.tokens_out + first.tokens_out, latency_s=read.latency_s + first.latency_s)
    if _decide(decide, prediction) == DEFER:
        return PAResult(DEFER, prediction, None, prediction.tokens_in, prediction.tokens_out, prediction.latency_s,
                        overhead_cached_tokens=first.cached_tokens)
    after_prefix = f"{grade_prefix} {prediction.label}\n{REASON_TAG}"
    second = model.chat(prompt, GenParams(max_tokens=reason_after, stop=("\n",)), assistant_prefix=after_prefix)
    plan = " ".join(second.text.split())
    completion = model.chat(prompt, params, assistant_prefix=f"{after_prefix} {plan}\n\n")
    return PAResult(ANSWER, prediction, completion, prediction.tokens_in + second.tokens_in,
                    prediction.tokens_out + second.tokens_out, prediction.latency_s + second.latency_s, plan,
                    first.cached_tokens + second.cached_tokens)


__all__ = ["ACTIONS", "ANSWER", "DEFER", "REASON_TAG", "PAResult", "answer", "defer_if_p_bad_above", "pa", "rpra",
           "rpra_format"]
