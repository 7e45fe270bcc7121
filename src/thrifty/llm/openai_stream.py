"""Streamed chat completions from OpenAI-compatible servers: server-sent events read piece by piece, each content
delta handed on as it arrives and the pieces folded back into the shape of a non-streamed response.

A stream is complete only when it ends with ``data: [DONE]`` or a choice carried a ``finish_reason``; one that just
stops raises :class:`StreamInterrupted`. The request goes through an :class:`OpenAITransport`, whose retries and
deadlines apply only until the first piece has been handed on: after that a failure raises (part of the reply is
already out). A server that ignores ``stream`` and answers with one JSON body is handled too.
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


def stream_chat(transport: OpenAITransport, body: dict[str, Any], on_text: Callable[[str], None]) -> dict[str, Any]:
    """POST ``body`` to ``/chat/completions`` with ``stream: true``; the folded reply (see the module notes)."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    started = False

    def emit(piece: str) -> None:
        nonlocal started
        started = True
        on_text(piece)

    return transport.send("POST", "/chat/completions", body, lambda resp, deadline: _read_stream(resp, deadline, emit),
                          committed=lambda: started, retry_on=(StreamInterrupted,))


__all__ = ["StreamInterrupted", "fold_events", "stream_chat"]
