"""Server load: bounded requests at high concurrency against a routing server whose backends misbehave.

A faulty OpenAI-compatible backend (its own process, 127.0.0.1; normal answers as in _server_stub.py, streamed as
server-sent events when asked) injects, per call and by a seeded generator: HTTP 500s (``--error-rate``), hangs past
the server's timeout (``--hang-rate``), drips — the whole reply one byte every ``--drip-gap-s``, far past the
timeout (``--drip-rate``) — and truncated streams that stop after a few pieces without ``[DONE]`` or a
finish_reason (``--trunc-rate``, streamed calls). The thrifty server (its own process, timeouts 1 s, one retry,
fallback to the lower tier, request deadline timeout × (retries + 1) × tiers) routes ``--n`` chat requests, a share
``--stream-share`` of them streamed, sent at ``--concurrency`` by an async client whose every request has a hard
deadline. Measured: status counts, 5xx from thrifty itself (anything but an OpenAI-shaped 503 "no backend could
answer" or a streamed ``stream_interrupted`` error), hangs (past the client deadline), requests past their
deadline + 1 s, silent truncations (a reply that looks complete but is not the backend's full answer, or a stream
that just stops), and whether the decision ledger holds every routed request. Written to
bench/results/server_load.json with its ``targets``.

    python bench/server_load.py [--n 1500] [--concurrency 32] [--error-rate 0.01] [--hang-rate 0.005]
"""

from __future__ import annotations

from _common import go_offline

go_offline()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from _server_stub import (  # noqa: E402
    ANSWER,
    _event,
    _reply,
    _tokens,
    free_port,
    serve_thrifty,
    wait_http,
    write_router,
)

TIMEOUT_S, RETRIES, TIERS = 1.0, 1, 2
DEADLINE_S = TIMEOUT_S * (RETRIES + 1) * TIERS  # the server's default request deadline


def _sse(body: dict[str, Any], cut: bool) -> bytes:
    """The stub's streamed reply (the grade line first when the request asks for one), one token a piece; ``cut``:
    two pieces, then nothing (no end marker)."""
    tokens = _tokens(body)
    out = b"".join(_event(body, tok, top) for tok, top in (tokens[:2] if cut else tokens))
    if not cut:
        end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 20, "completion_tokens": len(tokens)}}
        out += f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode()
    return out


def serve_faulty(port: int, rates: dict[str, float], hang_s: float, drip_gap_s: float, seed: int = 0) -> None:
    """Run the faulty backend until the process ends (target of a multiprocessing.Process)."""
    rng, lock = random.Random(seed), threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _raw(self, code: int, kind: str, data: bytes, close: bool = False) -> bytes:
            head = f"HTTP/1.1 {code} X\r\ncontent-type: {kind}\r\n"
            head += "connection: close\r\n\r\n" if close else f"content-length: {len(data)}\r\n\r\n"
            return head.encode() + data

        def do_GET(self) -> None:
            self.wfile.write(self._raw(200, "application/json", b'{"object": "list", "data": []}'))

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            with lock:
                u = rng.random()
            stream, edges = bool(body.get("stream")), np.cumsum([rates[k] for k in ("error", "hang", "drip", "trunc")])
            if u < edges[0]:
                self.wfile.write(self._raw(500, "application/json", b'{"error": {"message": "injected failure"}}'))
                return
            if u < edges[1]:
                time.sleep(hang_s)
            kind = "text/event-stream" if stream else "application/json"
            data = _sse(body, cut=False) if stream else json.dumps(_reply(body)).encode()
            if edges[2] <= u < edges[3] and stream:  # truncated: a few pieces, then the connection closes
                self.wfile.write(self._raw(200, kind, _sse(body, cut=True), close=True))
                self.close_connection = True
                return
            reply = self._raw(200, kind, data)
            if edges[1] <= u < edges[2]:  # drip: every byte of the reply, headers included, slowly
                try:
                    for i in range(len(reply)):
                        self.wfile.write(reply[i:i + 1])
                        self.wfile.flush()
                        time.sleep(drip_gap_s)
                except OSError:  # the server gave up on us: good
                    self.close_connection = True
                return
            self.wfile.write(reply)

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


