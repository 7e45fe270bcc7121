"""Reading OpenAI-compatible replies under a deadline: response bodies chunk by chunk, and streamed chat completions
(server-sent events) piece by piece, each content delta handed on as it arrives and the pieces folded back into the
shape of a non-streamed response.

Every socket read, write and connect waits at most until the attempt's deadline (:func:`deadline_transport` with
:func:`io_deadline`), so a backend that drips bytes — headers or body — is cut when its time is up, not one read
timeout after each byte; bodies are also checked between chunks (for transports that are not ours). A stream is complete only when it ends with ``data: [DONE]`` or a choice carried a
``finish_reason``; one that just stops raises :class:`StreamInterrupted`. Retries follow the model's policy, but only
until the first piece has been handed on: after that a failure raises (part of the reply is already out). A server
that ignores ``stream`` and answers with one JSON body is handled too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from thrifty.core.errors import ModelError, TransientError

_IO_DEADLINE: ContextVar[float | None] = ContextVar("thrifty_io_deadline", default=None)


@contextmanager
def io_deadline(at: float) -> Iterator[None]:
    """Socket waits of a :func:`deadline_transport` in this context end by ``at`` (``time.monotonic()``)."""
    token = _IO_DEADLINE.set(at)
    try:
        yield
    finally:
        _IO_DEADLINE.reset(token)


def _capped(timeout: float | None, late: type[Exception]) -> float | None:
    """``timeout`` cut to the time left before the context's deadline; raises ``late`` when none is left."""
    at = _IO_DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise late("the deadline passed")
    return left if timeout is None else min(timeout, left)


class _CappedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _CappedStream(self._inner.start_tls(ssl_context, server_hostname,
                                                   _capped(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CappedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _CappedStream(self._inner.connect_tcp(host, port, _capped(timeout, httpcore.ConnectTimeout),
                                                     local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _CappedStream(self._inner.connect_unix_socket(path, _capped(timeout, httpcore.ConnectTimeout),
                                                             socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(max_connections: int = 100, max_keepalive: int = 20) -> httpx.HTTPTransport:
    """httpx's own transport (TLS verified, keep-alive) over sockets whose every wait ends by the
    :func:`io_deadline` of the calling context (httpx itself bounds single reads only)."""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(  # the one hook httpx leaves for a network backend
        ssl_context=httpx.create_ssl_context(), max_connections=max_connections,
        max_keepalive_connections=max_keepalive, keepalive_expiry=5.0, network_backend=_CappedBackend())
    return transport


class DeadlineExceeded(httpx.TimeoutException):
    """The attempt's total time ran out while the reply was still arriving."""


class StreamInterrupted(ModelError):
    """A stream ended without ``[DONE]`` or a ``finish_reason``: the reply is cut short, not complete."""


def timed_chunks(resp: httpx.Response, deadline: float) -> Iterator[bytes]:
    """The raw body of ``resp``, raising :class:`DeadlineExceeded` once ``time.monotonic()`` passes ``deadline``."""
    for chunk in resp.iter_bytes():
        if time.monotonic() > deadline:
            raise DeadlineExceeded("the reply did not finish before the deadline", request=resp.request)
        yield chunk


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Text lines of a byte stream (``\\n``, ``\\r\\n`` or ``\\r`` endings), the last one even without an ending."""
    buf = ""
    for chunk in chunks:
        buf += chunk.decode("utf-8", errors="replace")
        parts = buf.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        buf = parts.pop()
        yield from parts
    if buf:
        yield buf


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    """The JSON events of an SSE stream; ``None`` marks ``data: [DONE]`` (and ends the iteration)."""
    for line in lines:
        if not line or line.startswith(":") or not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            yield None
            return
        try:
            event = json.loads(payload)
        except ValueError:
            raise ModelError(f"stream event is not JSON: {payload[:120]}") from None
        if isinstance(event, dict) and event.get("error"):
            err = event["error"]
            raise ModelError(f"stream error: {err.get('message') if isinstance(err, dict) else err}")
        if isinstance(event, dict):
            yield event


def fold_events(events: Iterator[dict[str, Any] | None], on_text: Callable[[str], None]) -> dict[str, Any]:
    """Pass each content delta to ``on_text``; return the equivalent non-streamed response body. Raises
    :class:`StreamInterrupted` when the events end without ``[DONE]`` (a ``None`` event) or a finish_reason."""
    text, reasoning, finish, model, usage, done = [], [], None, None, None, False
    for event in events:
        if event is None:
            done = True
            break
        model = event.get("model") or model
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                reasoning.append(str(delta["reasoning_content"]))
            if delta.get("content"):
                piece = str(delta["content"])
                text.append(piece)
                on_text(piece)
            finish = choice.get("finish_reason") or finish
    if not done and finish is None:
        raise StreamInterrupted(f"the stream ended without [DONE] or a finish_reason after {len(text)} pieces")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    data: dict[str, Any] = {"choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}]}
    if model:
        data["model"] = model
    if usage:
        data["usage"] = usage
    return data


def _read_stream(resp: httpx.Response, deadline: float, emit: Callable[[str], None]) -> dict[str, Any]:
    """A 2xx reply to a streamed request: SSE folded, or a plain JSON body when the server ignored ``stream``."""
    kind = resp.headers.get("content-type", "")
    if "json" in kind and "event-stream" not in kind:
        try:
            data = json.loads(b"".join(timed_chunks(resp, deadline)))
        except ValueError:
            raise ModelError("the streamed request got a reply that is not JSON") from None
        content = ((data.get("choices") or [{}])[0].get("message") or {}).get("content")
        if content:
            emit(str(content))
        return data
    return fold_events(_events(_lines(timed_chunks(resp, deadline))), emit)


def stream_chat(model: Any, body: dict[str, Any], on_text: Callable[[str], None]) -> dict[str, Any]:
    """POST ``body`` with ``stream: true`` through ``model`` (an OpenAICompatModel); see the module notes."""
    from thrifty.llm.openai_compat import one_line

    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    headers = model._auth_headers()
    client = model._http()
    url = f"{model.base_url}/chat/completions"
    attempts = model.retry.retries + 1
    started = False
    last, tried = "", 0

    def emit(piece: str) -> None:
        nonlocal started
        started = True
        on_text(piece)

    for attempt in range(attempts):
        wait = model.retry.delay(attempt)
        deadline, budget = model._attempt_window()
        if budget <= 0:
            last = "the caller's deadline passed"
            break
        tried += 1
        try:
            with io_deadline(deadline), \
                    client.stream("POST", "/chat/completions", json=body, headers=headers, timeout=budget) as resp:
                if resp.status_code < 400:
                    return _read_stream(resp, deadline, emit)
                resp.read()
                last, after = model._failed(resp, "POST", url)
                wait = wait if after is None else after
        except httpx.TimeoutException:
            if started:
                raise ModelError(f"POST {url}: the stream stalled or ran past its {budget:g}s deadline") from None
            last = f"timed out after {budget:g}s"
        except httpx.TransportError as exc:
            if started:
                raise ModelError(f"POST {url}: the stream broke ({one_line(str(exc) or type(exc).__name__, 120)})") \
                    from None
            last = f"connection failed ({one_line(str(exc) or type(exc).__name__, 120)})"
        except StreamInterrupted as exc:
            if started:
                raise
            last = str(exc)
        if attempt < attempts - 1 and not model._pause(wait):
            break
    raise TransientError(f"POST {url}: {last} (gave up after {tried} attempts)")


__all__ = ["DeadlineExceeded", "StreamInterrupted", "deadline_transport", "fold_events", "io_deadline", "stream_chat",
           "timed_chunks"]
