"""Shared by the server benchmarks: a local OpenAI-compatible stub backend and a thrifty server process.

The stub (a threaded ``http.server`` on 127.0.0.1) answers ``POST /v1/chat/completions`` at once. A one-token
label request (``logprobs`` with ``max_tokens`` 1) gets ``great`` or ``bad`` with top log-probs — by a hash of the
last user message (:func:`predicted_good`), so about half the queries are predicted bad — and any other request a
short fixed answer. A streamed request (``stream: true``) gets server-sent events, one token a chunk, sent as HTTP
chunks on a kept-alive connection: when the conversation ends in an assistant turn that asks for the grade
(``Grade:``), the reply opens with the grade line — the label token first, with its ``top_logprobs`` when
``logprobs`` is set — then the answer; usage comes last when ``stream_options.include_usage`` asks for it. Between
tokens (``token_s`` apart) the stub checks whether the client is still there and stops generating when it left.

It can inject failures: ``error_rate`` of requests get HTTP 500, ``hang_rate`` sleep ``hang_s`` before answering
(a backend timeout), chosen by a seeded ``random.Random``. ``GET /v1/models`` lists weak and strong; ``GET /stats``
gives the counters (connections, calls, streamed calls, streams the client left early and the tokens those had
sent, tokens sent in all) and ``POST /stats/reset`` zeroes them.
"""

from __future__ import annotations

import hashlib
import json
import random
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "The answer is 42."
GRADE_PREFIX = "Grade:"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _last_user(body: dict) -> str:
    return str(next((m.get("content") or "" for m in reversed(body.get("messages", [])) if m.get("role") == "user"),
                    ""))