async def _load(url: str, n: int, concurrency: int, stream_share: float, client_deadline_s: float,
                seed: int) -> list[dict[str, Any]]:
    """Send ``n`` requests; one outcome dict per request."""
    import httpx

    rng = random.Random(seed + 1)
    plan = [rng.random() < stream_share for _ in range(n)]
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    out: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=client_deadline_s, limits=limits) as client:

        async def streamed(body: dict[str, Any], rec: dict[str, Any]) -> None:
            text, rec["done"], rec["error_code"] = [], False, None
            async with client.stream("POST", f"{url}/chat/completions", json=body) as r:
                rec["status"], rec["request_id"] = r.status_code, r.headers.get("x-thrifty-request-id")
                if r.status_code != 200:
                    rec["body"] = json.loads(await r.aread())
                    return
                async for line in r.aiter_lines():
                    if line == "data: [DONE]":
                        rec["done"] = True
                    elif line.startswith("data: "):
                        event = json.loads(line[6:])
                        if "error" in event:
                            rec["error_code"] = event["error"].get("code")
                        for c in event.get("choices") or []:
                            text.append((c.get("delta") or {}).get("content") or "")
            rec["text"] = "".join(text)

        async def plain(body: dict[str, Any], rec: dict[str, Any]) -> None:
            r = await client.post(f"{url}/chat/completions", json=body)
            rec["status"], rec["body"] = r.status_code, r.json()
            if r.status_code == 200:
                rec["text"] = rec["body"]["choices"][0]["message"]["content"]
                rec["request_id"] = rec["body"]["thrifty"]["request_id"]

        async def one(i: int) -> None:
            body = {"model": "thrifty/bench", "max_tokens": 8, "stream": plan[i],
                    "messages": [{"role": "user", "content": f"question number {i}"}]}
            rec: dict[str, Any] = {"stream": plan[i]}
            async with sem:
                t0 = time.perf_counter()
                try:
                    await asyncio.wait_for((streamed if plan[i] else plain)(body, rec), client_deadline_s)
                except (TimeoutError, httpx.TimeoutException):
                    rec["hang"] = True
                except httpx.TransportError as exc:  # a dropped connection is a failure, counted as a status
                    rec["status"] = type(exc).__name__
                except ValueError:
                    rec["malformed"] = True
                rec["latency_s"] = time.perf_counter() - t0
            out.append(rec)

        await asyncio.gather(*(one(i) for i in range(n)))
    return out


