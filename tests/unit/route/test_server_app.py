"""The HTTP server on scripted tiers: OpenAI shapes, metadata and headers, streaming, auth, limits, errors."""

from __future__ import annotations

import json

import pytest
from _serve_fakes import large, service
from fastapi.testclient import TestClient

from thrifty.route.serve.app import build_app
from thrifty.route.serve.guard import ApiKeys, hash_key

KEY = "thr-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _client(tmp_path, keys=True, **cfg):
    svc, models = service(tmp_path, **cfg)
    app = build_app(svc, ApiKeys({"tester": hash_key(KEY)}) if keys else None)
    return TestClient(app), svc, models


def _body(text, **kw):
    return {"model": "thrifty/demo", "messages": [{"role": "user", "content": text}], **kw}


def test_chat_completion_has_openai_shape_metadata_and_headers(tmp_path):
    client, _, _ = _client(tmp_path)
    r = client.post("/v1/chat/completions", json=_body("easy one", max_tokens=8), headers=AUTH)
    assert r.status_code == 200
    d = r.json()
    assert d["object"] == "chat.completion" and d["choices"][0]["message"] == {"role": "assistant",
                                                                            "content": "small answer"}
    assert d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + d["usage"]["completion_tokens"]
    t = d["thrifty"]
    assert (t["action"], t["model"], t["label"]) == ("answer", "s", "great") and t["overhead_tokens"] > 0
    assert r.headers["x-thrifty-action"] == "answer" and r.headers["x-thrifty-model"] == "s"
    assert float(r.headers["x-thrifty-p-great"]) == pytest.approx(0.8)
    hard = client.post("/v1/chat/completions", json=_body("hard one"), headers=AUTH).json()
    assert hard["thrifty"]["action"] == "defer" and hard["choices"][0]["message"]["content"] == "large answer"


def test_streaming_sends_chunks_then_the_metadata_then_done(tmp_path):
    client, _, _ = _client(tmp_path)
    with client.stream("POST", "/v1/chat/completions", json=_body("hard one", stream=True), headers=AUTH) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "large answer"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["thrifty"]["action"] == "defer"