def predicted_good(text: str) -> bool:
    """Whether the stub predicts ``great`` (else ``bad``) for a query whose last user message is ``text``."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 2 == 0


def _top(good: bool) -> list[dict[str, Any]]:
    return [{"token": " great", "logprob": -0.1 if good else -3.0}, {"token": " ok", "logprob": -2.5},
            {"token": " bad", "logprob": -3.0 if good else -0.1}]


def _reply(body: dict) -> dict:
    if body.get("logprobs") and body.get("max_tokens") == 1:
        good = predicted_good(_last_user(body))
        top = _top(good)
        text, logprobs = top[0]["token"] if good else top[2]["token"], {"content": [{"token": "x", "logprob": -0.1,
                                                                                     "top_logprobs": top}]}
    else:
        text, logprobs = ANSWER, None
    return {"id": "stub", "object": "chat.completion", "created": 0, "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         "logprobs": logprobs}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}


def _tokens(body: dict) -> list[tuple[str, list[dict[str, Any]] | None]]:
    """The streamed reply's tokens, each with its top log-probs (the grade label's) or None."""
    words = ANSWER.split(" ")
    answer = [(w if i == 0 else f" {w}", None) for i, w in enumerate(words)]
    last = (body.get("messages") or [{}])[-1]
    if last.get("role") == "assistant" and str(last.get("content") or "").rstrip().endswith(GRADE_PREFIX):
        good = predicted_good(_last_user(body))
        return [(" great" if good else " bad", _top(good)), ("\n", None), *answer]
    return answer


def _event(body: dict, token: str, top: list[dict[str, Any]] | None, finish: str | None = None) -> bytes:
    choice: dict[str, Any] = {"index": 0, "delta": {"content": token}, "finish_reason": finish}
    if body.get("logprobs"):
        choice["logprobs"] = {"content": [{"token": token, "logprob": -0.1, "top_logprobs": top or []}]}
    return b"data: " + json.dumps({"id": "stub", "object": "chat.completion.chunk", "model": body.get("model"),
                                   "choices": [choice]}).encode() + b"\n\n"


def _gone(sock: socket.socket) -> bool:
    """Whether the client closed its side (readable with nothing to read; clients send nothing mid-reply)."""
    try:
        ready, _, _ = select.select([sock], [], [], 0)
        return bool(ready) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.counts = {"connections": 0, "calls": 0, "streamed": 0, "left_early": 0, "tokens_before_leaving": 0,
                       "tokens": 0}

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                self.counts[k] += v


def serve_stub(port: int, error_rate: float = 0.0, hang_rate: float = 0.0, hang_s: float = 3.0,
               seed: int = 0, token_s: float = 0.0) -> None:
    """Run the stub until the process ends (target of a multiprocessing.Process)."""
    stub_server(port, error_rate, hang_rate, hang_s, seed, token_s).serve_forever()


def stub_server(port: int = 0, error_rate: float = 0.0, hang_rate: float = 0.0, hang_s: float = 3.0,
                seed: int = 0, token_s: float = 0.0) -> ThreadingHTTPServer:
    """The stub's server, bound to 127.0.0.1:``port`` (0: any free port), not yet serving."""
    rng, lock, stats = random.Random(seed), threading.Lock(), _Stats()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stalls)

        def log_message(self, *args) -> None:  # quiet
            pass

        def setup(self) -> None:
            super().setup()
            stats.add(connections=1)

        def _send(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.wfile.write(f"HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {len(data)}"
                             "\r\n\r\n".encode() + data)  # one write: no delayed-ACK stall between header and body

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/stats"):
                with stats.lock:
                    self._send(200, dict(stats.counts))
                return
            self._send(200, {"object": "list", "data": [{"id": "weak"}, {"id": "strong"}]})

        def _stream(self, body: dict) -> None:
            """The reply as server-sent events: in one write when tokens come at once (``token_s`` 0), else token
            by token, stopping as soon as the client has left."""
            tokens = _tokens(body)
            events = [_event(body, token, top, "stop" if i == len(tokens) - 1 else None)
                      for i, (token, top) in enumerate(tokens)]
            tail = b""
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": 20, "completion_tokens": len(tokens), "total_tokens": 20 + len(tokens)}
                tail += b"data: " + json.dumps({"id": "stub", "choices": [], "usage": usage}).encode() + b"\n\n"
            tail += b"data: [DONE]\n\n"
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            if not token_s:
                data = b"".join(events) + tail
                self.wfile.write(head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
                stats.add(tokens=len(tokens))
                return
            self.wfile.write(head)
            for sent, data in enumerate(events):
                if sent:
                    time.sleep(token_s)
                try:
                    if sent and _gone(self.connection):
                        raise ConnectionResetError
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                except OSError:
                    stats.add(left_early=1, tokens_before_leaving=sent, tokens=sent)
                    self.close_connection = True
                    return
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
            stats.add(tokens=len(tokens))

        def do_POST(self) -> None:
            if self.path.rstrip("/").endswith("/stats/reset"):
                with stats.lock:
                    stats.reset()
                self._send(200, {"ok": True})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            stats.add(calls=1, streamed=int(bool(body.get("stream"))))
            with lock:
                u = rng.random()
            if u < error_rate:
                self._send(500, {"error": {"message": "injected failure", "type": "server_error"}})
                return
            if u < error_rate + hang_rate:
                time.sleep(hang_s)
            if body.get("stream"):
                self._stream(body)
            else:
                self._send(200, _reply(body))

    return _QuietServer(("127.0.0.1", port), Handler)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that left is no error here
            super().handle_error(request, client_address)


def wait_http(url: str, timeout_s: float = 60.0) -> None:
    """Block until ``url`` answers (any status)."""
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout_s:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout_s:.0f} s")


def serve_thrifty(router: str, port: int, ledger: str = "", timeout_s: float = 1.0, retries: int = 1,
                  backend_timeout_s: float = 5.0, workers: int = 64) -> None:
    """Run the thrifty routing server for ``router`` (no auth, loopback) until the process ends."""
    import uvicorn

    from thrifty.llm.factory import load_model
    from thrifty.route.serve.app import build_app
    from thrifty.route.serve.deploy import load_deployment
    from thrifty.route.serve.ledger import Ledger
    from thrifty.route.serve.service import RoutingService, ServeConfig

    def loader(spec: str):  # the service's guard retries: the client itself does not
        return load_model(spec, max_retries=0, timeout_s=backend_timeout_s)

    cfg = ServeConfig(routers={"bench": router}, port=port, no_auth=True, timeout_s=timeout_s, retries=retries,
                      workers=workers, ledger=ledger, rate=1e9, burst=10**9, ledger_messages=False)
    service = RoutingService({"bench": load_deployment(router, loader)}, cfg, Ledger(ledger) if ledger else None)
    server = uvicorn.Server(uvicorn.Config(build_app(service), host="127.0.0.1", port=port, log_level="error"))
    try:
        server.run()
    finally:
        service.close()


def serve_proxy(port: int, stub_url: str) -> None:
    """A bare pass-through on the server's own stack (FastAPI, uvicorn, a sync httpx client in the thread pool):
    each request forwarded to the stub's weak model as it is — the floor any server built this way pays."""
    import httpx
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    app, client = FastAPI(), httpx.Client(timeout=30.0)

    def forward(body: dict) -> dict:
        return client.post(f"{stub_url}/chat/completions", json={**body, "model": "weak"}).json()

    async def chat(body: dict):  # annotations FastAPI reads must resolve in this module: builtins only
        return JSONResponse(await run_in_threadpool(forward, body))

    app.post("/v1/chat/completions")(chat)

    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")).run()


def write_router(path: str, stub_url: str, tau: float = 0.5) -> str:
    """A router file whose tiers are the stub's weak and strong models."""
    with open(path, "w") as f:
        json.dump({"v": 1, "small": f"openai:{stub_url}#weak", "large": f"openai:{stub_url}#strong",
                   "predictor": {"name": "zero_shot"}, "policy": {"tau_good": tau}, "version": "bench"}, f)
    return path
