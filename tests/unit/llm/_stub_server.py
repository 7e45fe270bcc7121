"""A scriptable OpenAI-compatible HTTP stub on 127.0.0.1 for backend tests (stdlib only, one thread per request)."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """One canned answer: status, JSON body (None → the normal reply), extra headers, delay before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    """One request the stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class StubOpenAI:
    """Serves /v1/chat/completions and /v1/models. Tests set ``reply_text``, ``top_logprobs``, ``logprobs``,
    ``usage`` or queue ``Scripted`` answers with :meth:`script`; ``requests`` records what arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_POST(self) -> None:
                stub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        """Back to the default behaviour: a normal reply with usage and (when asked) logprobs."""
        with self._lock:
            self.generation = getattr(self, "generation", 0) + 1  # requests from before a reset are stale
            self.queue: deque[Scripted] = deque()
            self.requests: list[Seen] = []
            self.reply_text = "hello there"
            self.replies: deque[str] = deque()  # consumed first, one per chat request, then reply_text
            self.usage = True
            self.logprobs = True
            self.top_logprobs: list[tuple[str, float]] = [("great", 0.5), (" ok", 0.2), ("Bad", 0.1), ("the", 0.2)]

    def script(self, *answers: Scripted) -> None:
        """Queue answers used (in order) before falling back to the default reply."""
        with self._lock:
            self.queue.extend(answers)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- request handling ----

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self._lock:
            generation = self.generation
            self.requests.append(Seen(method, h.path, {k.lower(): v for k, v in h.headers.items()}, body))
            scripted = self.queue.popleft() if self.queue else Scripted()
        if scripted.delay_s:
            time.sleep(scripted.delay_s)
        payload = scripted.body
        if payload is None and scripted.status == 200:
            payload = self._models() if h.path.endswith("/models") else self._chat(body or {}, generation)
        elif payload is None:
            payload = {"error": {"message": f"scripted status {scripted.status}", "type": "stub"}}
        data = json.dumps(payload).encode()
        try:
            h.send_response(scripted.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in scripted.headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except OSError:  # the client gave up (timeout tests)
            pass

    def _models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "stub-model", "object": "model"}]}

    def _chat(self, body: dict[str, Any], generation: int) -> dict[str, Any]:
        with self._lock:
            # a request still sleeping from an earlier test must not eat the replies the current test queued
            fresh = generation == self.generation
            text = self.replies.popleft() if self.replies and fresh else self.reply_text
            usage, logprobs, top = self.usage, self.logprobs, list(self.top_logprobs)
        if body.get("max_tokens") == 1 and body.get("logprobs") and top:
            text = top[0][0]
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "length" if body.get("max_tokens") == 1 else "stop",
        }
        if body.get("logprobs") and logprobs:
            words = text.split() or [text]
            entries = [{"token": w, "logprob": math.log(0.5), "bytes": list(w.encode())} for w in words]
            k = int(body.get("top_logprobs") or 0)
            entries[0]["top_logprobs"] = [{"token": t, "logprob": math.log(p)} for t, p in top[:k]] if k else []
            choice["logprobs"] = {"content": entries}
        out: dict[str, Any] = {"id": "stub-1", "object": "chat.completion", "model": body.get("model"),
                               "choices": [choice]}
        if usage:
            n_in = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            out["usage"] = {"prompt_tokens": n_in, "completion_tokens": len(text.split()),
                            "total_tokens": n_in + len(text.split()),
                            "prompt_tokens_details": {"cached_tokens": 1}}
        return out
