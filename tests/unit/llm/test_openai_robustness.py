"""The OpenAI-compatible backend under bad backends: logprob fallbacks that expire, upstream client errors that carry
their status, truncated streams, and a total deadline per attempt (and per caller) against servers that drip bytes."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from _stub_server import Scripted

from thrifty.core.errors import ModelError, TransientError
from thrifty.llm.base import RetryPolicy
from thrifty.llm.openai_compat import OpenAICompatModel, UpstreamClientError, call_deadline
from thrifty.llm.openai_stream import StreamInterrupted

MSGS = [{"role": "user", "content": "say hello"}]
LABELS = ["great", "ok", "bad"]
FAST = RetryPolicy(timeout_s=5.0, retries=0, backoff_base_s=0.01)


def _mock(handler, **kw):
    kw.setdefault("retry", FAST)
    return OpenAICompatModel("http://127.0.0.1:9/v1", "m", transport=httpx.MockTransport(handler),
                             sleep=lambda s: None, **kw)


# ---- 1. logprob fallbacks are per call or expire, and are counted -------------------------------------------

def test_one_reply_without_logprobs_does_not_switch_the_model_to_text_for_good(openai_stub):
    m = OpenAICompatModel(openai_stub.url, "stub-model", retry=FAST)
    openai_stub.logprobs = False  # one reply comes back without the field
    openai_stub.replies.extend(["probe", "bad"])
    assert m.label_probs(MSGS, LABELS).method == "text"
    assert m.logprob_fallbacks == 1
    openai_stub.logprobs = True  # the server answers with logprobs again: the next call reads them
    lp = m.label_probs(MSGS, LABELS)
    assert lp.method == "logprobs" and m.logprob_fallbacks == 1


def test_an_explicit_unsupported_answer_downgrades_until_it_expires():
    now = [0.0]
    seen = []

    def handler(request):
        body = json.loads(request.content)
        seen.append(bool(body.get("logprobs")))
        if body.get("logprobs"):
            return httpx.Response(400, json={"error": {"message": "logprobs are not supported by this model"}})
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})

    m = _mock(handler, logprob_retry_s=60.0, clock=lambda: now[0])
    assert m.label_probs(MSGS, LABELS).method == "text" and seen == [True, False]
    assert m.label_probs(MSGS, LABELS).method == "text" and seen[2:] == [False]  # downgraded: no probe
    now[0] = 61.0  # the downgrade expired: logprobs are tried again
    m.label_probs(MSGS, LABELS)
    assert seen[3] is True and m.logprob_fallbacks == 3


# ---- 2. upstream client errors carry their status, are not retried ------------------------------------------

@pytest.mark.parametrize("status", [400, 404, 422])
def test_upstream_client_errors_raise_with_their_status_and_no_retry(openai_stub, status):
    openai_stub.script(Scripted(status=status, body={"error": {"message": "context too long"}}))
    m = OpenAICompatModel(openai_stub.url, "stub-model", retry=RetryPolicy(timeout_s=5, retries=2))
    with pytest.raises(UpstreamClientError) as err:
        m.chat(MSGS)
    assert err.value.status == status and isinstance(err.value, ModelError) and len(openai_stub.requests) == 1


def test_auth_failures_and_throttling_upstream_are_not_client_errors(openai_stub):
    openai_stub.script(Scripted(status=401))
    with pytest.raises(ModelError) as err:
        OpenAICompatModel(openai_stub.url, "stub-model", retry=FAST).chat(MSGS)
    assert not isinstance(err.value, UpstreamClientError)


# ---- 3. a stream that ends without [DONE] or a finish_reason is not complete ---------------------------------

def _sse(*events, done=True) -> bytes:
    out = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + ("data: [DONE]\n\n" if done else "")
    return out.encode()


def _delta(text=None, finish=None):
    return {"model": "m", "choices": [{"index": 0, "delta": {} if text is None else {"content": text},
                                       "finish_reason": finish}]}


def test_a_truncated_stream_raises_instead_of_returning_a_complete_reply():
    def cut(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=_sse(_delta("The ans"), done=False))

    pieces = []
    with pytest.raises(StreamInterrupted):
        _mock(cut).chat(MSGS, on_text=pieces.append)
    assert pieces == ["The ans"]
    for ending in (_sse(_delta("a"), _delta(None, "stop"), done=False), _sse(_delta("a"))):  # either marks the end
        assert _mock(lambda r, e=ending: httpx.Response(200, headers={"content-type": "text/event-stream"},
                                                        content=e)).chat(MSGS, on_text=lambda p: None).text == "a"


def test_a_stream_cut_before_any_text_is_retried():
    calls = []

    def flaky(request):
        calls.append(1)
        body = _sse(done=False) if len(calls) == 1 else _sse(_delta("whole"), _delta(None, "stop"))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    m = _mock(flaky, retry=RetryPolicy(timeout_s=5, retries=1, backoff_base_s=0.0))
    assert m.chat(MSGS, on_text=lambda p: None).text == "whole" and len(calls) == 2


# ---- 4. a total deadline per attempt, and the caller's deadline ----------------------------------------------

class _Drip:
    """A raw HTTP server on 127.0.0.1 that sends its reply one byte every ``gap_s`` seconds."""

    def __init__(self, body: bytes, gap_s: float, sse: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        kind = "text/event-stream" if sse else "application/json"
        self.reply = (f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
        self.gap_s, self.stop = gap_s, threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                for i in range(len(self.reply)):
                    if self.stop.is_set():
                        return
                    conn.sendall(self.reply[i:i + 1])
                    time.sleep(self.gap_s)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


REPLY = json.dumps({"choices": [{"message": {"content": "slow"}, "finish_reason": "stop"}]}).encode()


@pytest.mark.parametrize("sse", [False, True])
def test_a_dripping_backend_is_cut_at_the_attempt_deadline(sse):
    body = _sse(_delta("slow"), _delta(None, "stop")) if sse else REPLY
    drip = _Drip(body, gap_s=0.05, sse=sse)  # every read returns quickly; the whole reply takes seconds
    try:
        m = OpenAICompatModel(drip.url, "m", retry=RetryPolicy(timeout_s=0.5, retries=0))
        t0 = time.perf_counter()
        with pytest.raises((TransientError, ModelError), match=r"timed out|stalled|deadline"):
            m.chat(MSGS, on_text=(lambda p: None) if sse else None)
        assert time.perf_counter() - t0 < 1.2
    finally:
        drip.close()


def test_the_callers_deadline_caps_every_attempt_and_the_retries(openai_stub):
    openai_stub.script(*[Scripted(delay_s=1.0)] * 4)
    m = OpenAICompatModel(openai_stub.url, "stub-model", retry=RetryPolicy(timeout_s=5, retries=3, backoff_base_s=0))
    t0 = time.perf_counter()
    with call_deadline(time.monotonic() + 0.3), pytest.raises(TransientError):
        m.chat(MSGS)
    assert time.perf_counter() - t0 < 0.8 and len(openai_stub.requests) == 1