def summarise(recs: list[dict[str, Any]], ledger: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and targets from the per-request outcomes and the ledger's decisions. A reply that names its request
    (a 200's ``thrifty.request_id``, a stream's ``x-thrifty-request-id``) must have its decision; 503s, which name
    none, must be matched by as many error decisions with status 503."""
    statuses = Counter(str(r.get("status", "hang" if r.get("hang") else "none")) for r in recs)
    own_5xx = silent = interrupted = 0
    for r in recs:
        status, body = r.get("status"), r.get("body") or {}
        code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
        if isinstance(status, int) and status >= 500 and not (status == 503 and code == "backend_unavailable"):
            own_5xx += 1
        if r.get("stream") and status == 200:
            if r.get("error_code") == "stream_interrupted":
                interrupted += 1
            elif r.get("error_code") is not None:
                own_5xx += 1  # an error event that is not an honest interruption
            elif not r.get("done") or r.get("text") != ANSWER:
                silent += 1
        elif status == 200 and r.get("text") != ANSWER:
            silent += 1
    routed = sum(1 for r in recs if r.get("status") in (200, 502, 503))
    ids = {e.get("request_id") for e in ledger}
    named = [r["request_id"] for r in recs if r.get("request_id")]
    refused = sum(1 for r in recs if r.get("status") == 503)
    logged_503 = sum(1 for e in ledger if e.get("action") == "error" and e.get("status") == 503)
    missing = sum(1 for i in named if i not in ids) + (refused - logged_503)
    lat = np.asarray([r["latency_s"] for r in recs if "status" in r and not r.get("hang")]) * 1000
    over = sum(1 for r in recs if r["latency_s"] > DEADLINE_S + 1.0)
    hangs = sum(1 for r in recs if r.get("hang"))
    result = {"statuses": dict(sorted(statuses.items())), "answered": statuses.get("200", 0) - interrupted,
              "stream_interrupted": interrupted, "malformed": sum(1 for r in recs if r.get("malformed")),
              "routed": routed, "in_ledger": len(ledger), "replies_with_request_id": len(named),
              "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                             "max": float(lat.max())} if lat.size else {}}
    result["targets"] = [
        {"id": "own_5xx", "value": own_5xx, "goal": 0, "direction": "<="},
        {"id": "hangs", "value": hangs, "goal": 0, "direction": "<="},
        {"id": "ledger_missing", "value": missing, "goal": 0, "direction": "<=",
         "note": "replies whose request id has no decision record, plus 503s beyond the error decisions"},
        {"id": "over_deadline", "value": over, "goal": 0, "direction": "<=",
         "note": f"requests slower than the request deadline ({DEADLINE_S:g} s) + 1 s"},
        {"id": "silent_truncations", "value": silent, "goal": 0, "direction": "<=",
         "note": "200s whose answer is not the backend's whole answer, or streams ending without [DONE] or error"}]
    return result


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--stream-share", type=float, default=0.5)
    ap.add_argument("--error-rate", type=float, default=0.01)
    ap.add_argument("--hang-rate", type=float, default=0.005)
    ap.add_argument("--drip-rate", type=float, default=0.01)
    ap.add_argument("--trunc-rate", type=float, default=0.02)
    ap.add_argument("--drip-gap-s", type=float, default=0.05, help="seconds between the bytes of a drip")
    ap.add_argument("--client-deadline-s", type=float, default=20.0, help="client deadline per request (a hang)")
    ap.add_argument("--out", default="bench/results/server_load.json")
    args = ap.parse_args(argv)
    t_start = time.time()
    logging.getLogger("thrifty.server").setLevel(logging.ERROR)  # the server's per-request warnings: not here
    tmp = Path(tempfile.mkdtemp(prefix="thrifty-load-"))
    stub_port, port = free_port(), free_port()
    stub_url = f"http://127.0.0.1:{stub_port}/v1"
    ledger = str(tmp / "ledger.sqlite")
    rates = {"error": args.error_rate, "hang": args.hang_rate, "drip": args.drip_rate, "trunc": args.trunc_rate}
    ctx = mp.get_context("fork")
    stub = ctx.Process(target=serve_faulty, args=(stub_port, rates, 3.0, args.drip_gap_s), daemon=True)
    stub.start()
    wait_http(f"{stub_url}/models")
    router = write_router(str(tmp / "router.json"), stub_url)
    server = ctx.Process(target=serve_thrifty, args=(router, port, ledger, TIMEOUT_S, RETRIES, TIMEOUT_S),
                         daemon=True)
    server.start()
    wait_http(f"http://127.0.0.1:{port}/health")
    print(f"{args.n} requests at concurrency {args.concurrency} ({100 * args.stream_share:g} % streamed); backend "
          f"faults: 500s {100 * args.error_rate:g} %, hangs {100 * args.hang_rate:g} % (3 s), drips "
          f"{100 * args.drip_rate:g} %, truncated streams {100 * args.trunc_rate:g} %; server timeout {TIMEOUT_S:g} s, "
          f"{RETRIES} retry, request deadline {DEADLINE_S:g} s", flush=True)
    t0 = time.perf_counter()
    recs = asyncio.run(_load(f"http://127.0.0.1:{port}/v1", args.n, args.concurrency, args.stream_share,
                             args.client_deadline_s, 0))
    wall = time.perf_counter() - t0
    import httpx

    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    server.terminate()  # SIGTERM: uvicorn shuts down and the service drains the ledger
    server.join(30)
    stub.terminate()
    from thrifty.core.store import RunStore

    with RunStore(ledger) as store:
        decisions = [r.value for r in store.records("decision")]
    result = summarise(recs, decisions)

    def total(prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix))

    result.update({"n": args.n, "concurrency": args.concurrency, "stream_share": args.stream_share,
                   "fault_rates": rates, "drip_gap_s": args.drip_gap_s, "timeout_s": TIMEOUT_S, "retries": RETRIES,
                   "request_deadline_s": DEADLINE_S, "client_deadline_s": args.client_deadline_s,
                   "fallbacks": total("thrifty_fallbacks_total"), "backend_errors": total("thrifty_backend_errors_total"),
                   "throughput_rps": args.n / wall, "load_wall_s": wall,
                   "command": " ".join(["python", *sys.argv]), "commit": _git("rev-parse", "HEAD"),
                   "worktree_dirty": bool(_git("status", "--porcelain")),
                   "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                               "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                               "note": "other benchmark jobs were running on the same cores"},
                   "date": datetime.date.today().isoformat(), "wall_s": time.time() - t_start})
    print(f"statuses: {result['statuses']}; answered {result['answered']}, stream_interrupted "
          f"{result['stream_interrupted']}, fallbacks {result['fallbacks']:.0f}, failed backend attempts "
          f"{result['backend_errors']:.0f}")
    lat = result["latency_ms"]
    if lat:
        print(f"latency ms: p50 {lat['p50']:.1f}, p99 {lat['p99']:.1f}, max {lat['max']:.1f}; "
              f"throughput {result['throughput_rps']:.0f} req/s over {wall:.1f} s")
    print(f"ledger: {result['in_ledger']} decisions for {result['routed']} routed replies")
    for t in result["targets"]:
        print(f"target {t['id']}: {t['value']} (goal {t['direction']} {t['goal']})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
