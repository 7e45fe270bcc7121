"""Server load: many bounded requests at high concurrency against a routing server whose backends fail.

A stub OpenAI-compatible backend (see _server_stub.py) injects HTTP 500s and hangs (sleeps past the server's
per-call timeout) into ``--error-rate`` and ``--hang-rate`` of its calls. The thrifty server (its own process,
127.0.0.1, timeouts 1 s, one retry, fallback to the lower tier) routes ``--n`` chat requests sent at
``--concurrency`` by an async client whose every request has a hard deadline. Printed: status counts, how many
5xx came from thrifty itself (anything but an OpenAI-shaped 503 "no backend could answer"), hangs (requests past
the client deadline), latency percentiles, throughput, and whether the decision ledger holds every routed
request.

    python bench/server_load.py [--n 10000] [--concurrency 64] [--error-rate 0.01] [--hang-rate 0.005]
"""

from __future__ import annotations

from _common import go_offline

go_offline()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import multiprocessing as mp  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from _server_stub import free_port, serve_stub, serve_thrifty, wait_http, write_router  # noqa: E402


async def _load(url: str, n: int, concurrency: int, deadline_s: float) -> tuple[Counter, list[float], int, int, int]:
    import httpx

    statuses: Counter = Counter()
    lat: list[float] = []
    hangs = own_5xx = malformed = 0
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=deadline_s, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal hangs, own_5xx, malformed
            body = {"model": "thrifty/bench", "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"question number {i}"}]}
            async with sem:
                t0 = time.perf_counter()
                try:
                    r = await client.post(f"{url}/chat/completions", json=body)
                except httpx.TimeoutException:
                    hangs += 1
                    return
                except httpx.TransportError as exc:  # a dropped connection is a failure, counted as a status
                    statuses[type(exc).__name__] += 1
                    return
                lat.append(time.perf_counter() - t0)
                statuses[r.status_code] += 1
                try:
                    data = r.json()
                except ValueError:
                    malformed += 1
                    return
                if r.status_code >= 500 and not (r.status_code == 503 and
                                                  data.get("error", {}).get("code") == "backend_unavailable"):
                    own_5xx += 1
                if r.status_code == 200 and "thrifty" not in data:
                    malformed += 1

        await asyncio.gather(*(one(i) for i in range(n)))
    return statuses, lat, hangs, own_5xx, malformed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--error-rate", type=float, default=0.01)
    ap.add_argument("--hang-rate", type=float, default=0.005)
    ap.add_argument("--deadline-s", type=float, default=30.0, help="client deadline per request (a hang)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="thrifty-load-"))
    stub_port, port = free_port(), free_port()
    stub_url = f"http://127.0.0.1:{stub_port}/v1"
    ledger = str(tmp / "ledger.sqlite")
    ctx = mp.get_context("fork")
    stub = ctx.Process(target=serve_stub, args=(stub_port, args.error_rate, args.hang_rate, 3.0), daemon=True)
    stub.start()
    wait_http(f"{stub_url}/models")
    router = write_router(str(tmp / "router.json"), stub_url)
    server = ctx.Process(target=serve_thrifty, args=(router, port, ledger), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}/v1"
    wait_http(f"http://127.0.0.1:{port}/health")
    print(f"{args.n} requests at concurrency {args.concurrency}; backend errors {100 * args.error_rate:g} %, "
          f"hangs {100 * args.hang_rate:g} % (3 s, server timeout 1 s, 1 retry)")
    t0 = time.perf_counter()
    statuses, lat, hangs, own_5xx, malformed = asyncio.run(_load(url, args.n, args.concurrency, args.deadline_s))
    wall = time.perf_counter() - t0
    import httpx

    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    server.terminate()  # SIGTERM: uvicorn shuts down and the service drains the ledger
    server.join(30)
    stub.terminate()
    from thrifty.core.store import RunStore

    with RunStore(ledger) as store:
        in_ledger = store.count("decision")
    routed = sum(v for k, v in statuses.items() if k in (200, 503))
    lat_ms = 1000 * np.asarray(lat)
    fallbacks = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                    if line.startswith("thrifty_fallbacks_total"))
    errors = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                 if line.startswith("thrifty_backend_errors_total"))
    print(f"statuses: {dict(sorted(statuses.items(), key=str))}; answered {statuses.get(200, 0)}, fallbacks {fallbacks:.0f}, "
          f"failed backend attempts {errors:.0f}")
    print(f"5xx from thrifty itself: {own_5xx}; hangs (past {args.deadline_s:g} s): {hangs}; malformed replies: "
          f"{malformed}")
    print(f"latency ms: p50 {np.percentile(lat_ms, 50):.1f}, p99 {np.percentile(lat_ms, 99):.1f}, max "
          f"{lat_ms.max():.1f}; throughput {args.n / wall:.0f} req/s over {wall:.1f} s")
    print(f"ledger: {in_ledger} decisions for {routed} routed requests ({'complete' if in_ledger == routed else 'INCOMPLETE'})")
    clean = all(isinstance(k, int) for k in statuses)
    ok = clean and own_5xx == 0 and hangs == 0 and malformed == 0 and in_ledger == routed and sum(statuses.values()) == args.n
    print(f"goal (0 own 5xx, 0 hangs, every request answered or failed cleanly, ledger complete): "
          f"{'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
