"""`build_app(service)`: the OpenAI-compatible HTTP face of a :class:`RoutingService` (FastAPI).

- ``POST /v1/chat/completions`` — stream or not; the response (and the last stream chunk) carries the routing
  metadata in a ``thrifty`` field, and ``x-thrifty-*`` headers repeat the essentials. A streamed reply starts
  when the answering tier is chosen and carries its text as it is generated (:mod:`.streaming`).
- ``GET /v1/models`` — every router as ``thrifty/<name>`` (append ``-<tau>`` to pick a threshold).
- ``GET /health`` (no key needed), ``GET /metrics`` (Prometheus text) and ``GET /openapi.json`` (the schema, which
  declares the bearer auth and the event stream of chat completions).

Every ``/v1`` call — and ``/metrics`` and ``/openapi.json`` unless ``public_metrics``/``public_openapi`` — needs
``Authorization: Bearer <key>`` unless the service runs without keys; each key has a token-bucket rate limit (429
with Retry-After), and so has each client address for failed key checks (guessing gets 429 before any check).
Bodies over ``max_body_bytes`` get 413 and ``max_tokens`` over the cap 400. All errors use OpenAI's shape with
generic words about backends (tiers by name, no URL or upstream message); nothing escapes as a bare 500.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations as objects, and fastapi
# itself is imported inside build_app (the package stays importable without the serve extra).
import logging
import time
from typing import Any

from thrifty.llm.base import GenParams
from thrifty.route.serve.guard import ApiKeys, RateLimiter
from thrifty.route.serve.protocol import (
    ERROR_STATUSES,
    ChatCompletion,
    ChatCompletionRequest,
    ErrorBody,
    ModelCard,
    ModelList,
    error_body,
)
from thrifty.route.serve.service import Routed, RoutingService, ServiceError, ToolRequest
from thrifty.route.serve.streaming import decision_headers, stream_reply

log = logging.getLogger("thrifty.server")


def _error(status: int, message: str, kind: str, code: str | None = None,
           headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(error_body(message, kind, code), status_code=status, headers=headers)


def _headers(res: Routed, meta: dict[str, Any]) -> dict[str, str]:
    """The decision's ``x-thrifty-*`` headers (as a stream sends them) plus the request id and the overhead;
    ``meta`` is the client's view of the decision (tiers by name)."""
    decided = {k: meta[k] for k in ("tier", "model", "action", "predictions")}
    return {"x-thrifty-request-id": res.request_id, **decision_headers(res.router, decided),
            "x-thrifty-overhead-ms": f"{1000 * res.overhead_s:.3f}", "x-thrifty-overhead-tokens": str(res.overhead_tokens)}


