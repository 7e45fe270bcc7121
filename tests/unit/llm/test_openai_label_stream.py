"""Label then answer in one streamed call: the label from the first token's top log-probs, the stream closed at once
when the caller stops, the rest streamed on without the grade line, honest usage, and per-call text fallbacks."""

from __future__ import annotations

import json

import httpx
import pytest

from _sse_backend import ANSWER_TOKENS, EASY, HARD, Backend
from thrifty.core.errors import ModelError
from thrifty.llm.base import GenParams, RetryPolicy
from thrifty.llm.capabilities import LABEL_STREAM, supports
from thrifty.llm.openai_compat import OpenAICompatModel
from thrifty.llm.openai_labels import GradeLine, grade_line_end

LABELS = ["great", "ok", "bad"]
FAST = RetryPolicy(timeout_s=5.0, retries=1, backoff_base_s=0.0)


def _model(handler, **kw):
    kw.setdefault("retry", FAST)
    return OpenAICompatModel("http://127.0.0.1:9/v1", "m", transport=httpx.MockTransport(handler),
                             sleep=lambda s: None, **kw)


def _good(read) -> bool:
    return read.probs["bad"] < 0.5


def test_the_backend_declares_the_capability():
    assert supports(_model(Backend()), LABEL_STREAM)


def test_a_stop_at_the_label_closes_the_stream_before_the_answer_is_read():
    backend = Backend()
    seen, pieces = [], []
    reply = _model(backend).label_then_chat(HARD, LABELS, lambda r: seen.append(r) or _good(r),
                                            GenParams(max_tokens=16), "Grade:", pieces.append)
    assert reply.completion is None and reply.stopped and pieces == []
    assert seen == [reply.label] and reply.label.method == "logprobs" and reply.label.probs["bad"] > 0.8
    body = backend.bodies[0]
    assert body.closed and body.sent == 2  # the role chunk and the label token: nothing after the label was read
    sent = backend.requests[0]
    assert sent["stream"] and sent["logprobs"] and sent["top_logprobs"] == 20 and sent["max_tokens"] == 18
    assert sent["messages"][-1] == {"role": "assistant", "content": "Grade:"} and sent["continue_final_message"]


def test_a_go_at_the_label_streams_the_reply_without_the_grade_line_with_honest_usage():
    backend = Backend()
    pieces = []
    reply = _model(backend).label_then_chat(EASY, LABELS, _good, GenParams(max_tokens=16), "Grade:", pieces.append)
    done = reply.completion
    assert pieces == list(ANSWER_TOKENS) and done.text == "".join(ANSWER_TOKENS) and not reply.stopped
    assert reply.label.probs["great"] == pytest.approx(0.8 / 0.95) and reply.label.tokens_in == 40
    assert (done.tokens_in, done.tokens_out, done.cached_tokens) == (40, len(ANSWER_TOKENS) + 1, 40)
    assert done.extra["backend_cached_tokens"] == 32 and done.extra["grade_line"] == " great\n"
    assert len(backend.requests) == 1 and backend.bodies[0].sent == len(backend.bodies[0].events)


def test_an_echoed_prefix_is_skipped_before_the_label_token():
    backend = Backend(echo_prefix=True)
    pieces = []
    reply = _model(backend, prefix_mode="instruct").label_then_chat(EASY, LABELS, _good, None, "Grade:",
                                                                     pieces.append)
    assert reply.label.method == "logprobs" and reply.label.probs["great"] == pytest.approx(0.8 / 0.95)
    assert "".join(pieces) == "".join(ANSWER_TOKENS)


def test_no_logprobs_in_one_reply_reads_the_grade_line_for_that_call_only():
    backend = Backend(with_logprobs=False)
    model = _model(backend)
    stop = model.label_then_chat(HARD, LABELS, _good, None, "Grade:")
    assert stop.label.method == "text" and stop.label.probs == {"great": 0.0, "ok": 0.0, "bad": 1.0}
    assert stop.completion is None and backend.bodies[0].closed and backend.bodies[0].sent == 3  # + the newline
    assert model.logprob_fallbacks == 1
    backend.with_logprobs = True  # the next call reads log-probs again: nothing was sticky
    go = model.label_then_chat(EASY, LABELS, _good, None, "Grade:")
    assert go.label.method == "logprobs" and backend.requests[-1]["logprobs"] and model.logprob_fallbacks == 1


