"""The HTTP edge of the routing server: tools checked before routing, upstream refusals as client errors, honest
rejection counters, private metrics and schema, throttled key guesses, stable stream ids, generic error bodies."""

from __future__ import annotations

import json

import pytest
from _serve_fakes import large, service
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from thrifty.llm.openai_compat import UpstreamClientError
from thrifty.route.serve.app import build_app
from thrifty.route.serve.guard import ApiKeys, hash_key

KEY = "thr-edge-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _client(tmp_path, keys=True, **cfg):
    svc, models = service(tmp_path, **cfg)
    return TestClient(build_app(svc, ApiKeys({"tester": hash_key(KEY)}) if keys else None)), svc, models


def _body(text, **kw):
    return {"model": "thrifty/demo", "messages": [{"role": "user", "content": text}], **kw}


def _fn(name="add", **extra):
    return {"type": "function", "function": {"name": name, **extra}}


@pytest.mark.parametrize("tools", [
    [{"type": "code_interpreter"}], [_fn("bad name!")], [_fn("x" * 65)], [_fn("")], [{"type": "function"}],
    [_fn("add", parameters="object")], [_fn(name=3)], ["add"],
])
def test_invalid_tools_are_refused_at_the_edge(tmp_path, tools):
    client, _, models = _client(tmp_path, keys=False)
    r = client.post("/v1/chat/completions", json=_body("hard one", tools=tools))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert models["l"].calls == [] and models["s"].calls == []


def test_valid_tools_keep_every_field_the_client_sent(tmp_path):
    client, _, _ = _client(tmp_path, keys=False)
    tools = [_fn("get_weather-2", description="d", parameters={"type": "object"}, strict=True), _fn("ping")]
    assert client.post("/v1/chat/completions", json=_body("easy", tools=tools)).status_code == 200


def test_an_upstream_refusal_is_a_generic_400_not_a_503(tmp_path):
    bad = UpstreamClientError("POST http://10.9.9.9/v1/chat/completions: HTTP 400: tool schema invalid", 400)
    client, svc, _ = _client(tmp_path, keys=False, lg=large(fail_first=100, failure=bad), breaker_failures=1)
    for _ in range(3):
        r = client.post("/v1/chat/completions", json=_body("hard one"))
        err = r.json()["error"]
        assert r.status_code == 400 and err["type"] == "invalid_request_error"
        assert "10.9.9.9" not in err["message"] and "tool schema" not in err["message"]
    assert svc.breaker("l").state == "closed"


def test_the_size_rejection_counts_only_oversized_bodies(tmp_path):
    client, svc, _ = _client(tmp_path, keys=False, max_body_bytes=2048)
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=_body("easy")).status_code == 200
    assert client.get("/v1/models").status_code == 200
    assert svc.metrics.value("thrifty_rejected_total", {"reason": "size"}) == 0
    assert client.post("/v1/chat/completions", json=_body("x" * 5000)).status_code == 413
    assert svc.metrics.value("thrifty_rejected_total", {"reason": "size"}) == 1


def test_metrics_are_prometheus_text_from_a_private_registry(tmp_path):
    client, _, _ = _client(tmp_path, keys=False)
    client.post("/v1/chat/completions", json=_body("hard one"))
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    for name in ("thrifty_requests", "thrifty_deferrals", "thrifty_fallbacks", "thrifty_backend_errors",
                 "thrifty_rejected", "thrifty_overhead_seconds", "thrifty_request_seconds"):
        assert name in families, name
    (sample,) = [s for s in families["thrifty_requests"].samples if s.name == "thrifty_requests_total"]
    assert sample.labels == {"router": "demo", "action": "defer", "code": "200"} and sample.value == 1
    other, _, _ = _client(tmp_path, keys=False)  # a second app counts on its own
    assert "thrifty_requests_total{" not in other.get("/metrics").text


def test_metrics_and_the_schema_need_a_key_unless_made_public(tmp_path):
    client, _, _ = _client(tmp_path)
    for path in ("/metrics", "/openapi.json"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=AUTH).status_code == 200
    assert client.get("/health").status_code == 200 and client.get("/docs").status_code == 404
    public, _, _ = _client(tmp_path, public_metrics=True, public_openapi=True)
    assert public.get("/metrics").status_code == 200 and public.get("/openapi.json").status_code == 200


def test_the_schema_declares_bearer_auth_and_the_event_stream(tmp_path):
    client, _, _ = _client(tmp_path)
    schema = client.get("/openapi.json", headers=AUTH).json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    chat = schema["paths"]["/v1/chat/completions"]["post"]
    assert chat["security"] == [{"bearerAuth": []}] and "security" not in schema["paths"]["/health"]["get"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]


def test_invalid_key_guesses_are_throttled_per_client(tmp_path):
    client, svc, _ = _client(tmp_path, auth_fail_rate=0.01, auth_fail_burst=3)
    bad = {"Authorization": "Bearer guess"}
    codes = [client.post("/v1/chat/completions", json=_body("easy"), headers=bad).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    r = client.post("/v1/chat/completions", json=_body("easy"), headers=AUTH)  # no oracle while throttled
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert svc.metrics.value("thrifty_rejected_total", {"reason": "auth_throttled"}) == 3


def test_every_streamed_chunk_carries_the_same_id(tmp_path):
    client, _, _ = _client(tmp_path, keys=False)
    with client.stream("POST", "/v1/chat/completions", json=_body("hard one", stream=True)) as r:
        lines = [ln for ln in r.iter_lines() if ln]
        request_id = r.headers["x-thrifty-request-id"]
    ids = {json.loads(ln[6:])["id"] for ln in lines[:-1]}
    assert ids == {f"chatcmpl-{request_id}"} and len(request_id) >= 16


def test_error_bodies_say_nothing_about_backends(tmp_path):
    from thrifty.core.errors import TransientError

    failure = TransientError("POST http://10.7.7.7:8000/v1/chat/completions: HTTP 500: secret stack trace")
    client, _, _ = _client(tmp_path, keys=False, lg=large(fail_first=100, failure=failure), fallback="error",
                           retries=0)
    for stream in (False, True):
        r = client.post("/v1/chat/completions", json=_body("hard one", stream=stream))
        assert r.status_code == 503 and "10.7.7.7" not in r.text and "secret" not in r.text
    ok, _, _ = _client(tmp_path, keys=False, lg=large(fail_first=1, failure=failure), retries=0)
    r = ok.post("/v1/chat/completions", json=_body("hard one"))
    assert r.status_code == 200 and "10.7.7.7" not in r.text and r.headers["x-thrifty-model"] == "s"
