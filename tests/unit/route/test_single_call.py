"""PA in one backend call on an OpenAI-compatible tier: through PA, the routing engine and the server, an answered
query costs one call and streams its reply without the grade line; a deferral closes the stream at the label."""

from __future__ import annotations

import json

import httpx
import pytest
from _serve_fakes import large, service

from _sse_backend import ANSWER_TOKENS, EASY, HARD, Backend
from thrifty.llm.base import GenParams, RetryPolicy
from thrifty.llm.fake import FakeChatModel
from thrifty.llm.openai_compat import OpenAICompatModel
from thrifty.route.decide.engine import climb
from thrifty.route.decide.paradigms import pa
from thrifty.route.decide.policy import Policy
from thrifty.route.decide.single_call import single_call_fits
from thrifty.route.predictors import ZeroShotPredictor
from thrifty.route.serve.app import build_app
from thrifty.route.serve.service import ServiceError, ToolRequest

P = GenParams(max_tokens=16)
ANSWER = "".join(ANSWER_TOKENS)


def _remote(handler, model_id="s"):
    return OpenAICompatModel("http://127.0.0.1:9/v1", "small", transport=httpx.MockTransport(handler),
                             model_id=model_id, retry=RetryPolicy(timeout_s=5.0, retries=0), sleep=lambda s: None)


def test_pa_answers_in_one_call_and_counts_the_prefill_once():
    backend = Backend()
    model = _remote(backend)
    res = pa(model, None, EASY, P)
    assert res.action == "answer" and res.completion.text == ANSWER and len(backend.requests) == 1
    assert res.prediction.label == "great" and res.prediction.tokens_in == 40 and res.prediction.tokens_out == 1
    assert res.prefill_tokens == 40  # the answer re-evaluated none of the prediction's prompt
    assert res.completion.tokens_out == len(ANSWER_TOKENS) + 1


def test_pa_defers_at_the_label_and_the_stream_is_closed():
    backend = Backend()
    res = pa(_remote(backend), None, HARD, P)
    assert res.action == "defer" and res.completion is None and res.prediction.label == "bad"
    assert len(backend.requests) == 1 and backend.bodies[0].closed and backend.bodies[0].sent == 2


def test_the_engine_climbs_past_a_deferring_single_call_tier():
    backend, top = Backend(), FakeChatModel(default="large answer", model_id="l")
    small = _remote(backend)
    pred, policy = ZeroShotPredictor(small), Policy(0.5)
    res = climb([small, top], [pred], [policy], HARD, P)
    assert (res.action, res.tier, res.text) == ("defer", 1, "large answer") and len(backend.requests) == 1
    assert res.predictions[0].label == "bad" and top.calls[-1].messages == HARD
    res = climb([small, top], [pred], [policy], EASY, P)
    assert (res.action, res.tier, res.text) == ("answer", 0, ANSWER) and len(backend.requests) == 2


def test_stop_strings_that_could_end_the_grade_line_keep_the_two_call_path():
    backend = Backend()
    small = _remote(backend)
    pred = ZeroShotPredictor(small)
    assert single_call_fits(small, pred, P) and not single_call_fits(small, pred, GenParams(stop=("\n",)))
    assert not single_call_fits(small, pred, GenParams(logprobs=True))
    assert not single_call_fits(FakeChatModel(), ZeroShotPredictor(FakeChatModel()), P)
    res = pa(small, pred, EASY, GenParams(max_tokens=16, stop=("\n",)))
    assert res.action == "answer" and len(backend.requests) == 2 and not backend.requests[0].get("stream")


