"""Shared by the server benchmarks: a local OpenAI-compatible stub backend and a thrifty server process.

The stub (a threaded ``http.server`` on 127.0.0.1) answers ``POST /v1/chat/completions`` at once: a one-token
label request (``logprobs`` with ``max_tokens`` 1) gets ``great`` or ``bad`` with top log-probs — by a hash of the
last user message, so about half the queries are predicted bad — and any other request a short fixed answer.
It can inject failures: ``error_rate`` of requests get HTTP 500, ``hang_rate`` sleep ``hang_s`` before
answering (a backend timeout), chosen by a seeded ``random.Random``. ``GET /v1/models`` lists weak and strong.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "The answer is 42."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reply(body: dict) -> dict:
    last = next((m.get("content") or "" for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    if body.get("logprobs") and body.get("max_tokens") == 1:
        good = int(hashlib.sha256(str(last).encode()).hexdigest(), 16) % 2 == 0
        top = [{"token": " great", "logprob": -0.1 if good else -3.0}, {"token": " ok", "logprob": -2.5},
               {"token": " bad", "logprob": -3.0 if good else -0.1}]
        text, logprobs = top[0]["token"] if good else top[2]["token"], {"content": [{"token": "x", "logprob": -0.1,
                                                                                     "top_logprobs": top}]}
    else:
        text, logprobs = ANSWER, None
    return {"id": "stub", "object": "chat.completion", "created": 0, "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         "logprobs": logprobs}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}}


def serve_stub(port: int, error_rate: float = 0.0, hang_rate: float = 0.0, hang_s: float = 3.0,
               seed: int = 0) -> None:
    """Run the stub until the process ends (target of a multiprocessing.Process)."""
    rng, lock = random.Random(seed), threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms delayed-ACK stalls)

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"object": "list", "data": [{"id": "weak"}, {"id": "strong"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            with lock:
                u = rng.random()
            if u < error_rate:
                self._send(500, {"error": {"message": "injected failure", "type": "server_error"}})
                return
            if u < error_rate + hang_rate:
                time.sleep(hang_s)
            self._send(200, _reply(body))

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


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
    from thrifty.route.deploy import load_deployment
    from thrifty.route.server.app import build_app
    from thrifty.route.server.ledger import Ledger
    from thrifty.route.server.service import RoutingService, ServeConfig

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


def write_router(path: str, stub_url: str, tau: float = 0.5) -> str:
    """A router file whose tiers are the stub's weak and strong models."""
    with open(path, "w") as f:
        json.dump({"v": 1, "small": f"openai:{stub_url}#weak", "large": f"openai:{stub_url}#strong",
                   "predictor": {"name": "zero_shot"}, "policy": {"tau_good": tau}, "version": "bench"}, f)
    return path
