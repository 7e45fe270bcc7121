"""The batch runner really runs ``concurrency`` calls at once, keeps timeouts/retries working, and reads Retry-After."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from thrifty.core.errors import TransientError
from thrifty.llm.base import Completion, GenParams, RetryPolicy, achat_batch, call_with_retries, chat_batch
from thrifty.llm.fake import FakeChatModel
from thrifty.llm.retry_after import retry_after_seconds

SLEEP_S = 0.2


class _SleepyModel:
    """A ChatModel stub whose ``chat`` blocks for ``SLEEP_S`` seconds and counts how many calls overlap."""

    model_id = "sleepy"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def chat(self, messages, params: GenParams | None = None, assistant_prefix: str = "") -> Completion:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(SLEEP_S)
        finally:
            with self._lock:
                self.in_flight -= 1
        return Completion(text=messages[0]["content"], tokens_in=1, tokens_out=1, latency_s=SLEEP_S, model="sleepy")

    def label_probs(self, messages, labels, assistant_prefix: str = ""):
        raise NotImplementedError


def _requests(n: int) -> list[tuple[list[dict], None]]:
    return [([{"role": "user", "content": str(i)}], None) for i in range(n)]


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("thrifty-batch")]


# ---- concurrency ----------------------------------------------------------------------------------------------


def test_64_calls_at_concurrency_32_take_about_two_sleeps():
    model = _SleepyModel()
    t0 = time.perf_counter()
    out = chat_batch(model, _requests(64), concurrency=32)
    took = time.perf_counter() - t0
    assert [c.text for c in out] == [str(i) for i in range(64)]
    assert model.max_in_flight == 32
    assert 0.35 < took < 3 * SLEEP_S + 0.4, f"64 calls at concurrency 32 took {took:.2f}s"


@pytest.mark.slow
def test_64_calls_at_concurrency_4_take_about_sixteen_sleeps():
    model = _SleepyModel()
    t0 = time.perf_counter()
    out = chat_batch(model, _requests(64), concurrency=4)
    took = time.perf_counter() - t0
    assert len(out) == 64 and all(isinstance(c, Completion) for c in out)
    assert model.max_in_flight == 4
    assert 16 * SLEEP_S - 0.05 < took < 16 * SLEEP_S + 1.5, f"64 calls at concurrency 4 took {took:.2f}s"


def test_async_batch_runs_inside_a_running_loop_at_full_concurrency():
    model = _SleepyModel()

    async def main() -> tuple[list, float]:
        t0 = time.perf_counter()
        out = await achat_batch(model, _requests(16), concurrency=16)
        return out, time.perf_counter() - t0

    out, took = asyncio.run(main())
    assert len(out) == 16 and model.max_in_flight == 16
    assert took < 2 * SLEEP_S + 0.4


def test_sync_batch_inside_a_running_loop_says_to_await_the_async_one():
    async def main() -> None:
        chat_batch(_SleepyModel(), _requests(1))

    with pytest.raises(RuntimeError, match="await achat_batch"):
        asyncio.run(main())


def test_batch_pool_is_shut_down_afterwards():
    chat_batch(_SleepyModel(), _requests(8), concurrency=8)
    deadline = time.monotonic() + 3.0
    while _batch_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _batch_threads() == []


def test_empty_batch_returns_empty_list():
    assert chat_batch(_SleepyModel(), [], concurrency=4) == []


# ---- timeouts and retries on the batch's own pool ------------------------------------------------------------


def test_hung_call_times_out_in_place_without_holding_up_the_batch():
    def reply(text: str) -> str:
        if text == "hang":
            time.sleep(1.5)
        return text

    model = FakeChatModel(rules=[(lambda t: True, reply)])
    reqs = [([{"role": "user", "content": t}], None) for t in ("a", "hang", "b")]
    t0 = time.perf_counter()
    out = chat_batch(model, reqs, concurrency=3, retry=RetryPolicy(timeout_s=0.2, retries=0))
    took = time.perf_counter() - t0
    assert out[0].text == "a" and out[2].text == "b"
    assert isinstance(out[1], TransientError) and "timed out" in str(out[1])
    assert took < 1.0, f"the batch waited {took:.2f}s for a call that had already timed out"


def test_retry_waiting_behind_a_timed_out_call_is_not_charged_for_the_wait():
    """With one worker, the retry queues until the timed-out first attempt returns; its own clock starts later."""
    model = FakeChatModel(delay_s=0.4, delay_calls=1, default="second try")
    pol = RetryPolicy(timeout_s=0.15, retries=1, backoff_base_s=0.0)
    out = chat_batch(model, _requests(1), concurrency=1, retry=pol)
    assert isinstance(out[0], Completion) and out[0].text == "second try"
    assert model.n_calls == 2


def test_call_with_retries_uses_the_given_executor():
    from concurrent.futures import ThreadPoolExecutor

    names: list[str] = []

    def fn() -> str:
        names.append(threading.current_thread().name)
        return "ok"

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="given-pool") as pool:
        assert asyncio.run(call_with_retries(fn, RetryPolicy(), executor=pool)) == "ok"
    assert names and names[0].startswith("given-pool")


# ---- Retry-After ---------------------------------------------------------------------------------------------

NOW = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("0.25", 0.25), (".5", 0.5)],
)
def test_retry_after_delta_seconds(value, expected):
    assert retry_after_seconds(value, now=NOW) == expected


def test_retry_after_http_date_in_the_future():
    header = format_datetime(NOW + timedelta(seconds=90), usegmt=True)  # "Tue, 04 Mar 2025 12:01:30 GMT"
    assert retry_after_seconds(header, now=NOW) == pytest.approx(90.0)


def test_retry_after_http_date_in_the_past_is_zero_not_negative():
    header = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(header, now=NOW) == 0.0


def test_retry_after_http_date_accepts_naive_now_and_other_zones():
    header = "Tue, 04 Mar 2025 13:00:30 +0100"  # 12:00:30 UTC
    assert retry_after_seconds(header, now=NOW.replace(tzinfo=None)) == pytest.approx(30.0)


def test_retry_after_http_date_defaults_to_the_current_time():
    header = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    secs = retry_after_seconds(header)
    assert secs is not None and 55.0 <= secs <= 60.0


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "-5", "1e3", "nan", "inf", "12abc", "Mon, 99 Foo 2025", "9" * 400]
)
def test_retry_after_garbage_is_none(value):
    assert retry_after_seconds(value, now=NOW) is None


def test_retry_after_is_capped():
    assert retry_after_seconds("100", max_s=30.0) == 30.0
    far = format_datetime(NOW + timedelta(days=2), usegmt=True)
    assert retry_after_seconds(far, now=NOW, max_s=30.0) == 30.0
    assert retry_after_seconds("3", max_s=30.0) == 3.0


def test_http_backend_honours_an_http_date_retry_after(openai_stub):
    """The OpenAI-compatible backend reads HTTP-date Retry-After values too: past → no wait, far future → capped."""
    from _stub_server import Scripted

    from thrifty.llm.openai_compat import OpenAICompatModel

    past = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    future = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    openai_stub.script(Scripted(status=429, headers={"Retry-After": past}),
                       Scripted(status=503, headers={"Retry-After": future}))
    waits: list[float] = []
    pol = RetryPolicy(timeout_s=5.0, retries=2, backoff_base_s=0.5, jitter=False)
    model = OpenAICompatModel(openai_stub.url, "stub-model", retry=pol, retry_after_max_s=0.25, sleep=waits.append)
    done = model.chat([{"role": "user", "content": "hi"}])
    assert done.text == "hello there"
    assert waits == [0.0, 0.25]