def test_the_server_answers_with_one_backend_call_plain_and_streamed(tmp_path):
    backend = Backend()
    svc, models = service(tmp_path, s=_remote(backend))
    res = svc.complete(EASY, "thrifty/demo", P)
    assert (res.action, res.tier, res.text) == ("answer", 0, ANSWER) and len(backend.requests) == 1
    assert res.tokens_in == 40 and res.overhead_tokens == 40 and res.metadata()["label"] == "great"
    events = []
    res = svc.complete(EASY, "thrifty/demo", P, on_event=lambda kind, payload: events.append((kind, payload)))
    assert len(backend.requests) == 2 and events[0][0] == "decided" and events[0][1]["action"] == "answer"
    assert [p for k, p in events[1:]] == list(ANSWER_TOKENS)
    res = svc.complete(HARD, "thrifty/demo", P)
    assert (res.action, res.text) == ("defer", "large answer") and len(backend.requests) == 3
    assert backend.bodies[-1].closed and backend.bodies[-1].sent == 2 and len(models["l"].calls) == 1


def test_the_http_stream_carries_the_reply_without_its_grade_line(tmp_path):
    from fastapi.testclient import TestClient

    backend = Backend()
    svc, _ = service(tmp_path, s=_remote(backend))
    client = TestClient(build_app(svc))
    body = {"model": "thrifty/demo", "messages": EASY, "stream": True, "max_tokens": 16}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = [ln for ln in r.iter_lines() if ln]
        headers = r.headers
    chunks = [json.loads(ln[6:]) for ln in lines if ln != "data: [DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    assert text == ANSWER and headers["x-thrifty-action"] == "answer" and len(backend.requests) == 1
    assert chunks[-1]["usage"]["prompt_tokens"] == 40 and lines[-1] == "data: [DONE]"
    plain = client.post("/v1/chat/completions", json={**body, "stream": False}).json()
    assert plain["choices"][0]["message"]["content"] == ANSWER and len(backend.requests) == 2


def test_fallbacks_without_logprobs_are_per_call_and_exported(tmp_path):
    backend = Backend(with_logprobs=False)
    svc, _ = service(tmp_path, s=_remote(backend))
    res = svc.complete(EASY, "thrifty/demo", P)
    assert res.action == "answer" and res.text == ANSWER and res.predictions[0].method == "text"
    backend.with_logprobs = True
    assert svc.complete(EASY, "thrifty/demo", P).predictions[0].method == "logprobs"
    assert svc.metrics.value("thrifty_logprob_fallbacks_total", {"model": "s"}) == 1
    assert all(r["logprobs"] for r in backend.requests) and len(backend.requests) == 2


def test_tools_keep_the_two_call_path(tmp_path):
    backend = Backend()
    svc, _ = service(tmp_path, s=_remote(backend))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    res = svc.complete(EASY, "thrifty/demo", P, tools=ToolRequest(tools, None, EASY))
    assert res.action == "answer" and res.tools == "passed" and len(backend.requests) == 2
    assert not backend.requests[0].get("stream") and backend.requests[1]["tools"] == tools


def test_a_failure_before_the_label_passes_up_and_after_streaming_began_is_a_502(tmp_path):
    svc, _ = service(tmp_path, s=_remote(lambda r: httpx.Response(503, json={"error": {"message": "busy"}})),
                     retries=0)
    res = svc.complete(EASY, "thrifty/demo", P)
    assert (res.action, res.model, res.predictions) == ("defer", "l", []) and res.errors

    backend = Backend()

    def cut(request):
        resp = backend(request)
        resp.stream.events = resp.stream.events[:4]  # label, newline, one token, then nothing
        return resp

    svc, models = service(tmp_path, s=_remote(cut), retries=0, lg=large())
    events = []
    with pytest.raises(ServiceError) as exc:
        svc.complete(EASY, "thrifty/demo", P, on_event=lambda k, p: events.append(k))
    assert exc.value.status == 502 and events[:2] == ["decided", "text"] and not models["l"].calls
    res = svc.complete(EASY, "thrifty/demo", P)  # not streamed to the client yet: the large tier answers
    assert (res.action, res.model) == ("defer", "l") and res.predictions[0].label == "great"
