"""Server overhead: latency added by the routing server and its throughput, against calling the backend directly
and (when given a Python with ``routellm[serve]==0.2.0``) against RouteLLM's server, all on one local stub.

Every server binds 127.0.0.1 and calls the same OpenAI-compatible stub backend (see _server_stub.py), which
answers at once. thrifty serves a self-prediction router (zero-shot PA, small tier = the stub's weak model): its
small tier predicts and answers in one streamed backend call, closed at the grade label when it defers. Measured
side by side, in rounds that alternate the targets (the machine's other load hits them alike): latency p50/p99 at
concurrency 1 and throughput at concurrency 16 for (a) the stub directly (one plain call), (b) a bare pass-through
on thrifty's own stack (FastAPI, uvicorn, httpx: the floor of such a server), (c) thrifty on queries its small tier
answers (one streamed call each), (d) thrifty on a half-deferred mix, and (e) RouteLLM's ``random``
router (one stub call per request), when ``--routellm-python`` names an interpreter that has it (started with
``OPENAI_API_KEY=dummy`` and ``LITELLM_LOCAL_MODEL_COST_MAP=True``). The stub counts the backend calls of answered
and deferred requests (plain and streamed), and a second stub that spaces its tokens ``--token-ms`` apart shows
how many tokens a deferral let the small model generate before the server closed the stream. Written to
bench/results/server_overhead.json with its ``targets``.

    python bench/server_overhead.py [--n1 300] [--n16 2000] [--rounds 3] [--routellm-python /path/to/python]
"""

from __future__ import annotations

from _common import OFFLINE, go_offline

go_offline()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from _server_stub import (  # noqa: E402
    ANSWER,
    free_port,
    predicted_good,
    serve_proxy,
    serve_stub,
    serve_thrifty,
    wait_http,
    write_router,
)

CTX = mp.get_context("fork")


def questions(n: int, good: bool | None, salt: str = "q") -> list[str]:
    """``n`` distinct questions the stub predicts great (``good``), bad, or either (None: the natural mix)."""
    out, i = [], 0
    while len(out) < n:
        text = f"{salt} question {i}"
        i += 1
        if good is None or predicted_good(text) == good:
            out.append(text)
    return out


