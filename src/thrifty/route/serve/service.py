"""The routing service behind the server, usable without HTTP: resolve the requested router, route the
conversation across its tiers with every backend call guarded, record metrics and the decision ledger.

Model names: ``thrifty/<router>`` picks a loaded router (or ladder) file; ``thrifty/<router>-<tau>`` overrides
every lower tier's threshold with ``tau`` ∈ [0, 1] (an operating point chosen by the client, as RouteLLM's
``router-<name>-<threshold>``). The bare ``<router>`` works too.

A lower tier whose backend reads the label from its first streamed token (OpenAI-compatible backends) predicts and
answers in one call (:mod:`thrifty.route.decide.single_call`): closed at the label when it defers, streamed on when it
answers, so an answered request costs one backend call.

Every backend call (a prediction, an answer, a repair) runs under a timeout (in a worker pool, or in the request's
thread for HTTP backends that end their own calls), is retried on transient errors and timeouts, and goes through
its model's circuit breaker. A lower tier that fails passes the query up; when the top tier fails, ``fallback:
lower`` serves the best lower tier's answer marked ``fallback`` (``error``: a 503). Each request has a deadline
(``request_timeout_s``; by default ``timeout_s`` × (``retries`` + 1) × tiers): no call starts after it and no wait
runs past it. A backend that refuses the request itself (an upstream 4xx such as invalid tools or a context that is
too long) gives the client a 400 — not retried, not held against the backend's breaker, no fallback.

Clients see tiers by name (:func:`tier_name`: the model of an endpoint spec, never its URL or a file path) and
failures in generic words; the details go to the server log and the ledger.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import math
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thrifty.core.errors import ConfigError, TransientError
from thrifty.llm.base import Completion, GenParams
from thrifty.llm.capabilities import SELF_TIMED, STREAMS, TOOLS, supports
from thrifty.llm.openai_compat import UpstreamClientError, call_deadline
from thrifty.route.decide.engine import (
    Hooks,
    NoTierAnswered,
    Routed,
    TierDown,
    climb,
    continue_answer,
    prediction_dict,
)
from thrifty.route.decide.policy import Ladder
from thrifty.route.serve.config import FALLBACKS, ServeConfig, tier_name
from thrifty.route.serve.deploy import Deployment, trim_history
from thrifty.route.serve.guard import CircuitBreaker
from thrifty.route.serve.metrics import Metrics, server_metrics

log = logging.getLogger("thrifty.server")

_NAME = re.compile(r"^(?:thrifty/)?(?P<name>[A-Za-z0-9_.]+?)(?:-(?P<tau>0(?:\.\d+)?|1(?:\.0+)?|\.\d+))?$")


class _Failure(str):
    """One failed backend call as the log and ledger keep it (the string), with ``shown``, what a client may see."""

    shown: str

    def __new__(cls, detail: str, shown: str) -> _Failure:
        out = super().__new__(cls, detail[:300])
        out.shown = shown
        return out


@dataclass(frozen=True)
class ToolRequest:
    """OpenAI tools to pass to the answering model: the tool list, tool_choice, and the conversation as sent
    (with its tool calls and tool turns; the predictor sees only the text)."""

    tools: list[dict[str, Any]]
    tool_choice: Any = None
    messages: list[dict[str, Any]] = field(default_factory=list)


class ServiceError(Exception):
    """A request the service refuses or cannot serve: HTTP status, OpenAI error type and code."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


BackendDown = TierDown
"""A guarded backend call failed after its retries, or its circuit is open (the engine's :class:`TierDown`)."""


