"""The routing engine: the one climber that walks a query up the tiers, and its one result, :class:`Routed`.

Every caller that routes a live query goes through :func:`climb` — the server (guarded calls, streaming, tools,
fallback), ``thrifty route ask`` and :meth:`Deployment.route`, :func:`route_query`/:func:`route_ladder` and PA
(:func:`thrifty.route.decide.paradigms.pa`, a one-tier climb with no top tier). What differs between them is passed in as
:class:`Hooks`; the walk itself is written once:

- tier i (from ``start``; at most ``max_tries`` lower tiers) predicts its own grade with its predictor; its policy
  (``policies[i].decide``: every threshold lives in the policy) says answer, repair or defer;
- **answer**: the tier answers, continuing its own prediction prompt (prefix + label) so the prefill is reused —
  or, where the tier's backend can (:mod:`thrifty.route.decide.single_call`), prediction and answer are one streamed call
  that the decision closes at the label (defer) or lets run on (answer);
- **repair** (three-way policies): that draft, then one cheap intervention on the same model (:func:`self_refine`
  by default) — skipped when the draft is a tool call; a failed repair leaves the draft standing;
- **defer**: the next tier; the top tier (when the ladder has one) answers the original conversation, with no
  trace of the lower tiers' predictions;
- a tier whose backend fails (a guarded call raises :class:`TierDown`) passes the query up; when the top tier fails,
  ``hooks.fallback`` lets the strongest lower tier that deferred answer after all (action ``fallback``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.types import Messages
from thrifty.llm.base import Completion, GenParams
from thrifty.route.decide.policy import ANSWER, DEFER, REPAIR
from thrifty.route.decide.single_call import SingleCall, single_call_fits

FALLBACK = "fallback"

REFINE_INSTRUCTION = ("Check the answer you just gave for mistakes. Then reply with a corrected final answer, or "
                      "with the same answer if it is right.")

Repair = Callable[[Any, Messages, Completion, GenParams | None], Completion]


class TierDown(Exception):
    """A tier's backend call failed (after its retries, or its circuit is open): the query passes up."""


class NoTierAnswered(Exception):
    """Every tier that could answer failed (the top tier and, with fallback, every lower tier that deferred)."""


def self_refine(model: Any, messages: Messages, draft: Completion, params: GenParams | None = None) -> Completion:
    """One self-refinement pass: the conversation, the draft as the model's turn, then a request to check it."""
    follow_up = [*(dict(m) for m in messages), {"role": "assistant", "content": draft.text},
                 {"role": "user", "content": REFINE_INSTRUCTION}]
    return model.chat(follow_up, params)


def continue_answer(model: Any, predictor: Any, prediction: Any, messages: Messages, params: GenParams | None,
                    task: str | None = None, **chat_kw: Any) -> Completion:
    """The model's answer continuing its own prediction prompt + predicted label (the prefill is reused);
    ``chat_kw`` go to ``chat`` (e.g. ``on_text`` to stream)."""
    return model.chat(predictor.prompt(messages, task), params, assistant_prefix=predictor.continuation(prediction.label),
                      **chat_kw)


@dataclass
class Routed:
    """The outcome of routing one query: the final action and tier, the reply, and what every step cost.

    ``predictions[j]`` is the prediction of tier ``consulted[j]`` (every lower tier that was asked, in order).
    ``completions`` are the answering tier's calls: the answer, then the repair if any (empty when PA deferred
    with no top tier). The server fills ``request_id``/``router``/``router_version`` and overwrites ``latency_s``
    with the request's wall time; elsewhere it is what the backends reported."""

    action: str  # answer, repair, defer (a higher tier answered after the lower ones deferred) or fallback
    tier: int
    model: str
    text: str
    predictions: list[Any] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    consulted: list[int] = field(default_factory=list)
    tier_names: tuple[str, ...] = ()
    errors: list[str] = field(default_factory=list)
    finish_reason: str = "stop"
    tool_calls: list[dict[str, Any]] | None = None
    tools: str | None = None  # "passed" or "ignored" when the request carried tools
    request_id: str = ""
    router: str = ""
    router_version: str = ""
    latency_s: float = -1.0

    def __post_init__(self) -> None:
        if self.latency_s < 0:
            self.latency_s = self.overhead_latency_s + sum(float(c.latency_s) for c in self.completions)

    @property
    def overhead_tokens_in(self) -> int:
        return sum(int(p.tokens_in) for p in self.predictions)

    @property
    def overhead_tokens(self) -> int:
        return self.overhead_tokens_in

    @property
    def overhead_latency_s(self) -> float:
        return sum(float(p.latency_s) for p in self.predictions)

    @property
    def overhead_s(self) -> float:
        return self.overhead_latency_s

    @property
    def tokens_in(self) -> int:
        return sum(int(c.tokens_in) for c in self.completions)

    @property
    def tokens_out(self) -> int:
        return sum(int(c.tokens_out) for c in self.completions)

    def prediction_dicts(self) -> list[dict[str, Any]]:
        """Each consulted tier's prediction as a JSON-able dict (tier, model, label, probabilities, cost)."""
        return [prediction_dict(i, self.tier_names[i] if i < len(self.tier_names) else str(i), p)
                for i, p in zip(self.consulted, self.predictions, strict=True)]

    def metadata(self) -> dict[str, Any]:
        """The ``thrifty`` field of a served response."""
        pd = self.prediction_dicts()
        first = pd[0] if pd else None
        return {"request_id": self.request_id, "router": self.router, "router_version": self.router_version,
                "model": self.model, "tier": self.tier, "action": self.action, "fallback": self.action == FALLBACK,
                "label": first["label"] if first else None,
                "probs": {k: first[k] for k in ("p_great", "p_ok", "p_bad")} if first else None,
                "predictions": pd, "overhead_tokens": self.overhead_tokens,
                "overhead_ms": round(1000 * self.overhead_s, 3), "backend_errors": self.errors,
                **({"tools": self.tools} if self.tools else {})}


