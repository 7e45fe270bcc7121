"""Streamed chat completions from OpenAI-compatible servers: server-sent events read piece by piece, each content
delta handed on as it arrives and the pieces folded back into the shape of a non-streamed response.

A stream is complete only when it ends with ``data: [DONE]`` or a choice carried a ``finish_reason``; one that just
stops raises :class:`StreamInterrupted`. The request goes through an :class:`OpenAITransport`, whose retries and
deadlines apply only until the first piece has been handed on: after that a failure raises (part of the reply is
already out). A server that ignores ``stream`` and answers with one JSON body is handled too.

:func:`stream_deltas` is the general form: each content delta goes to a hook with its tokens' log-probs, and a hook
that returns False stops the read there and then — the response is closed, so the server sees the client leave and
stops generating (:mod:`.openai_labels` reads a label from the first token that way).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from thrifty.core.errors import ModelError
from thrifty.llm.openai_transport import OpenAITransport, timed_chunks


class StreamInterrupted(ModelError):
    """A stream ended without ``[DONE]`` or a ``finish_reason``: the reply is cut short, not complete."""


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


Delta = Callable[[str, "list[dict[str, Any]] | None"], bool]
"""A stream hook: ``(content piece, its tokens' log-prob entries or None) -> go on``."""


def fold_events(events: Iterator[dict[str, Any] | None], on_text: Callable[[str], None]) -> dict[str, Any]:
    """Pass each content delta to ``on_text``; return the equivalent non-streamed response body. Raises
    :class:`StreamInterrupted` when the events end without ``[DONE]`` (a ``None`` event) or a finish_reason."""
    return _fold(events, lambda piece, items: _text_only(on_text, piece))


def _text_only(on_text: Callable[[str], None], piece: str) -> bool:
    if piece:
        on_text(piece)
    return True


def _fold(events: Iterator[dict[str, Any] | None], on_delta: Delta) -> dict[str, Any]:
    """:func:`fold_events` with a :data:`Delta` hook; a hook that returns False ends the fold there (the body then
    says ``"stopped": True`` and has no usage unless one came already)."""
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
            piece = str(delta.get("content") or "")
            items = (choice.get("logprobs") or {}).get("content") or None
            finish = choice.get("finish_reason") or finish
            if piece or items:
                text.append(piece)
                if not on_delta(piece, items):
                    return _body(text, reasoning, "stop", model, usage, stopped=True)
    if not done and finish is None:
        raise StreamInterrupted(f"the stream ended without [DONE] or a finish_reason after {len(text)} pieces")
    return _body(text, reasoning, finish or "stop", model, usage)


def _body(text: list[str], reasoning: list[str], finish: str, model: str | None, usage: dict[str, Any] | None,
          stopped: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    data: dict[str, Any] = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if model:
        data["model"] = model
    if usage:
        data["usage"] = usage
    if stopped:
        data["stopped"] = True
    return data


def _read_stream(resp: httpx.Response, deadline: float, on_delta: Delta) -> dict[str, Any]:
    """A 2xx reply to a streamed request: SSE folded, or a plain JSON body when the server ignored ``stream``."""
    kind = resp.headers.get("content-type", "")
    if "json" in kind and "event-stream" not in kind:
        try:
            data = json.loads(b"".join(timed_chunks(resp, deadline)))
        except ValueError:
            raise ModelError("the streamed request got a reply that is not JSON") from None
        choice = (data.get("choices") or [{}])[0]
        content = (choice.get("message") or {}).get("content")
        items = (choice.get("logprobs") or {}).get("content") or None
        if content and not on_delta(str(content), items):
            data["stopped"] = True
        return data
    chunks = timed_chunks(resp, deadline)
    data = _fold(_events(_lines(chunks)), on_delta)
    if not data.get("stopped"):
        for _ in chunks:  # the body's end (after [DONE]): read, the connection goes back to the pool for reuse
            pass
    return data


def stream_deltas(transport: OpenAITransport, body: dict[str, Any], on_delta: Delta, committed: Callable[[], bool],
                  restart: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """POST ``body`` to ``/chat/completions`` with ``stream: true`` (usage asked for), each content delta handed to
    ``on_delta``; when it returns False the response is closed at once (see the module notes). Failures are retried
    until ``committed()`` is true; ``restart()`` runs before each attempt's reply is read."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}

    def read(resp: httpx.Response, deadline: float) -> dict[str, Any]:
        restart()
        return _read_stream(resp, deadline, on_delta)

    return transport.send("POST", "/chat/completions", body, read, committed=committed, retry_on=(StreamInterrupted,))


def stream_chat(transport: OpenAITransport, body: dict[str, Any], on_text: Callable[[str], None]) -> dict[str, Any]:
    """POST ``body`` to ``/chat/completions`` with ``stream: true``; the folded reply (see the module notes)."""
    started = False

    def emit(piece: str, items: Any) -> bool:
        nonlocal started
        if piece:
            started = True
            on_text(piece)
        return True

    return stream_deltas(transport, body, emit, committed=lambda: started)


__all__ = ["Delta", "StreamInterrupted", "fold_events", "stream_chat", "stream_deltas"]