def _completion_body(res: Routed, model: str, created: int, meta: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": res.text}
    if res.tool_calls:  # OpenAI's shape: content may be null beside tool calls
        message.update(content=res.text or None, tool_calls=res.tool_calls)
    return {"id": f"chatcmpl-{res.request_id}", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": res.finish_reason}],
            "usage": {"prompt_tokens": res.tokens_in, "completion_tokens": res.tokens_out,
                      "total_tokens": res.tokens_in + res.tokens_out},
            "thrifty": meta}


class _Guard:
    """ASGI middleware for every private path (``/v1``, and ``/metrics``/``/openapi.json`` unless public): body-size
    cap on ``/v1`` (chunked bodies are measured as they arrive), failed-key throttle per client address, API key,
    per-key rate limit on ``/v1``. A plain ASGI wrapper, so it adds no per-request task or body copy."""

    def __init__(self, app: Any, cfg: Any, keys: ApiKeys | None, limiter: RateLimiter, guesses: RateLimiter,
                 reject: Any) -> None:
        self.app, self.cfg, self.keys, self.limiter, self.guesses, self.reject = app, cfg, keys, limiter, guesses, reject

    def _private(self, path: str) -> bool:
        if path.startswith("/v1/"):
            return True
        return bool(self.keys) and ((path == "/metrics" and not self.cfg.public_metrics) or
                                    (path == "/openapi.json" and not self.cfg.public_openapi))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self._private(scope["path"]):
            await self.app(scope, receive, send)
            return
        v1 = scope["path"].startswith("/v1/")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if v1:
            receive = await self._sized(scope, receive, send, headers.get("content-length"))
            if receive is None:
                return
        name = "anonymous"
        if self.keys:
            client = (scope.get("client") or ("unknown",))[0]
            wait = self.guesses.wait(client)
            if wait > 0:
                await self.reject("auth_throttled", 429, f"too many failed key checks; retry in {wait:.0f} s",
                                  "rate_limit_error", "too_many_auth_failures",
                                  {"retry-after": str(max(1, round(wait)))})(scope, receive, send)
                return
            auth = headers.get("authorization", "")
            name = self.keys.check(auth[7:].strip() if auth.lower().startswith("bearer ") else None)
            if name is None:
                self.guesses.take(client)
                await self.reject("auth", 401, "missing or invalid API key (Authorization: Bearer <key>)",
                                  "invalid_request_error", "invalid_api_key")(scope, receive, send)
                return
        wait = self.limiter.take(name) if v1 else 0.0
        if wait > 0:
            await self.reject("rate", 429, f"rate limit reached for this key; retry in {wait:.2f} s",
                              "rate_limit_error", "rate_limit_exceeded",
                              {"retry-after": str(max(1, round(wait)))})(scope, receive, send)
            return
        scope.setdefault("state", {})["key_name"] = name
        await self.app(scope, receive, send)

    async def _sized(self, scope: dict[str, Any], receive: Any, send: Any, length: str | None) -> Any:
        """``receive`` (a replay of the body read so far, for chunked bodies), or None once a 413 went out."""
        cap = self.cfg.max_body_bytes

        async def too_big() -> None:  # counted only when a body is refused
            await self.reject("size", 413, f"request body over {cap} bytes", "invalid_request_error",
                              "body_too_large")(scope, receive, send)

        if length is not None and (not length.isdigit() or int(length) > cap):
            await too_big()
            return None
        if length is None and scope["method"] == "POST":  # chunked: read it (up to the cap), then replay it
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > cap:
                    await too_big()
                    return None
            return _replay(body, receive)
        return receive


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def build_app(service: RoutingService, keys: ApiKeys | None = None, limiter: RateLimiter | None = None) -> Any:
    """The FastAPI app for ``service``; ``keys`` None (or empty) serves without authentication."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse, Response
    from pydantic import Field
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    cfg = service.cfg
    limiter = limiter or RateLimiter(cfg.rate, cfg.burst)
    guesses = RateLimiter(cfg.auth_fail_rate, cfg.auth_fail_burst)

    class CappedRequest(ChatCompletionRequest):  # this server's max_tokens cap, in the schema it publishes
        max_tokens: int | None = Field(default=None, ge=1, le=cfg.max_tokens)
        max_completion_tokens: int | None = Field(default=None, ge=1, le=cfg.max_tokens)

    app = FastAPI(title="thrifty routing server", version="1", docs_url=None, redoc_url=None)
    metrics = service.metrics

    def reject(reason: str, status: int, message: str, kind: str, code: str | None = None,
               headers: dict[str, str] | None = None) -> Any:
        metrics.inc("thrifty_rejected_total", {"reason": reason})
        return _error(status, message, kind, code, headers)

    app.add_middleware(_Guard, cfg=cfg, keys=keys, limiter=limiter, guesses=guesses, reject=reject)
    if keys:
        _declare_bearer(app, cfg)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:  # never a bare 500: OpenAI's shape
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path)
        return _error(500, "internal error", "server_error", "internal_error")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:  # e.g. an unparsable body
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return _error(exc.status_code, str(exc.detail), kind, "invalid_request" if exc.status_code == 400 else None,
                      dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        if where in ("max_tokens", "max_completion_tokens") and first.get("type") == "less_than_equal":
            metrics.inc("thrifty_rejected_total", {"reason": "max_tokens"})
            return _error(400, f"{where} is over this server's cap of {cfg.max_tokens}", "invalid_request_error",
                          "max_tokens_too_large")
        metrics.inc("thrifty_rejected_total", {"reason": "invalid"})
        return _error(400, f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}",
                      "invalid_request_error", "invalid_request")

    def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
        return {c: {"model": ErrorBody, "description": ERROR_STATUSES[c]} for c in codes}

    v1_errors = errors(401, 413, 429, 500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "routers": list(service.deployments), "uptime_s": round(time.time() - service.started, 3)}

    @app.get("/metrics", response_class=PlainTextResponse, responses=errors(401))
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models", response_model=ModelList, responses=v1_errors)
    async def models() -> dict[str, Any]:
        created = int(service.started)
        return ModelList(data=[ModelCard(id=n, created=created) for n in service.model_names()]).model_dump()

    @app.post("/v1/chat/completions", responses={
        200: {"model": ChatCompletion, "content": {"text/event-stream": {"schema": {"type": "string"}}},
              "description": "the routed completion (JSON), or server-sent chunks when stream is true"},
        **v1_errors, **errors(400, 404, 503)})
    async def chat(req: CappedRequest, request: Request) -> Response:
        budget = req.answer_budget() or cfg.default_max_tokens
        params = GenParams(max_tokens=budget, temperature=req.temperature or 0.0, top_p=req.top_p or 1.0,
                           seed=req.seed or 0, stop=req.stop_list())
        task = (req.metadata or {}).get("task") or request.headers.get("x-thrifty-task")
        conversation = request.headers.get("x-thrifty-conversation")
        tools = None if not req.tools else ToolRequest(
            req.tool_dicts(), req.tool_choice, [m.model_dump(exclude_none=True) for m in req.messages])
        args = (req.plain_messages(), req.model, params, str(task) if task else None, conversation,
                getattr(request.state, "key_name", None), tools)
        if req.stream:
            try:
                router = service.resolve(req.model)[0]
            except ServiceError as exc:
                return _error(exc.status, exc.message, exc.kind, exc.code)
            return await stream_reply(lambda emit: service.complete(*args, on_event=emit), req.model, router, _error,
                                      service.client_metadata)
        try:
            res = await run_in_threadpool(service.complete, *args)
        except ServiceError as exc:
            return _error(exc.status, exc.message, exc.kind, exc.code)
        meta = service.client_metadata(res)
        return JSONResponse(_completion_body(res, req.model, int(time.time()), meta), headers=_headers(res, meta))

    return app


def _declare_bearer(app: Any, cfg: Any) -> None:
    """Make the published schema say which paths need ``Authorization: Bearer <key>``."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
                "type": "http", "scheme": "bearer"}
            for path, ops in schema.get("paths", {}).items():
                if path.startswith("/v1/") or (path == "/metrics" and not cfg.public_metrics):
                    for op in ops.values():
                        op["security"] = [{"bearerAuth": []}]
        return app.openapi_schema

    app.openapi = openapi


__all__ = ["build_app"]