def prediction_dict(tier: int, model: str, p: Any) -> dict[str, Any]:
    """One prediction as the server reports it."""
    return {"tier": tier, "model": model, "label": p.label, "p_great": p.p_great, "p_ok": p.p_ok, "p_bad": p.p_bad,
            "parsed": bool(p.parsed), "tokens_in": int(p.tokens_in), "latency_s": float(p.latency_s)}


def _unguarded(tier: int, fn: Callable[[], Any], kind: str) -> Any:
    return fn()


@dataclass
class Hooks:
    """What a caller changes about the climb.

    ``guard(tier, fn, kind)`` runs one backend call of ``tier`` (kind: predict, answer, repair, fallback) and
    raises :class:`TierDown` to pass the query up (default: call it, let errors propagate). ``answer(tier,
    prediction, action, consulted)`` produces a tier's answer (prediction None: the plain conversation, as the
    top tier answers; action None: a repair draft, not the reply itself; ``consulted``: the (tier, prediction)
    pairs so far) — default :func:`default_answer`. ``repair`` is the three-way intervention; ``fallback`` lets
    the strongest lower tier that deferred answer when the top tier fails; ``on_answer_failed(tier)`` runs when
    an answer attempt fails (it may raise to stop the climb, e.g. once a reply has begun streaming).

    ``single_call``: a lower tier that fits (:func:`~thrifty.route.decide.single_call.single_call_fits`) predicts and
    answers in one call (guard kind "single"), bypassing ``answer``; ``sink(tier, prediction, action,
    consulted)`` then gives the callback its answer streams to (None: not streamed; called once it decided, with
    the action as ``answer`` gets it)."""

    guard: Callable[[int, Callable[[], Any], str], Any] = _unguarded
    answer: Callable[[int, Any, str | None, list[tuple[int, Any]]], Completion] | None = None
    repair: Repair | None = self_refine
    fallback: bool = False
    on_answer_failed: Callable[[int], None] = lambda tier: None
    single_call: bool = True
    sink: Callable[[int, Any, str | None, list[tuple[int, Any]]], Callable[[str], None] | None] = \
        lambda tier, prediction, action, consulted: None


def default_answer(models: Sequence[Any], predictors: Sequence[Any], messages: Messages,
                   params: GenParams | None, task: str | None) -> Callable[..., Completion]:
    """The plain answer hook: a lower tier continues its prediction prompt, the top tier answers the conversation."""

    def answer(i: int, prediction: Any, action: str | None, consulted: list[tuple[int, Any]]) -> Completion:
        if prediction is None:
            return models[i].chat(messages, params)
        return continue_answer(models[i], predictors[i], prediction, messages, params, task)

    return answer


def _model_id(model: Any, fallback: str) -> str:
    return str(getattr(model, "model_id", "") or fallback)


