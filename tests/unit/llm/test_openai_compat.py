"""Tests of the OpenAI-compatible backend against a scripted stub server on 127.0.0.1."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import httpx
import pytest
from _stub_server import Scripted

from thrifty.core.errors import ConfigError, ModelError, TransientError
from thrifty.llm.base import ChatModel, GenParams, RetryPolicy
from thrifty.llm.openai_compat import OpenAICompatModel, is_local_url, label_mass_from_top, parse_label

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello"}]
LABELS = ["great", "ok", "bad"]
FAST = RetryPolicy(timeout_s=5.0, retries=2, backoff_base_s=0.01, backoff_factor=2.0, backoff_max_s=0.05)


def _model(stub, **kw) -> OpenAICompatModel:
    kw.setdefault("retry", FAST)
    return OpenAICompatModel(stub.url, "stub-model", **kw)


def test_chat_normal_reply_uses_server_usage(openai_stub):
    m = _model(openai_stub)
    assert isinstance(m, ChatModel)
    done = m.chat(MSGS, GenParams(max_tokens=7, temperature=0.5, seed=3, stop=("\n",)))
    assert done.text == "hello there"
    assert (done.tokens_in, done.tokens_out, done.cached_tokens) == (4, 2, 1)
    assert done.finish_reason == "stop" and done.latency_s > 0 and done.model == "stub-model"
    assert "usage_estimated" not in done.extra and done.token_logprobs is None
    (req,) = openai_stub.requests
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert "authorization" not in req.headers  # local URL: no key needed, none sent
    body = req.body
    assert body["messages"] == MSGS and body["model"] == "stub-model"
    assert (body["max_tokens"], body["temperature"], body["seed"], body["stop"]) == (7, 0.5, 3, ["\n"])
    assert "logprobs" not in body and "continue_final_message" not in body


def test_chat_token_logprobs_and_extra_body(openai_stub):
    m = _model(openai_stub, extra_body={"top_k": 5}, headers={"X-Test": "yes"})
    done = m.chat(MSGS, GenParams(logprobs=True))
    assert done.token_logprobs == pytest.approx([math.log(0.5)] * 2)
    req = openai_stub.requests[0]
    assert req.body["logprobs"] is True and req.body["top_logprobs"] == 1
    assert req.body["top_k"] == 5 and req.headers["x-test"] == "yes"


def test_missing_usage_falls_back_to_rough_count(openai_stub):
    openai_stub.usage = False
    done = _model(openai_stub).chat(MSGS)
    assert done.extra["usage_estimated"] is True
    assert done.tokens_in >= 1 and done.tokens_out >= 1


def test_prefix_continue_final_message_strips_echo(openai_stub):
    openai_stub.reply_text = "Grade: great, because"
    done = _model(openai_stub).chat(MSGS, assistant_prefix="Grade:")
    assert done.text == " great, because" and done.extra["prefix_echoed"] is True
    body = openai_stub.requests[0].body
    assert body["messages"][-1] == {"role": "assistant", "content": "Grade:"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


def test_prefix_instruct_mode_puts_prefix_in_instructions(openai_stub):
    openai_stub.reply_text = "Grade: ok"
    done = _model(openai_stub, prefix_mode="instruct").chat(MSGS, assistant_prefix="Grade:")
    assert done.text == " ok"
    body = openai_stub.requests[0].body
    assert "continue_final_message" not in body
    assert body["messages"][-1]["role"] == "user" and "Grade:" in body["messages"][-1]["content"]
    assert MSGS[-1]["content"] == "say hello"  # caller's messages are not mutated


def test_bad_prefix_mode_and_url_rejected():
    with pytest.raises(ConfigError):
        OpenAICompatModel("http://127.0.0.1:1/v1", "m", prefix_mode="magic")
    with pytest.raises(ConfigError):
        OpenAICompatModel("127.0.0.1:1/v1", "m")


def test_retry_on_503_then_success(openai_stub):
    openai_stub.script(Scripted(status=503), Scripted(status=503))
    done = _model(openai_stub).chat(MSGS)
    assert done.text == "hello there" and len(openai_stub.requests) == 3


def test_retry_after_is_honoured_but_capped(openai_stub):
    openai_stub.script(Scripted(status=429, headers={"Retry-After": "100"}))
    waits: list[float] = []
    done = _model(openai_stub, retry_after_max_s=0.25, sleep=waits.append).chat(MSGS)
    assert done.text == "hello there" and waits == [0.25]
    openai_stub.script(Scripted(status=503, headers={"Retry-After": "0.2"}))
    t0 = time.perf_counter()
    _model(openai_stub).chat(MSGS)
    assert 0.2 <= time.perf_counter() - t0 < 2.0  # waited the server's 0.2 s, not the 0.01 s backoff


def test_persistent_5xx_gives_transient_error_after_bounded_attempts(openai_stub):
    openai_stub.script(*[Scripted(status=500)] * 5)
    with pytest.raises(TransientError, match=r"HTTP 500.*3 attempts") as err:
        _model(openai_stub).chat(MSGS)
    assert "\n" not in str(err.value) and len(openai_stub.requests) == 3


def test_slow_reply_times_out_with_bounded_wall_time(openai_stub):
    openai_stub.script(*[Scripted(delay_s=1.5)] * 3)
    m = _model(openai_stub, retry=RetryPolicy(timeout_s=0.2, retries=1, backoff_base_s=0.01))
    t0 = time.perf_counter()
    with pytest.raises(TransientError, match="timed out"):
        m.chat(MSGS)
    assert time.perf_counter() - t0 < 1.2
    assert len(openai_stub.requests) == 2


def test_connection_refused_is_transient():
    m = OpenAICompatModel("http://127.0.0.1:9/v1", "m", retry=RetryPolicy(timeout_s=1, retries=1, backoff_base_s=0.01))
    with pytest.raises(TransientError, match="connection failed"):
        m.chat(MSGS)


def test_400_is_model_error_one_line_no_retry(openai_stub):
    msg = {"error": {"message": "model 'x' does not exist\n  try another", "type": "invalid_request_error"}}
    openai_stub.script(Scripted(status=400, body=msg))
    with pytest.raises(ModelError) as err:
        _model(openai_stub).chat(MSGS)
    text = str(err.value)
    assert "HTTP 400" in text and "model 'x' does not exist try another" in text and "\n" not in text
    assert not isinstance(err.value, TransientError) and len(openai_stub.requests) == 1


def test_non_local_url_needs_key_and_makes_no_call(monkeypatch):
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
        return httpx.Response(200, json=body)

    monkeypatch.delenv("MY_KEY", raising=False)
    m = OpenAICompatModel("https://api.example.com/v1", "gpt", api_key_env="MY_KEY",
                          transport=httpx.MockTransport(handler))
    with pytest.raises(ModelError, match="MY_KEY") as err:
        m.chat(MSGS)
    assert "\n" not in str(err.value) and calls == []
    monkeypatch.setenv("MY_KEY", "sk-late")  # read at call time, after construction
    assert m.chat(MSGS).text == "hi"
    assert calls[-1].headers["authorization"] == "Bearer sk-late"
    m2 = OpenAICompatModel("https://api.example.com/v1", "gpt", api_key="sk-given",
                           transport=httpx.MockTransport(handler))
    m2.chat(MSGS)
    assert calls[-1].headers["authorization"] == "Bearer sk-given"


def test_no_key_read_or_client_made_at_import():
    code = (
        "import os\n"
        "seen = []\n"
        "class Env(type(os.environ)):\n"
        "    def __getitem__(self, k):\n"
        "        seen.append(k); return super().__getitem__(k)\n"
        "os.environ.__class__ = Env\n"
        "import thrifty.llm.openai_compat as oc\n"
        "m = oc.OpenAICompatModel('https://api.example.com/v1', 'gpt')\n"
        "assert not m.http.is_open\n"
        "print('KEYREAD' if 'OPENAI_API_KEY' in seen else 'CLEAN')\n"
        "try:\n"
        "    m.http.auth_headers()\n"
        "except oc.ModelError:\n"
        "    pass\n"
        "print('KEYREAD' if 'OPENAI_API_KEY' in seen else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CLEAN", "KEYREAD"]  # read only once a request is being made


@pytest.mark.parametrize(
    ("url", "local"),
    [("http://127.0.0.1:8000/v1", True), ("http://localhost/v1", True), ("http://[::1]:80/v1", True),
     ("http://10.1.2.3/v1", True), ("http://192.168.0.5/v1", True), ("http://vllm:8000/v1", True),
     ("https://api.openai.com/v1", False), ("http://8.8.8.8/v1", False)],
)
def test_is_local_url(url, local):
    assert is_local_url(url) is local


def test_label_probs_from_top_logprobs(openai_stub):
    lp = _model(openai_stub).label_probs(MSGS, LABELS, assistant_prefix="Grade:")
    assert lp.method == "logprobs" and lp.parsed
    assert lp.mass == pytest.approx(0.8)
    assert lp.probs == pytest.approx({"great": 0.5 / 0.8, "ok": 0.2 / 0.8, "bad": 0.1 / 0.8})
    body = openai_stub.requests[0].body
    assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["messages"][-1] == {"role": "assistant", "content": "Grade:"}


def test_label_mass_sums_variants_and_split_labels():
    top = [{"token": "great", "logprob": math.log(0.3)}, {"token": " Great", "logprob": math.log(0.1)},
           {"token": "▁GREAT", "logprob": math.log(0.05)}, {"token": "gre", "logprob": math.log(0.2)},
           {"token": " o", "logprob": math.log(0.1)}, {"token": "ba", "logprob": math.log(0.05)},
           {"token": "b", "logprob": math.log(0.05)}]
    mass = label_mass_from_top(top, ["great", "okay", "bad", "bland"])
    # "great" has whole-word tokens, so the partial "gre" is not added; "okay" only has the prefix " o";
    # "ba" is a prefix of "bad" alone; "b" is shared by "bad" and "bland" and counts for neither
    assert mass == pytest.approx({"great": 0.45, "okay": 0.1, "bad": 0.05, "bland": 0.0})


def test_label_probs_falls_back_to_text_without_logprobs(openai_stub):
    openai_stub.logprobs = False
    openai_stub.replies.extend(["probe", "x", "Bad."])
    m = _model(openai_stub)
    lp = m.label_probs(MSGS, LABELS)
    assert lp.method == "text" and lp.parsed and lp.probs == {"great": 0.0, "ok": 0.0, "bad": 1.0}
    assert len(openai_stub.requests) == 3  # logprobs probe, text try, one retry
    assert "great, ok, bad" in openai_stub.requests[1].body["messages"][-1]["content"]
    openai_stub.replies.extend(["probe", "I cannot say", "great or bad"])
    lp2 = m.label_probs(MSGS, LABELS)  # one reply without logprobs is no proof: the next call asks again
    assert lp2.method == "text" and not lp2.parsed
    assert lp2.probs == pytest.approx(dict.fromkeys(LABELS, 1 / 3))
    assert len(openai_stub.requests) == 6 and openai_stub.requests[3].body["logprobs"] is True
    assert m.logprob_fallbacks == 2


def test_parse_label_is_strict():
    assert parse_label(" OK!", LABELS) == "ok"
    assert parse_label("okay", LABELS) is None  # not a whole word
    assert parse_label("great, not bad", LABELS) is None  # ambiguous
    assert parse_label("", LABELS) is None


def test_label_probs_rejects_bad_labels(openai_stub):
    with pytest.raises(ConfigError):
        _model(openai_stub).label_probs(MSGS, ["ok", "OK"])
    assert openai_stub.requests == []


def test_list_models(openai_stub):
    assert _model(openai_stub).list_models() == ["stub-model"]
    assert openai_stub.requests[0].method == "GET" and openai_stub.requests[0].path == "/v1/models"
