"""Server overhead: latency added by the routing server and its throughput, against calling the backend directly
and (when given a Python with ``routellm[serve]==0.2.0``) against RouteLLM's server, all on one local stub.

Every server binds 127.0.0.1 and calls the same OpenAI-compatible stub backend (see _server_stub.py), which
answers at once. Measured side by side in one run: latency p50/p99 at concurrency 1 and throughput at
concurrency 16 for (a) the stub directly, (b) thrifty with a self-prediction router — each request costs the
stub two calls, the prediction (one token with log-probs) and the answer (or the deferred answer) — and
(c) RouteLLM's ``random`` router (one stub call per request), when ``--routellm-python`` names an interpreter
that has it. RouteLLM is started with ``OPENAI_API_KEY=dummy`` and ``LITELLM_LOCAL_MODEL_COST_MAP=True``.

    python bench/server_overhead.py [--n1 300] [--n16 2000] [--routellm-python /path/to/python]
"""

from __future__ import annotations

from _common import OFFLINE, go_offline

go_offline()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from _server_stub import free_port, serve_stub, serve_thrifty, wait_http, write_router  # noqa: E402


async def _run(url: str, model: str, n: int, concurrency: int) -> tuple[np.ndarray, float, int]:
    """Latencies (ms) of ``n`` requests at ``concurrency``, the wall time, and the number that failed."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits, headers={"Authorization": "Bearer dummy"}) as client:

        async def one(i: int) -> None:
            nonlocal failed
            body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": f"question {i}"}]}
            async with sem:
                t0 = time.perf_counter()
                r = await client.post(f"{url}/chat/completions", json=body)
                lat.append(1000 * (time.perf_counter() - t0))
                failed += r.status_code != 200

        for i in range(min(20, n)):  # warm-up: connections, first-call paths
            await one(-1 - i)
        lat.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    return np.asarray(lat), wall, failed


def _measure(name: str, url: str, model: str, n1: int, n16: int) -> dict[str, float]:
    lat1, _, f1 = asyncio.run(_run(url, model, n1, 1))
    lat16, wall16, f16 = asyncio.run(_run(url, model, n16, 16))
    row = {"p50": float(np.percentile(lat1, 50)), "p99": float(np.percentile(lat1, 99)), "rps16": n16 / wall16,
           "p50_16": float(np.percentile(lat16, 50)), "failed": f1 + f16}
    print(f"  {name}: p50 {row['p50']:.2f} ms, p99 {row['p99']:.2f} ms at concurrency 1; {row['rps16']:.0f} req/s, "
          f"p50 {row['p50_16']:.1f} ms at concurrency 16; failed {row['failed']}", flush=True)
    return row


def _start_routellm(python: str, stub_url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, **OFFLINE, "OPENAI_API_KEY": "dummy", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    cmd = [python, "-m", "routellm.openai_server", "--routers", "random", "--strong-model", "openai/strong",
           "--weak-model", "openai/weak", "--base-url", stub_url, "--api-key", "dummy", "--port", str(port)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n1", type=int, default=300, help="requests at concurrency 1")
    ap.add_argument("--n16", type=int, default=2000, help="requests at concurrency 16")
    ap.add_argument("--routellm-python", help="a Python interpreter with routellm[serve]==0.2.0 installed")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="thrifty-overhead-"))
    ctx = mp.get_context("fork")
    stub_port, port = free_port(), free_port()
    stub_url = f"http://127.0.0.1:{stub_port}/v1"
    procs = [ctx.Process(target=serve_stub, args=(stub_port,), daemon=True)]
    procs[0].start()
    wait_http(f"{stub_url}/models")
    router = write_router(str(tmp / "router.json"), stub_url)
    procs.append(ctx.Process(target=serve_thrifty, args=(router, port), kwargs={"timeout_s": 30.0}, daemon=True))
    procs[1].start()
    wait_http(f"http://127.0.0.1:{port}/health")
    rl = None
    if args.routellm_python:
        rl_port = free_port()
        rl = _start_routellm(args.routellm_python, stub_url, rl_port)
        wait_http(f"http://127.0.0.1:{rl_port}/health", timeout_s=300)
    print(f"one stub backend on 127.0.0.1; {args.n1} requests at concurrency 1, {args.n16} at concurrency 16")
    rows = {"direct": _measure("stub directly (1 backend call)", stub_url, "weak", args.n1, args.n16),
            "thrifty": _measure("thrifty, self-prediction router (2 backend calls)", f"http://127.0.0.1:{port}/v1",
                                "thrifty/bench", args.n1, args.n16)}
    if rl is not None:
        rows["routellm"] = _measure("RouteLLM 0.2.0, random router (1 backend call)", f"http://127.0.0.1:{rl_port}/v1",
                                    "router-random-0.5", args.n1, args.n16)
        rl.terminate()
    for p in procs:
        p.terminate()
    d, t = rows["direct"], rows["thrifty"]
    print(f"\nthrifty added latency at concurrency 1: p50 {t['p50'] - d['p50']:+.2f} ms, p99 {t['p99'] - d['p99']:+.2f} ms "
          f"(goal p50 <= 2 ms: {'met' if t['p50'] - d['p50'] <= 2 else 'not met'}); per backend call "
          f"{(t['p50'] - 2 * d['p50']) / 2:+.2f} ms")
    print(f"thrifty throughput {t['rps16']:.0f} req/s = {100 * t['rps16'] / d['rps16']:.0f} % of the direct rate "
          f"(goal >= 80 %: {'met' if t['rps16'] >= 0.8 * d['rps16'] else 'not met'})")
    if "routellm" in rows:
        r = rows["routellm"]
        print(f"RouteLLM added p50 {r['p50'] - d['p50']:+.2f} ms; thrifty throughput = {t['rps16'] / r['rps16']:.2f} x "
              f"RouteLLM's (goal >= 2.5 x: {'met' if t['rps16'] >= 2.5 * r['rps16'] else 'not met'})")
    else:
        print("RouteLLM not measured (give --routellm-python)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