def climb(models: Sequence[Any], predictors: Sequence[Any], policies: Sequence[Any], messages: Messages,
          params: GenParams | None = None, task: str | None = None, *, start: int = 0, max_tries: int | None = None,
          names: Sequence[str] | None = None, top: bool = True, hooks: Hooks | None = None) -> Routed:
    """Route one conversation up ``models`` (cheapest first); see the module notes.

    ``predictors[i]``/``policies[i]`` belong to lower tier i (with ``top``, every tier but the last; without, every
    tier: a query all of them defer comes back unanswered, action ``defer`` and no completions). Tiers below
    ``start`` are skipped (sticky escalation); at most ``max_tries`` lower tiers are consulted. Raises
    :class:`NoTierAnswered` when nothing could answer."""
    hooks = hooks or Hooks()
    lower = len(models) - 1 if top else len(models)
    if len(predictors) != lower or len(policies) != lower or lower < (1 if not top else 0) or not models:
        raise ConfigError(f"{len(models)} tiers need {lower} predictors and policies, got {len(predictors)} and "
                          f"{len(policies)}")
    if not 0 <= start < len(models):
        raise ConfigError(f"start tier must be in [0, {len(models) - 1}], got {start}")
    names = tuple(names) if names is not None else tuple(_model_id(m, f"tier{i}") for i, m in enumerate(models))
    answer = hooks.answer or default_answer(models, predictors, messages, params, task)
    consulted: list[tuple[int, Any]] = []
    deferred: list[tuple[int, Any]] = []
    errors: list[str] = []

    def done(tier: int, action: str, comps: list[Completion]) -> Routed:
        last = comps[-1] if comps else None
        calls = last.extra.get("tool_calls") if last is not None and last.extra else None
        return Routed(action, tier, names[tier] if tier < len(names) else "", last.text if last else "",
                      [p for _, p in consulted], comps, [i for i, _ in consulted], names, errors,
                      "tool_calls" if calls else (last.finish_reason if last else "stop"), calls)

    def guarded(tier: int, fn: Callable[[], Any], kind: str) -> Any:
        try:
            return hooks.guard(tier, fn, kind)
        except TierDown as exc:
            errors.append(str(exc)[:300])
            raise

    def one_call(i: int) -> tuple[Any, str, Completion | None] | None:
        call = SingleCall(models[i], predictors[i], policies[i])

        def sink(pred: Any, action: str) -> Callable[[str], None] | None:
            return hooks.sink(i, pred, action if action == ANSWER else None, [*consulted, (i, pred)])

        try:
            draft = guarded(i, lambda: call.run(messages, params, task, sink), "single")
        except TierDown:
            if call.prediction is not None:  # it had decided to answer: the answer failed
                consulted.append((i, call.prediction))
                hooks.on_answer_failed(i)
            return None
        consulted.append((i, call.prediction))
        return call.prediction, str(call.action), draft

    def two_calls(i: int) -> tuple[Any, str, Completion | None] | None:
        try:
            pred = guarded(i, lambda: predictors[i].predict(messages, task), "predict")
        except TierDown:
            return None  # a failing lower tier passes the query up
        consulted.append((i, pred))
        action = policies[i].decide(pred)
        if action == DEFER:
            return pred, action, None
        try:
            return pred, action, guarded(i, lambda: answer(i, pred, action if action == ANSWER else None,
                                                           list(consulted)), "answer")
        except TierDown:
            hooks.on_answer_failed(i)
            return None

    tries = lower - start if max_tries is None else min(lower - start, max_tries)
    for i in range(start, start + max(tries, 0)):
        fits = hooks.single_call and single_call_fits(models[i], predictors[i], params)
        step = one_call(i) if fits else two_calls(i)
        if step is None:
            continue
        pred, action, draft = step
        if action == DEFER or draft is None:
            deferred.append((i, pred))
            continue
        comps = [draft]
        if action == REPAIR and hooks.repair is not None and not (draft.extra or {}).get("tool_calls"):
            with contextlib.suppress(TierDown):  # a failed repair leaves the draft standing
                comps.append(guarded(i, lambda i=i, d=draft: hooks.repair(models[i], messages, d, params), "repair"))
        return done(i, action, comps)
    if not top:
        return done(len(models), DEFER, [])
    last = len(models) - 1
    try:
        final = guarded(last, lambda: answer(last, None, DEFER, list(consulted)), "answer")
        return done(last, DEFER if last > 0 else ANSWER, [final])
    except TierDown:
        hooks.on_answer_failed(last)
    if hooks.fallback:
        for i, pred in reversed(deferred):  # the strongest lower tier first
            try:
                comp = guarded(i, lambda i=i, q=pred: answer(i, q, FALLBACK, list(consulted)), "fallback")
            except TierDown:
                hooks.on_answer_failed(i)
                continue
            return done(i, FALLBACK, [comp])
    raise NoTierAnswered("; ".join(errors[-3:]) or "all unavailable")


__all__ = ["ANSWER", "DEFER", "FALLBACK", "REFINE_INSTRUCTION", "REPAIR", "Hooks", "NoTierAnswered", "Repair",
           "Routed", "TierDown", "climb", "continue_answer", "default_answer", "prediction_dict", "self_refine"]
