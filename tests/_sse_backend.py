"""A scripted OpenAI-compatible backend for httpx.MockTransport that streams server-sent events lazily, so tests can
see how far a client read a stream before closing it.

A streamed request whose conversation ends in an assistant turn asking for the grade (``Grade:``) gets the grade
line first — the label token (``great`` when the last user message says "easy", else ``bad``) with its
``top_logprobs`` when ``logprobs`` is set and ``with_logprobs`` is on — then the answer's tokens, usage (when asked
for) and ``[DONE]``; any other streamed request gets the answer's tokens only; a plain request gets a JSON body.
Every reply body records how many events the client pulled (``sent``) and whether it closed it (``closed``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx

ANSWER_TOKENS = ("Four", " is", " the", " answer", ".")


class Body(httpx.SyncByteStream):
    """One reply's events, handed out one at a time as the client reads."""

    def __init__(self, events: list[bytes]) -> None:
        self.events, self.sent, self.closed = events, 0, False

    def __iter__(self):
        for event in self.events:
            self.sent += 1
            yield event

    def close(self) -> None:
        self.closed = True


class Backend:
    """The handler (call it with a request); ``requests``/``bodies`` record what came and what went out."""

    def __init__(self, with_logprobs: bool = True, echo_prefix: bool = False, usage: bool = True,
                 label_first: str | None = None) -> None:
        self.with_logprobs, self.echo_prefix, self.usage = with_logprobs, echo_prefix, usage
        self.label_first = label_first  # force this first token (e.g. "The": no label at all)
        self.requests: list[dict[str, Any]] = []
        self.bodies: list[Body] = []

    def _grade(self, body: dict[str, Any]) -> str | None:
        last = (body.get("messages") or [{}])[-1]
        asks = last.get("role") == "assistant" and str(last.get("content") or "").endswith("Grade:")
        instructed = "Begin your reply with exactly this text" in json.dumps(body.get("messages"))
        if not (asks or instructed):
            return None
        user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        return " great" if "easy" in user else " bad"

    @staticmethod
    def _top(grade: str) -> list[tuple[str, float]]:
        good = grade == " great"
        return [(" great", 0.8 if good else 0.05), (" ok", 0.1), (" bad", 0.05 if good else 0.8)]

    def _event(self, body: dict[str, Any], token: str, top: list[tuple[str, float]] | None,
               finish: str | None = None) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": token}, "finish_reason": finish}
        if body.get("logprobs") and self.with_logprobs:
            entry = {"token": token, "logprob": -0.1,
                     "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in (top or [])]}
            choice["logprobs"] = {"content": [entry]}
        return f"data: {json.dumps({'model': 'm-1', 'choices': [choice]})}\n\n".encode()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        grade = self._grade(body)
        if not body.get("stream"):  # a plain call: the label alone (with log-probs when asked) or the answer
            text = "".join(ANSWER_TOKENS) if grade is None else grade
            choice: dict[str, Any] = {"message": {"content": text}, "finish_reason": "stop"}
            if grade is not None and body.get("logprobs") and self.with_logprobs:
                top = [{"token": t, "logprob": math.log(p)} for t, p in self._top(grade)]
                choice["logprobs"] = {"content": [{"token": grade, "logprob": -0.1, "top_logprobs": top}]}
            return httpx.Response(200, json={"choices": [choice], "usage": {"prompt_tokens": 40,
                                                                            "completion_tokens": 5}})
        events = [f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'role': 'assistant', 'content': ''}}]})}"
                  "\n\n".encode()]
        tokens: list[tuple[str, list[tuple[str, float]] | None]] = []
        if grade is not None:
            if self.echo_prefix:
                tokens += [("Grade", None), (":", None)]
            top = [(self.label_first, 0.9), ("Yes", 0.1)] if self.label_first else self._top(grade)
            tokens += [(self.label_first or grade, top), ("\n", None)]
        tokens += [(t, None) for t in ANSWER_TOKENS]
        for i, (token, top) in enumerate(tokens):
            events.append(self._event(body, token, top, "stop" if i == len(tokens) - 1 else None))
        if self.usage and (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 40, "completion_tokens": len(tokens),
                     "prompt_tokens_details": {"cached_tokens": 32}}
            events.append(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        events.append(b"data: [DONE]\n\n")
        reply = Body(events)
        self.bodies.append(reply)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=reply)


EASY = [{"role": "user", "content": "easy: what is 2 + 2?"}]
HARD = [{"role": "user", "content": "hard: factor this number"}]