def test_models_health_and_metrics(tmp_path):
    client, _, _ = _client(tmp_path)
    assert client.get("/health").json()["status"] == "ok"  # no key needed
    assert [m["id"] for m in client.get("/v1/models", headers=AUTH).json()["data"]] == ["thrifty/demo"]
    client.post("/v1/chat/completions", json=_body("hard one"), headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text  # behind the key like /v1
    assert 'thrifty_requests_total{action="defer",code="200",router="demo"} 1.0' in text
    assert "thrifty_overhead_seconds_count" in text


def test_auth_rate_limits_and_caps_give_openai_errors(tmp_path):
    client, svc, _ = _client(tmp_path, burst=2, rate=0.01, max_tokens=64, default_max_tokens=16,
                                  max_body_bytes=2048)
    r = client.post("/v1/chat/completions", json=_body("easy"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert client.post("/v1/chat/completions", json=_body("easy"), headers={"Authorization": "Bearer x"}).status_code == 401
    r = client.post("/v1/chat/completions", json=_body("easy", max_tokens=65), headers=AUTH)
    assert r.status_code == 400 and r.json()["error"]["code"] == "max_tokens_too_large"
    assert client.post("/v1/chat/completions", json=_body("easy"), headers=AUTH).status_code == 200
    r = client.post("/v1/chat/completions", json=_body("easy"), headers=AUTH)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # the burst of 2 is spent
    assert svc.metrics.value("thrifty_rejected_total", {"reason": "rate"}) == 1


def test_bad_requests_get_one_clear_error_each(tmp_path):
    client, _, _ = _client(tmp_path, keys=False, max_body_bytes=2048)
    cases = [
        (_body("x", model="thrifty/nope"), 404, "model_not_found"),
        ({"model": "thrifty/demo", "messages": []}, 400, "invalid_request"),
        ({"model": "thrifty/demo", "messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid_request"),
        (_body("x", n=2), 400, "invalid_request"),
        (_body("x" * 5000), 413, "body_too_large"),
    ]
    for body, status, code in cases:
        r = client.post("/v1/chat/completions", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), body
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400

    def chunked(payload: bytes):  # no content-length: the size is measured as the body arrives
        yield from (payload[i:i + 500] for i in range(0, len(payload), 500))

    big = json.dumps(_body("x" * 5000)).encode()
    r = client.post("/v1/chat/completions", content=chunked(big), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    small = json.dumps(_body("easy one")).encode()
    r = client.post("/v1/chat/completions", content=chunked(small), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["thrifty"]["action"] == "answer"


def test_backend_outage_is_a_503_in_openai_shape_not_a_hang(tmp_path):
    client, _, _ = _client(tmp_path, keys=False, lg=large(fail_first=100), fallback="error", retries=0)
    r = client.post("/v1/chat/completions", json=_body("hard one"))
    assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"


TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object", "properties": {}}}}]


def test_tools_pass_through_to_a_tier_that_takes_them_and_are_reported_ignored_otherwise(tmp_path):
    from _serve_fakes import ToolModel

    client, _, models = _client(tmp_path, keys=False, lg=ToolModel(default="large answer", model_id="l"))
    history = [{"role": "user", "content": "hard sum"},
               {"role": "assistant", "content": None, "tool_calls": [{"id": "c0", "type": "function",
                                                                     "function": {"name": "add", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "c0", "content": "5"}]
    r = client.post("/v1/chat/completions", json={"model": "thrifty/demo", "messages": history, "tools": TOOLS,
                                                  "tool_choice": "auto"}).json()
    choice = r["choices"][0]
    assert r["thrifty"]["action"] == "defer" and r["thrifty"]["tools"] == "passed"
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["tool_calls"][0]["function"]["name"] == "add"
    sent, tools, choice_arg = models["l"].tool_requests[-1]
    assert sent[1]["tool_calls"][0]["id"] == "c0" and sent[2]["tool_call_id"] == "c0"  # the conversation as sent
    assert tools == TOOLS and choice_arg == "auto"
    easy = client.post("/v1/chat/completions", json={"model": "thrifty/demo", "tools": TOOLS,
                                                     "messages": [{"role": "user", "content": "easy"}]}).json()
    assert easy["thrifty"]["tools"] == "ignored" and easy["choices"][0]["finish_reason"] == "stop"


def test_a_stream_that_cannot_start_gets_a_real_error_status(tmp_path):
    client, _, _ = _client(tmp_path, keys=False, lg=large(fail_first=100), fallback="error", retries=0)
    r = client.post("/v1/chat/completions", json=_body("hard one", stream=True))
    assert r.status_code == 503 and r.json()["error"]["code"] == "backend_unavailable"
    r = client.post("/v1/chat/completions", json=_body("x", stream=True, model="thrifty/none"))
    assert r.status_code == 404


def test_streamed_chunks_are_the_backends_pieces_with_headers_of_the_decision(tmp_path):
    from thrifty.llm.fake import FakeChatModel

    client, _, _ = _client(tmp_path, keys=False, lg=FakeChatModel(default="one two three four", model_id="l"))
    with client.stream("POST", "/v1/chat/completions", json=_body("hard one", stream=True)) as r:
        headers = r.headers
        lines = [ln for ln in r.iter_lines() if ln]
    assert headers["x-thrifty-action"] == "defer" and headers["x-thrifty-model"] == "l"
    assert headers["x-thrifty-label"] == "bad"
    pieces = [json.loads(ln[6:])["choices"][0]["delta"].get("content") for ln in lines[1:-2]]
    assert pieces == ["one", " two", " three", " four"]


def test_an_openai_compatible_tier_streams_its_server_sent_pieces_through(tmp_path):
    import httpx

    from thrifty.llm.openai_compat import OpenAICompatModel

    events = [{"model": "l", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
              for p in ("remote", " pieces", " arrive")]
    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    seen = []

    def handler(request):
        seen.append(json.loads(request.content))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse.encode())

    remote = OpenAICompatModel("http://127.0.0.1:9/v1", "l", transport=httpx.MockTransport(handler), model_id="l")
    client, _, _ = _client(tmp_path, keys=False, lg=remote)
    with client.stream("POST", "/v1/chat/completions", json=_body("hard one", stream=True)) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    pieces = [json.loads(ln[6:])["choices"][0]["delta"].get("content") for ln in lines[1:-2]]
    assert pieces == ["remote", " pieces", " arrive"] and seen[0]["stream"] is True