class _Stream:
    """Streams one request's reply: ``begin`` is called before each answer attempt (with where it would come
    from) and returns the text callback; the "decided" event goes out with the first piece of text. Once text
    has gone out, the reply cannot switch to another answer: a retry or fallback would repeat or contradict it.
    A repair draft (``action`` None) is not streamed: its refinement is the reply. Events name tiers as clients
    see them (``shown``) and carry the request id."""

    def __init__(self, emit: Callable[[str, Any], None], request_id: str, shown: Callable[[str], str]) -> None:
        self.emit, self.started, self._where = emit, False, None
        self.request_id, self.shown = request_id, shown

    def _decided(self, tier: int, model: str, action: str, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        return {"request_id": self.request_id, "tier": tier, "model": self.shown(model), "action": action,
                "predictions": [{**p, "model": self.shown(p["model"])} for p in predictions]}

    def begin(self, tier: int, model: str, action: str | None, predictions: list[dict[str, Any]]):
        if self.started:
            raise _StreamBroken("the reply was already streaming when this answer was attempted")
        if action is None:
            return None
        self._where = self._decided(tier, model, action, predictions)
        return self.text

    def text(self, piece: str) -> None:
        if not piece:
            return
        if not self.started:
            self.started = True
            self.emit("decided", self._where)
        self.emit("text", piece)

    def finish(self, res: Routed) -> None:
        """After routing: a reply that never streamed (a backend without streaming, a repair) goes out whole."""
        if not self.started:
            self.started = True
            self.emit("decided", self._decided(res.tier, res.model, res.action, res.prediction_dicts()))
            if res.text:
                self.emit("text", res.text)


class _StreamBroken(Exception):
    """An answer was attempted after part of another had been streamed (never retried)."""


def _no_restart(stream: _Stream | None) -> None:
    if stream is not None and stream.started:
        raise ServiceError(502, "the answering backend failed while its reply was streaming", "server_error",
                           "stream_interrupted")


def _declares(model: Any, capability: str) -> bool:
    """Whether a tier's backend declares ``capability`` (``streams``, ``tools``, ``self_timed``: see
    :mod:`thrifty.llm.capabilities`); one that fails to load declares nothing, and its guarded call reports why."""
    try:
        return supports(model, capability)
    except Exception:
        return False


def _within(at: float, fn: Callable[[], Any]) -> Any:
    """``fn()`` with every HTTP backend call inside it ending by ``at`` (a worker thread's side of the deadline)."""
    with call_deadline(at):
        return fn()


def _inner(model: Any) -> Any:
    """The backend behind a lazily loaded tier (None while it is not loaded)."""
    if getattr(model, "loaded", True) is False:
        return None
    load = getattr(model, "load", None)
    return load() if callable(load) and hasattr(model, "loaded") else model


REFUSED = "the model backend refused this request; check its messages, tools and length"
UNAVAILABLE = "no backend could answer this request; try again later"


class RoutingService:
    """Routers by name, guarded backends, metrics and ledger (see the module notes)."""

    def __init__(self, deployments: dict[str, Deployment], cfg: ServeConfig, ledger: Any = None,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if not deployments:
            raise ConfigError("a routing service needs at least one router")
        self.deployments, self.cfg, self.ledger = deployments, cfg, ledger
        self.metrics = metrics or server_metrics()
        self.metrics.watch("thrifty_logprob_fallbacks_total", "label predictions read from text because a backend "
                           "returned no log-probs", "model", self._logprob_fallbacks)
        self._names = {spec: tier_name(spec) for dep in deployments.values() for spec in dep.tiers}
        self._clock = clock
        self._pool = cf.ThreadPoolExecutor(cfg.workers, thread_name_prefix="thrifty-backend")
        self._breakers: dict[str, CircuitBreaker] = {}
        self._sticky: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self.started = time.time()

    # -- names ------------------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return [f"thrifty/{name}" for name in self.deployments]

    def resolve(self, model: str) -> tuple[str, float | None]:
        """(router name, threshold override or None) for a requested model name."""
        m = _NAME.match(model or "")
        if m and m.group("name") in self.deployments:
            tau = m.group("tau")
            return m.group("name"), None if tau is None else float(tau)
        if model and model.removeprefix("thrifty/") in self.deployments:
            return model.removeprefix("thrifty/"), None
        raise ServiceError(404, f"model {model!r} not found; available: {', '.join(self.model_names())}",
                           "invalid_request_error", "model_not_found")

    def shown(self, spec: str) -> str:
        """A tier's name as clients see it (:func:`tier_name`)."""
        return self._names.get(spec) or tier_name(spec)

    def client_metadata(self, res: Routed) -> dict[str, Any]:
        """The ``thrifty`` field of a response: the routing metadata with tiers by name and failures in generic
        words (no backend URL, path or upstream message)."""
        meta = res.metadata()
        meta["model"] = self.shown(res.model)
        meta["predictions"] = [{**p, "model": self.shown(p["model"])} for p in meta["predictions"]]
        meta["backend_errors"] = [getattr(e, "shown", "backend error") for e in res.errors]
        return meta

    def request_timeout(self, router: str) -> float:
        """Seconds one request of ``router`` may take in all (see the module notes)."""
        if self.cfg.request_timeout_s is not None:
            return self.cfg.request_timeout_s
        return self.cfg.timeout_s * (self.cfg.retries + 1) * len(self.deployments[router].models)

    def _logprob_fallbacks(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for dep in self.deployments.values():
            for spec, model in zip(dep.tiers, dep.models, strict=False):
                count = getattr(_inner(model), "logprob_fallbacks", None)
                if isinstance(count, (int, float)):
                    out[spec] = out.get(spec, 0.0) + float(count)
        return out

    # -- guarded calls ----------------------------------------------------------------------------------
    def breaker(self, model_id: str) -> CircuitBreaker:
        with self._lock:
            if model_id not in self._breakers:
                self._breakers[model_id] = CircuitBreaker(self.cfg.breaker_failures, self.cfg.breaker_reset_s,
                                                          self._clock)
            return self._breakers[model_id]

    def _failed(self, model_id: str, kind: str, detail: str, errors: list[str]) -> None:
        self.metrics.inc("thrifty_backend_errors_total", {"model": model_id, "kind": kind})
        errors.append(_Failure(f"{model_id}: {detail}", f"{self.shown(model_id)}: {kind}"))

    def _call(self, model_id: str, fn: Callable[[], Any], errors: list[str], inline: bool = False,
              deadline: float = math.inf) -> Any:
        """Run one backend call under its breaker, with retries, each attempt waiting at most ``timeout_s`` and
        never past ``deadline`` (``time.monotonic()``); ``inline`` runs it in this thread (for backends that end
        every call within their own timeout and honour :func:`call_deadline`), else a pool thread is the
        watchdog. An upstream refusal raises ServiceError(400) at once."""
        breaker = self.breaker(model_id)
        if not breaker.allow():
            self._failed(model_id, "open", "circuit open", errors)
            raise BackendDown(errors[-1])
        blamed = False
        for _ in range(self.cfg.retries + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                self._failed(model_id, "deadline", "not tried: the request's deadline passed", errors)
                break
            wait = min(self.cfg.timeout_s, left)
            fut = None
            try:
                if inline:
                    with call_deadline(time.monotonic() + wait):
                        out = fn()
                else:
                    fut = self._pool.submit(_within, time.monotonic() + wait, fn)
                    out = fut.result(timeout=wait)
            except cf.TimeoutError:
                if fut is not None:
                    fut.cancel()
                kind, msg = "timeout", f"timed out after {wait:g} s"
            except UpstreamClientError as exc:  # the request is at fault, not the backend
                breaker.release()
                self._failed(model_id, "client", str(exc), errors)
                log.warning("%s refused a request (HTTP %s): %s", model_id, exc.status, exc)
                raise ServiceError(400, REFUSED, "invalid_request_error", "invalid_request") from None
            except TransientError as exc:
                kind, msg = "transient", str(exc)
            except Exception as exc:  # a backend's own failure: not retried
                kind, msg = "error", f"{type(exc).__name__}: {exc}"
            else:
                breaker.record(True)
                return out
            self._failed(model_id, kind, msg, errors)
            blamed = blamed or kind == "error" or wait >= self.cfg.timeout_s  # a wait cut by the deadline: not its fault
            if kind == "error":
                break
        if blamed:
            breaker.record(False)
        else:
            breaker.release()
        raise BackendDown(errors[-1])

    # -- routing ----------------------------------------------------------------------------------------
    def _ladder(self, dep: Deployment, task: str | None, tau: float | None) -> Ladder:
        ladder = dep.ladder_for(task)
        if tau is None:
            return ladder
        return Ladder(ladder.tiers, tuple(dataclasses.replace(p, tau_good=tau) for p in ladder.policies),
                      ladder.max_tries)

    def _start_tier(self, conversation: str | None) -> int:
        if not (self.cfg.sticky and conversation):
            return 0
        with self._lock:
            return self._sticky.get(conversation, 0)

    def _remember(self, conversation: str | None, tier: int) -> None:
        if not (self.cfg.sticky and conversation):
            return
        with self._lock:
            self._sticky[conversation] = max(tier, self._sticky.get(conversation, 0))
            self._sticky.move_to_end(conversation)
            while len(self._sticky) > 100_000:
                self._sticky.popitem(last=False)

    def complete(self, messages: list[dict[str, str]], model: str, params: GenParams, task: str | None = None,
                 conversation: str | None = None, key_name: str | None = None,
                 tools: ToolRequest | None = None, on_event: Callable[[str, Any], None] | None = None) -> Routed:
        """Route one conversation; raises ServiceError when it cannot be served.

        ``on_event(kind, payload)`` streams the reply: ``("decided", {request_id, tier, model, action,
        predictions})`` once, right before the answering tier's first text, then ``("text", piece)`` as it is
        generated (backends that do not stream give their whole answer as one piece when they finish)."""
        t0 = time.perf_counter()
        name, tau = self.resolve(model)
        dep = self.deployments[name]
        request_id = uuid.uuid4().hex
        deadline = time.monotonic() + self.request_timeout(name)
        stream = _Stream(on_event, request_id, self.shown) if on_event is not None else None
        errors: list[str] = []
        try:
            res = self._route(dep, name, trim_history(messages, dep.history_tokens), params, task, tau,
                              self._start_tier(conversation), tools, stream, errors, deadline)
            res.request_id = request_id
            if stream is not None:
                stream.finish(res)
        except ServiceError as exc:
            self.metrics.inc("thrifty_requests_total", {"router": name, "action": "error", "code": str(exc.status)})
            log.warning("request %s router=%s failed with %d: %s", request_id, name, exc.status,
                        "; ".join(errors) or exc.message)
            # failed requests are traffic too: the ledger keeps every routed request
            self._log_decision(messages, name, model, key_name, task, conversation, {
                "request_id": request_id, "router_version": dep.version,
                "action": "error", "status": exc.status, "model": None, "errors": [*errors, exc.message],
                "latency_s": time.perf_counter() - t0})
            raise
        res.latency_s = time.perf_counter() - t0
        self._remember(conversation, res.tier)
        self.metrics.inc("thrifty_requests_total", {"router": name, "action": res.action, "code": "200"})
        if res.tier > 0:
            self.metrics.inc("thrifty_deferrals_total", {"router": name})
        if res.action == "fallback":
            self.metrics.inc("thrifty_fallbacks_total", {"router": name})
        self.metrics.observe("thrifty_overhead_seconds", res.overhead_s, {"router": name})
        self.metrics.observe("thrifty_request_seconds", res.latency_s, {"router": name})
        self._log_decision(messages, name, model, key_name, task, conversation, {
            "request_id": res.request_id, "router_version": res.router_version, "action": res.action,
            "tier": res.tier, "model": res.model, "predictions": res.prediction_dicts(), "tokens_in": res.tokens_in,
            "tokens_out": res.tokens_out, "overhead_tokens": res.overhead_tokens, "overhead_s": res.overhead_s,
            "latency_s": res.latency_s, "errors": res.errors, "answer": res.text, "tool_calls": res.tool_calls})
        log.info("request %s router=%s action=%s tier=%d model=%s overhead_ms=%.1f latency_ms=%.1f%s",
                 res.request_id, name, res.action, res.tier, res.model, 1000 * res.overhead_s,
                 1000 * res.latency_s, f" messages={messages!r}" if self.cfg.log_prompts else "")
        return res

    def _log_decision(self, messages: list[dict[str, str]], router: str, requested: str, key_name: str | None,
                      task: str | None, conversation: str | None, outcome: dict[str, Any]) -> None:
        """One ledger record: what was asked (the conversation unless ``ledger_messages`` is off) and the outcome."""
        if self.ledger is None:
            return
        self.ledger.write({"time": time.time(), "router": router, "requested": requested, "key": key_name,
                           "task": task, "conversation": conversation, **outcome,
                           **({"messages": messages} if self.cfg.ledger_messages else {})})

    def _route(self, dep: Deployment, name: str, messages: list[dict[str, str]], params: GenParams,
               task: str | None, tau: float | None, start: int, tools: ToolRequest | None = None,
               stream: _Stream | None = None, errors: list[str] | None = None, deadline: float = math.inf) -> Routed:
        """One climb of the routing engine with every backend call guarded (by ``deadline``), tools passed to
        tiers that take them, the answering tier's reply streamed, and the fallback policy of the config."""
        ladder = self._ladder(dep, task, tau)
        errors = [] if errors is None else errors

        def guard(i: int, fn: Callable[[], Any], kind: str) -> Any:
            inline = kind != "repair" and _declares(dep.models[i], SELF_TIMED)  # HTTP backends end their own calls
            return self._call(dep.tiers[i], fn, errors, inline, deadline)

        def sink(i: int, pred: Any, action: str | None, consulted: list[tuple[int, Any]]) -> Any:
            if stream is None:
                return None
            on_text = stream.begin(i, dep.tiers[i], action, [prediction_dict(j, dep.tiers[j], p)
                                                            for j, p in consulted])
            return on_text if _declares(dep.models[i], STREAMS) else None

        def answer(i: int, pred: Any, action: str | None, consulted: list[tuple[int, Any]]) -> Completion:
            model = dep.models[i]
            if tools is not None and _declares(model, TOOLS):  # the conversation as sent, tools and all
                return model.chat_tools(tools.messages or messages, params, tools.tools, tools.tool_choice)
            on_text = sink(i, pred, action, consulted)
            kw = {} if on_text is None else {"on_text": on_text}
            if pred is None:
                return model.chat(messages, params, **kw)
            return continue_answer(model, dep.predictors[i], pred, messages, params, task, **kw)

        # a PA tier whose backend can predicts and answers in one call (not when tools go to the answer)
        hooks = Hooks(guard=guard, answer=answer, fallback=self.cfg.fallback == "lower",
                      on_answer_failed=lambda i: _no_restart(stream), single_call=tools is None, sink=sink)
        try:
            res = climb(dep.models, dep.predictors, ladder.policies, messages, params, task, start=start,
                        max_tries=ladder.max_tries, names=dep.tiers, hooks=hooks)
        except NoTierAnswered:
            raise ServiceError(503, UNAVAILABLE, "server_error", "backend_unavailable") from None
        res.errors = errors
        res.request_id, res.router, res.router_version = uuid.uuid4().hex, name, dep.version
        if tools is not None:
            res.tools = "passed" if _declares(dep.models[res.tier], TOOLS) else "ignored"
        return res

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.ledger is not None:
            self.ledger.close()


__all__ = ["FALLBACKS", "BackendDown", "Routed", "RoutingService", "ServeConfig", "ServiceError", "ToolRequest",
           "tier_name"]
