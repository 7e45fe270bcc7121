"""PA in one call against the benchmarks' stub backend over a real socket: a deferral closes the connection and the
stub stops generating after the label; an answer streams the whole reply and the connection is reused."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import httpx
import pytest

from thrifty.llm.base import GenParams
from thrifty.llm.openai_compat import OpenAICompatModel
from thrifty.route.decide.paradigms import pa

STUB = Path(__file__).resolve().parents[3] / "bench" / "_server_stub.py"


def _stub_module():
    spec = importlib.util.spec_from_file_location("bench_server_stub", STUB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def stub():
    mod = _stub_module()
    server = mod.stub_server(0, token_s=0.02)  # tokens 20 ms apart: a client that left is noticed in time
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield mod, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _question(mod, good: bool) -> list[dict[str, str]]:
    text = next(f"q{i}" for i in range(100) if mod.predicted_good(f"q{i}") == good)
    return [{"role": "user", "content": text}]


def _stats(client: httpx.Client, url: str, want: int, key: str = "calls") -> dict[str, int]:
    for _ in range(100):  # the stub counts a stream when it ends: wait for it
        stats = client.get(f"{url}/stats").json()
        if stats[key] >= want:
            return stats
        time.sleep(0.02)
    return stats


def test_a_deferral_stops_the_backend_after_the_label_and_an_answer_streams_whole(stub):
    mod, url = stub
    model = OpenAICompatModel(f"{url}/v1", "weak", max_retries=0)
    peek = httpx.Client()  # one kept-alive connection for reading the counters
    res = pa(model, None, _question(mod, False), GenParams(max_tokens=16))
    assert res.action == "defer" and res.prediction.label == "bad"
    stats = _stats(peek, url, 1, "left_early")
    assert (stats["calls"], stats["streamed"], stats["left_early"], stats["tokens_before_leaving"]) == (1, 1, 1, 1)
    pieces = []
    res = pa(model, None, _question(mod, True), GenParams(max_tokens=16))
    assert res.action == "answer" and res.completion.text == mod.ANSWER
    done = model.chat(_question(mod, True), GenParams(max_tokens=16), on_text=pieces.append)
    assert "".join(pieces) == done.text == mod.ANSWER
    stats = _stats(peek, url, 3)
    assert stats["calls"] == 3 and stats["left_early"] == 1
    # the closed stream's connection, the counters' one, and one kept alive for both answers (each read to its end)
    assert stats["connections"] == 3
    model.close()
    peek.close()