async def _run(url: str, model: str, qs: list[str], concurrency: int, stream: bool = False
               ) -> tuple[np.ndarray, float, int, list[str]]:
    """Latencies (ms), wall time, failures and the thrifty action of each request, ``concurrency`` at a time."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    actions: list[str] = []
    failed = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits, headers={"Authorization": "Bearer dummy"}) as client:

        async def one(q: str) -> None:
            nonlocal failed
            body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": q}], "stream": stream}
            async with sem:
                t0 = time.perf_counter()
                async with client.stream("POST", f"{url}/chat/completions", json=body) as r:
                    raw = await r.aread()
                lat.append(1000 * (time.perf_counter() - t0))
                ok = r.status_code == 200 and (b"[DONE]" in raw if stream else ANSWER in r.json()["choices"][0]
                                                                         ["message"]["content"])
                failed += not ok
                actions.append(r.headers.get("x-thrifty-action", ""))

        for q in qs[:min(20, len(qs))]:  # warm-up: connections, first-call paths
            await one(q)
        lat.clear()
        actions.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(q) for q in qs))
        wall = time.perf_counter() - t0
    return np.asarray(lat), wall, failed, actions


def _measure(url: str, model: str, n1: int, n16: int, good: bool | None, salt: str) -> dict[str, Any]:
    lat1, _, f1, _ = asyncio.run(_run(url, model, questions(n1, good, salt + "1"), 1))
    lat16, wall16, f16, _ = asyncio.run(_run(url, model, questions(n16, good, salt + "16"), 16))
    return {"p50": float(np.percentile(lat1, 50)), "p99": float(np.percentile(lat1, 99)), "rps16": n16 / wall16,
            "p50_16": float(np.percentile(lat16, 50)), "failed": f1 + f16}


def _stub_calls(stats_url: str, fn) -> tuple[dict[str, int], Any]:
    httpx.post(f"{stats_url}/reset")
    out = fn()
    return httpx.get(stats_url).json(), out


def backend_calls(url: str, stats_url: str, n: int) -> dict[str, Any]:
    """Stub calls per answered and per deferred request, plain and streamed, and that the replies are right."""
    out: dict[str, Any] = {}
    for kind, good in (("answered", True), ("deferred", False)):
        for stream in (False, True):
            qs = questions(n, good, f"calls-{kind}-{stream}")
            stats, (_, _, failed, actions) = _stub_calls(stats_url, lambda qs=qs, s=stream: asyncio.run(
                _run(url, "thrifty/bench", qs, 4, stream=s)))
            warm = min(20, n)  # the warm-up requests were counted by the stub too
            want = "answer" if good else "defer"
            out[f"{kind}{'_streamed' if stream else ''}"] = {
                "requests": n, "calls_per_request": stats["calls"] / (n + warm), "failed": failed,
                "wrong_action": sum(a != want for a in actions)}
    return out


def start_stub_and_thrifty(stub_port: int, port: int, router_path: Path, **stub_kw: Any) -> list[Any]:
    """The stub backend and a thrifty server routing to it (a router file written at ``router_path``), both up."""
    stub_url = f"http://127.0.0.1:{stub_port}/v1"
    procs = [CTX.Process(target=serve_stub, args=(stub_port,), kwargs=stub_kw, daemon=True)]
    procs[0].start()
    wait_http(f"{stub_url}/models")
    router = write_router(str(router_path), stub_url)
    procs.append(CTX.Process(target=serve_thrifty, args=(router, port), kwargs={"timeout_s": 30.0}, daemon=True))
    procs[1].start()
    wait_http(f"http://127.0.0.1:{port}/health")
    return procs


def deferral_tokens(router_dir: Path, token_ms: float, n: int) -> dict[str, Any]:
    """A stub spacing its tokens ``token_ms`` apart: how many tokens each deferral let the small model send."""
    stub_port, port = free_port(), free_port()
    procs = start_stub_and_thrifty(stub_port, port, router_dir / "slow.json", token_s=token_ms / 1000)
    try:
        qs = questions(n, False, "slow")
        stats, _ = _stub_calls(f"http://127.0.0.1:{stub_port}/stats", lambda: asyncio.run(
            _run(f"http://127.0.0.1:{port}/v1", "thrifty/bench", qs, 1)))
    finally:
        for p in procs:
            p.terminate()
    full = len(ANSWER.split(" ")) + 2  # the grade line's two tokens, then the answer
    left = max(1, stats["left_early"])
    return {"token_ms": token_ms, "deferrals": n + min(20, n), "streams_closed_early": stats["left_early"],
            "tokens_sent_per_closed_stream": stats["tokens_before_leaving"] / left, "tokens_of_a_full_reply": full}


def _start_routellm(python: str, stub_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, **OFFLINE, "OPENAI_API_KEY": "dummy", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    cmd = [python, "-m", "routellm.openai_server", "--routers", "random", "--strong-model", "openai/strong",
           "--weak-model", "openai/weak", "--base-url", stub_url, "--api-key", "dummy", "--port", str(port)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _version(python: str) -> str:
    """RouteLLM's and torch's versions in ``python`` (torch may come from another environment on its path)."""
    code = "import importlib.metadata as m, torch; print(m.version('routellm'), 'torch', torch.__version__)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src", "bench"], capture_output=True,
                               text=True).stdout.strip()
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _median_rows(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    keys = rounds[0].keys()
    return {k: float(np.median([r[k] for r in rounds])) if k != "failed" else int(sum(r[k] for r in rounds))
            for k in keys}


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    rl_note = (f"RouteLLM 0.2.0 random router, concurrency 16: {r['rows']['routellm']['rps16']:.0f} req/s"
               if r["ratio_vs_routellm"] is not None else f"not measured: {r['routellm_reason']}")
    return [{"id": "backend_calls_per_answered", "value": r["backend_calls_per_answered"], "goal": 1, "direction": "<=",
             "note": "stub calls per request the small tier answered, plain and streamed clients (a deferral costs "
                     "2: the closed stream and the large tier's answer)"},
            {"id": "ratio_vs_direct", "value": r["ratio_vs_direct"], "goal": 0.8, "direction": ">=",
             "note": f"thrifty req/s / direct req/s at concurrency 16, answered queries, median of {r['rounds']} "
                     f"rounds; half-deferred mix {r['ratio_vs_direct_mixed']:.3f}; a bare FastAPI pass-through "
                     f"{r['proxy_ratio_vs_direct']:.3f}; {r['machine']['note']}"},
            {"id": "ratio_vs_routellm", "value": r["ratio_vs_routellm"], "goal": 2.5, "direction": ">=",
             "note": rl_note},
            {"id": "p50_added_ms", "value": r["p50_added_ms"], "goal": 1, "direction": "<=",
             "note": f"thrifty p50 - direct p50 at concurrency 1, answered queries, median of {r['rounds']} rounds; "
                     f"a bare FastAPI pass-through adds {r['proxy_p50_added_ms']:.2f} ms"}]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n1", type=int, default=300, help="requests at concurrency 1, per target and round")
    ap.add_argument("--n16", type=int, default=2000, help="requests at concurrency 16, per target and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds alternating the targets (medians are reported)")
    ap.add_argument("--calls-n", type=int, default=100, help="requests per kind in the backend-call count")
    ap.add_argument("--token-ms", type=float, default=20.0, help="token spacing of the deferral-cost stub")
    ap.add_argument("--routellm-python", help="a Python interpreter with routellm[serve]==0.2.0 installed")
    ap.add_argument("--out", default="bench/results/server_overhead.json")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="thrifty-overhead-"))
    load_before = os.getloadavg()
    stub_port, port = free_port(), free_port()
    stub_url, url = f"http://127.0.0.1:{stub_port}/v1", f"http://127.0.0.1:{port}/v1"
    procs = start_stub_and_thrifty(stub_port, port, tmp / "router.json")
    proxy_port = free_port()
    procs.append(CTX.Process(target=serve_proxy, args=(proxy_port, stub_url), daemon=True))
    procs[2].start()
    wait_http(f"http://127.0.0.1:{proxy_port}/docs")
    rl, rl_reason, rl_url = None, "no --routellm-python given", ""
    if args.routellm_python:
        rl_port = free_port()
        rl_url = f"http://127.0.0.1:{rl_port}/v1"
        rl = _start_routellm(args.routellm_python, stub_url, rl_port)
        try:
            wait_http(f"http://127.0.0.1:{rl_port}/health", timeout_s=300)
        except RuntimeError as exc:
            rl.terminate()
            rl, rl_reason = None, f"RouteLLM's server did not start: {exc}"
    plan = [("direct", stub_url, "weak", None), ("fastapi_proxy", f"http://127.0.0.1:{proxy_port}/v1", "weak", None),
            ("thrifty", url, "thrifty/bench", True), ("thrifty_mixed", url, "thrifty/bench", None)]
    if rl is not None:
        plan.append(("routellm", rl_url, "router-random-0.5", None))
    print(f"one stub backend on 127.0.0.1; {args.rounds} rounds of {args.n1} requests at concurrency 1 and "
          f"{args.n16} at concurrency 16 per target", flush=True)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in plan}
    for k in range(args.rounds):
        for name, target, model, good in plan:
            row = _measure(target, model, args.n1, args.n16, good, f"{name}-{k}")
            rounds[name].append(row)
            print(f"  round {k} {name}: p50 {row['p50']:.2f} ms, p99 {row['p99']:.2f} ms; {row['rps16']:.0f} req/s "
                  f"at concurrency 16; failed {row['failed']}", flush=True)
    rows = {name: _median_rows(rs) for name, rs in rounds.items()}
    calls = backend_calls(url, f"http://127.0.0.1:{stub_port}/stats", args.calls_n)
    if rl is not None:
        rl.terminate()
    for p in procs:
        p.terminate()
    defer = deferral_tokens(tmp, args.token_ms, min(args.calls_n, 50))
    d, t = rows["direct"], rows["thrifty"]
    load_after = os.getloadavg()
    result: dict[str, Any] = {
        "backend_calls_per_answered": max(calls["answered"]["calls_per_request"],
                                          calls["answered_streamed"]["calls_per_request"]),
        "ratio_vs_direct": t["rps16"] / d["rps16"], "ratio_vs_direct_mixed": rows["thrifty_mixed"]["rps16"] / d["rps16"],
        "ratio_vs_routellm": t["rps16"] / rows["routellm"]["rps16"] if "routellm" in rows else None,
        "routellm_reason": None if "routellm" in rows else rl_reason,
        "routellm_version": _version(args.routellm_python) if args.routellm_python else None,
        "proxy_ratio_vs_direct": rows["fastapi_proxy"]["rps16"] / d["rps16"],
        "proxy_p50_added_ms": rows["fastapi_proxy"]["p50"] - d["p50"],
        "p50_added_ms": t["p50"] - d["p50"], "p99_added_ms": t["p99"] - d["p99"],
        "rows": rows, "rounds_detail": rounds, "rounds": args.rounds, "backend_calls": calls, "deferral": defer,
        "command": " ".join(["python", *(("PY" if a == args.routellm_python else a) for a in sys.argv)]),
        "commit": _commit(), "date": datetime.date.today().isoformat(),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_before": [round(x, 2) for x in load_before],
                    "load_avg_after": [round(x, 2) for x in load_after],
                    "note": f"{os.cpu_count()} cores shared by the client, the servers, the stub and other jobs "
                            f"(load average {load_before[0]:.2f} before the run)"}}
    result["targets"] = targets(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nbackend calls per answered request {result['backend_calls_per_answered']:.3f}; per deferred "
          f"{calls['deferred']['calls_per_request']:.3f}; a deferral let the small model send "
          f"{defer['tokens_sent_per_closed_stream']:.2f} of {defer['tokens_of_a_full_reply']} tokens")
    for tg in result["targets"]:
        value = "null" if tg["value"] is None else f"{tg['value']:.3f}"
        print(f"target {tg['id']}: {value} (goal {tg['direction']} {tg['goal']})")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