def test_a_first_token_that_is_no_label_is_unparsed_and_the_reply_is_not_cut():
    backend = Backend(label_first="Sure")
    reply = _model(backend).label_then_chat(EASY, LABELS, lambda r: True, None, "Grade:")
    assert not reply.label.parsed and reply.label.probs["great"] == pytest.approx(1 / 3)
    assert reply.completion.text.startswith("Sure")


def test_an_unsupported_logprobs_answer_downgrades_to_text_until_it_expires():
    now, seen = [0.0], []
    backend = Backend(with_logprobs=False)

    def handler(request):
        body = json.loads(request.content)
        seen.append(bool(body.get("logprobs")))
        if body.get("logprobs"):
            return httpx.Response(400, json={"error": {"message": "logprobs are not supported by this model"}})
        return backend(request)

    model = _model(handler, logprob_retry_s=60.0, clock=lambda: now[0])
    assert model.label_then_chat(EASY, LABELS, _good, None, "Grade:").label.method == "text"
    assert model.label_then_chat(EASY, LABELS, _good, None, "Grade:").label.method == "text"
    assert seen == [True, False, False]
    now[0] = 61.0
    model.label_then_chat(EASY, LABELS, _good, None, "Grade:")
    assert seen[3] is True and model.logprob_fallbacks == 3


def test_a_stream_cut_before_the_label_is_retried_afresh_and_after_it_raises():
    backend, calls = Backend(), []

    def cut_first(request):
        calls.append(1)
        resp = backend(request)
        if len(calls) == 1:  # the first reply stops after the role chunk: no label, no end marker
            resp.stream.events = resp.stream.events[:1]
        return resp

    pieces = []
    reply = _model(cut_first).label_then_chat(EASY, LABELS, _good, None, "Grade:", pieces.append)
    assert len(calls) == 2 and reply.completion.text == "".join(ANSWER_TOKENS) == "".join(pieces)

    def cut_after(request):
        resp = backend(request)
        resp.stream.events = resp.stream.events[:4]  # label, newline, one answer token, then nothing
        return resp

    pieces = []
    with pytest.raises(ModelError):
        _model(cut_after).label_then_chat(EASY, LABELS, _good, None, "Grade:", pieces.append)
    assert pieces == [ANSWER_TOKENS[0]]


def test_a_server_that_ignores_stream_still_gives_the_label_and_the_reply():
    def plain(request):
        top = [{"token": " great", "logprob": -0.05}, {"token": " bad", "logprob": -3.0}]
        lp = {"content": [{"token": " great", "logprob": -0.05, "top_logprobs": top}]}
        return httpx.Response(200, json={"choices": [{"message": {"content": " great\nFour."}, "logprobs": lp,
                                                      "finish_reason": "stop"}]})

    pieces = []
    reply = _model(plain).label_then_chat(EASY, LABELS, _good, None, "Grade:", pieces.append)
    assert reply.label.method == "logprobs" and reply.completion.text == "Four." and pieces == ["Four."]
    assert reply.completion.extra.get("usage_estimated")


@pytest.mark.parametrize(("text", "final", "start"), [
    (" great\nThe answer", False, 7), (" great", False, None), (" great", True, 6), (" gre", False, None),
    ("Grade: ok\nA", False, 10), ("Gra", False, None), (" bad. \nA", False, 7), (" great The answer", False, 7),
    ("The answer", False, 0), (" okay then", False, 0), ("", False, None),
])
def test_where_the_reply_begins_after_the_grade_line(text, final, start):
    assert grade_line_end(text, "Grade:", LABELS, final) == start


def test_the_grade_line_reads_the_label_token_past_an_echoed_prefix():
    line = GradeLine("Grade:", LABELS)
    line.feed("Grade", [{"token": "Grade", "top_logprobs": [{"token": "Grade", "logprob": 0.0}]}])
    assert line.top is None
    line.feed(": great", [{"token": ":", "top_logprobs": []},
                          {"token": " great", "top_logprobs": [{"token": " great", "logprob": -0.1}]}])
    assert line.top == [{"token": " great", "logprob": -0.1}] and line.take() == ""
    line.feed("\nHi", None)
    assert line.line == "Grade: great\n" and line.take() == "Hi" and line.take() == ""
