"""Streaming from OpenAI-compatible servers: pieces as they arrive, the folded completion, retries only before the
first piece, servers that ignore streaming, and error events."""

from __future__ import annotations

import json

import httpx
import pytest

from thrifty.core.errors import ModelError, TransientError
from thrifty.llm.openai_compat import OpenAICompatModel

MSGS = [{"role": "user", "content": "hi"}]


def _sse(*events, done=True, usage=True) -> bytes:
    lines = [": keep-alive", ""]
    for e in events:
        lines += [f"data: {json.dumps(e)}", ""]
    if usage:
        lines += ["data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}), ""]
    if done:
        lines += ["data: [DONE]", ""]
    return "\n".join(lines).encode()


def _delta(text=None, finish=None):
    delta = {} if text is None else {"content": text}
    return {"model": "m-1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _model(handler, retries=2):
    return OpenAICompatModel("http://127.0.0.1:9/v1", "m", transport=httpx.MockTransport(handler),
                             max_retries=retries, sleep=lambda s: None)


def test_pieces_arrive_in_order_and_fold_into_the_completion():
    seen = []

    def handler(request):
        body = json.loads(request.content)
        seen.append(body)
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=_sse(_delta("Hel"), _delta("lo"), _delta(" there", "length")))

    pieces = []
    done = _model(handler).chat(MSGS, on_text=pieces.append)
    assert pieces == ["Hel", "lo", " there"] and done.text == "Hello there"
    assert (done.tokens_in, done.tokens_out, done.finish_reason, done.model) == (5, 3, "length", "m-1")
    assert seen[0]["stream"] is True and seen[0]["stream_options"] == {"include_usage": True}


def test_failures_before_the_first_piece_are_retried_after_it_they_raise():
    calls = []

    def flaky(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_sse(_delta("ok")))

    assert _model(flaky).chat(MSGS, on_text=lambda p: None).text == "ok" and len(calls) == 2

    def broken(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=_sse(_delta("par"), {"error": {"message": "backend died"}}, done=False))

    pieces = []
    with pytest.raises(ModelError, match="backend died"):
        _model(broken).chat(MSGS, on_text=pieces.append)
    assert pieces == ["par"]
    with pytest.raises(TransientError, match="gave up after 2 attempts"):
        _model(lambda r: httpx.Response(502, json={}), retries=1).chat(MSGS, on_text=lambda p: None)
    with pytest.raises(ModelError, match="HTTP 400"):
        _model(lambda r: httpx.Response(400, json={"error": {"message": "bad"}})).chat(MSGS, on_text=lambda p: None)


def test_a_server_that_ignores_stream_answers_in_one_piece_and_usage_may_be_estimated():
    def plain(request):
        return httpx.Response(200, json={"choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}]})

    pieces = []
    done = _model(plain).chat(MSGS, on_text=pieces.append)
    assert pieces == ["whole"] and done.text == "whole" and done.extra.get("usage_estimated")

    def no_usage(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=_sse(_delta("a"), _delta("b"), usage=False))

    done = _model(no_usage).chat(MSGS, on_text=lambda p: None)
    assert done.text == "ab" and done.extra.get("usage_estimated")


def test_prefixed_requests_are_fetched_whole_then_handed_on():
    def handler(request):
        body = json.loads(request.content)
        assert "stream" not in body
        return httpx.Response(200, json={"choices": [{"message": {"content": "Grade: ok"}, "finish_reason": "stop"}]})

    pieces = []
    done = _model(handler).chat(MSGS, assistant_prefix="Grade:", on_text=pieces.append)
    assert done.text == " ok" and pieces == [" ok"]
