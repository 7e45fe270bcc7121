"""Streaming chat completions from an OpenAI-compatible server: server-sent events read piece by piece, each
content delta handed on as it arrives, and the pieces folded back into the shape of a non-streamed response.

Retries follow the model's policy, but only until the first piece has been handed on: after that a failure raises
(part of the reply is already out). Each read waits at most the model's timeout, so a stalled stream ends in an
error, never a hang. A server that ignores ``stream`` and answers with one JSON body is handled too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from thrifty.core.errors import ModelError, TransientError


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line or line.startswith(":") or not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
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


def fold_events(events: Iterator[dict[str, Any]], on_text: Callable[[str], None]) -> dict[str, Any]:
    """Pass each content delta to ``on_text``; return the equivalent non-streamed response body."""
    text, reasoning, finish, model, usage = [], [], None, None, None
    for event in events:
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
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    data: dict[str, Any] = {"choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}]}
    if model:
        data["model"] = model
    if usage:
        data["usage"] = usage
    return data


def stream_chat(model: Any, body: dict[str, Any], on_text: Callable[[str], None]) -> dict[str, Any]:
    """POST ``body`` with ``stream: true`` through ``model`` (an OpenAICompatModel); see the module notes."""
    from thrifty.llm.openai_compat import one_line

    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    headers = model._auth_headers()
    client = model._http()
    url = f"{model.base_url}/chat/completions"
    attempts = model.retry.retries + 1
    started = False
    last = ""

    def emit(piece: str) -> None:
        nonlocal started
        started = True
        on_text(piece)

    for attempt in range(attempts):
        wait = model.retry.delay(attempt)
        try:
            with client.stream("POST", "/chat/completions", json=body, headers=headers) as resp:
                code = resp.status_code
                if code < 400:
                    if "json" in resp.headers.get("content-type", "") and "event-stream" not in \
                            resp.headers.get("content-type", ""):
                        data = json.loads(resp.read())
                        content = ((data.get("choices") or [{}])[0].get("message") or {}).get("content")
                        if content:
                            emit(str(content))
                        return data
                    return fold_events(_events(resp.iter_lines()), emit)
                resp.read()
                last, after = model._failed(resp, "POST", url)
                wait = wait if after is None else after
        except httpx.TimeoutException:
            if started:
                raise ModelError(f"POST {url}: the stream stalled for {model.retry.timeout_s:g}s") from None
            last = f"timed out after {model.retry.timeout_s:g}s"
        except httpx.TransportError as exc:
            if started:
                raise ModelError(f"POST {url}: the stream broke ({one_line(str(exc) or type(exc).__name__, 120)})") \
                    from None
            last = f"connection failed ({one_line(str(exc) or type(exc).__name__, 120)})"
        if attempt < attempts - 1:
            model._sleep(wait)
    raise TransientError(f"POST {url}: {last} (gave up after {attempts} attempts)")


__all__ = ["fold_events", "stream_chat"]
