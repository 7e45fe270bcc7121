"""The ChatModel contract: Completion/LabelProbs records, generation params, and the shared async batch runner."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import math
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from thrifty.core.errors import ConfigError, TransientError
from thrifty.core.types import Messages


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters for one chat call. temperature 0 means greedy."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    logprobs: bool = False  # also return the log-prob of each generated token

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass
class Completion:
    """One generated answer with its accounting. ``text`` excludes any assistant prefix that was prefilled."""

    text: str
    tokens_in: int
    tokens_out: int
    latency_s: float
    model: str = ""
    finish_reason: str = "stop"  # "stop" | "length" | "error"
    token_logprobs: list[float] | None = None
    cached_tokens: int = 0  # prompt tokens served from a reused prefix (KV cache), counted inside tokens_in
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelProbs:
    """A distribution over a fixed label set read at one position.

    ``probs`` is renormalised over the labels and sums to 1. ``mass`` is the raw probability the model put on
    the label tokens before renormalising (1.0 for the text fallback). ``method`` says how it was read:
    "logprobs" (next-token distribution) or "text" (constrained text output, one-hot, or uniform if unparsed).
    """

    probs: dict[str, float]
    tokens_in: int
    latency_s: float
    mass: float = 1.0
    method: str = "logprobs"
    parsed: bool = True
    tokens_out: int = 0


@runtime_checkable
class ChatModel(Protocol):
    """What every backend offers. ``assistant_prefix`` is text prefilled at the start of the assistant turn:
    ``label_probs(m, labels, assistant_prefix=p)`` reads the next-token distribution after ``p``, and a
    following ``chat(m, params, assistant_prefix=p + label)`` continues from there, reusing the shared prefix
    where the backend can.

    Anything more (streaming through ``chat(on_text=)``, ``chat_tools``, ``hidden_state``, ``token_logprobs``,
    ``prompt_tokens``, calls that end within their own timeout) a backend declares in its ``CAPABILITIES`` and
    callers check with :func:`thrifty.llm.capabilities.supports`.
    """

    model_id: str

    def chat(self, messages: Messages, params: GenParams | None = None, assistant_prefix: str = "") -> Completion: ...

    def label_probs(self, messages: Messages, labels: Sequence[str], assistant_prefix: str = "") -> LabelProbs: ...


def renormalise(raw: dict[str, float]) -> tuple[dict[str, float], float]:
    """Renormalise non-negative label masses to sum to 1; returns (probs, total mass). Zero mass → uniform."""
    total = sum(max(v, 0.0) for v in raw.values())
    if total <= 0 or not math.isfinite(total):
        n = len(raw)
        return {k: 1.0 / n for k in raw}, 0.0
    return {k: max(v, 0.0) / total for k, v in raw.items()}, total


def validate_messages(messages: Messages) -> None:
    """Raise ConfigError unless ``messages`` is a non-empty list of {role, content} dicts."""
    if not isinstance(messages, list) or not messages:
        raise ConfigError("messages must be a non-empty list of {role, content} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ConfigError(f"message {i} must be a dict with 'role' and 'content'")
        if m["role"] not in {"system", "user", "assistant", "tool"}:
            raise ConfigError(f"message {i} has unknown role {m['role']!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """Timeout per attempt and jittered exponential backoff between attempts.

    The backoff ceiling for retry ``k`` (0-based) is ``min(backoff_max_s, backoff_base_s * backoff_factor**k)``.
    With ``jitter`` (the default) the actual wait is drawn uniformly from ``[0, ceiling]`` ("full jitter"), so
    clients that failed together do not retry in lock-step; without it the wait is the ceiling itself.

    Draws come from ``rng``, a private ``random.Random`` seeded with ``seed`` (None: fresh OS entropy, so separate
    processes do not share a sequence); pass a seed or an ``rng`` for reproducible waits. Copies made with
    ``dataclasses.replace`` share the same ``rng``.
    """

    timeout_s: float = 120.0
    retries: int = 2
    backoff_base_s: float = 0.5
    backoff_factor: float = 2.0
    backoff_max_s: float = 10.0
    jitter: bool = True
    seed: int | None = None
    rng: random.Random | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if not self.backoff_base_s >= 0:
            raise ConfigError(f"backoff_base_s must be >= 0, got {self.backoff_base_s}")
        if not self.backoff_factor >= 1:
            raise ConfigError(f"backoff_factor must be >= 1, got {self.backoff_factor}")
        if not self.backoff_max_s >= 0:
            raise ConfigError(f"backoff_max_s must be >= 0, got {self.backoff_max_s}")
        if self.rng is None:
            object.__setattr__(self, "rng", random.Random(self.seed))

    def ceiling(self, attempt: int) -> float:
        """The largest wait before retry number ``attempt`` (0-based): exponential growth, capped."""
        if attempt < 0:
            raise ConfigError(f"attempt must be >= 0, got {attempt}")
        try:
            grown = self.backoff_base_s * self.backoff_factor**attempt
        except OverflowError:
            grown = math.inf
        return min(self.backoff_max_s, grown)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based); ``rng`` overrides the policy's own source."""
        top = self.ceiling(attempt)
        if not self.jitter or top <= 0:
            return top
        source = rng if rng is not None else self.rng
        assert source is not None  # set in __post_init__
        return source.uniform(0.0, top)


async def _run_in_worker(fn: Callable[[], Any], timeout_s: float, executor: Executor | None) -> Any:
    """Run blocking ``fn`` on ``executor`` (None: the loop's default) and return its result.

    The ``timeout_s`` clock starts when a worker picks the call up, not when it is queued, so a call waiting behind
    busy workers (e.g. one still finishing an attempt that already timed out) is not charged for the wait. On
    timeout a :class:`TimeoutError` is raised; the worker thread cannot be interrupted and its result is dropped.
    """
    loop = asyncio.get_running_loop()
    started: list[float] = []

    def run() -> Any:
        started.append(time.monotonic())
        return fn()

    fut = loop.run_in_executor(executor, contextvars.copy_context().run, run)  # context as asyncio.to_thread
    try:
        wait = timeout_s
        while True:
            done, _ = await asyncio.wait({fut}, timeout=wait)
            if done:
                return fut.result()
            if started:
                wait = started[0] + timeout_s - time.monotonic()
                if wait <= 0:
                    raise TimeoutError(f"call took longer than {timeout_s:g}s")
            else:
                wait = timeout_s  # still queued: its clock has not started
    finally:
        if not fut.done():
            fut.cancel()  # drops a still-queued call; a running one finishes on its own and is ignored


async def call_with_retries(
    fn: Callable[[], Any], policy: RetryPolicy, sleep=asyncio.sleep, executor: Executor | None = None
) -> Any:
    """Run blocking ``fn`` in a worker thread with a timeout; retry TransientError/timeouts with backoff.

    ``executor`` runs the call (None: the event loop's default executor). Non-transient errors propagate at once.
    After the last attempt the last error is raised.
    """
    last: BaseException | None = None
    for attempt in range(policy.retries + 1):
        try:
            return await _run_in_worker(fn, policy.timeout_s, executor)
        except (TransientError, TimeoutError) as exc:
            last = exc
            if attempt < policy.retries:
                await sleep(policy.delay(attempt))
    if isinstance(last, TimeoutError):
        raise TransientError(f"call timed out after {policy.timeout_s:.1f}s ({policy.retries + 1} attempts)")
    assert last is not None
    raise last


async def achat_batch(
    model: ChatModel,
    requests: Sequence[tuple[Messages, GenParams | None]],
    concurrency: int = 4,
    retry: RetryPolicy | None = None,
    on_done: Callable[[int, Completion | BaseException], None] | None = None,
) -> list[Completion | BaseException]:
    """Run many chat calls with at most ``concurrency`` in flight; results keep request order.

    The blocking calls run on a thread pool of ``concurrency`` workers owned by this batch (so the loop's default
    executor, sized by CPU count, never caps them) and shut down when the batch ends; a call that timed out and is
    still running is left to finish in the background rather than holding the batch up.

    A request that still fails after its retries yields its exception in place (the batch never aborts
    half-way); ``on_done(index, result)`` is called as each finishes (progress bars, stores).
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    retry = retry or RetryPolicy()
    if getattr(model, "retries_itself", False):  # e.g. HTTP backends honouring Retry-After: don't retry twice
        retry = dataclasses.replace(retry, retries=0)
    out: list[Completion | BaseException] = [None] * len(requests)  # type: ignore[list-item]
    if not requests:
        return out
    sem = asyncio.Semaphore(concurrency)
    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(requests)), thread_name_prefix="thrifty-batch")

    async def one(i: int, messages: Messages, params: GenParams | None) -> None:
        async with sem:
            try:
                res: Completion | BaseException = await call_with_retries(
                    lambda: model.chat(messages, params), retry, executor=pool
                )
            except Exception as exc:  # recorded in place, never swallowed silently
                res = exc
            out[i] = res
            if on_done is not None:
                on_done(i, res)

    try:
        await asyncio.gather(*(one(i, m, p) for i, (m, p) in enumerate(requests)))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return out


def chat_batch(model: ChatModel, requests, concurrency: int = 4, retry: RetryPolicy | None = None, on_done=None):
    """Synchronous wrapper around :func:`achat_batch`; inside a running event loop, await that instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(achat_batch(model, requests, concurrency, retry, on_done))
    raise RuntimeError("chat_batch cannot run inside a running event loop; await achat_batch(...) instead")


class Timer:
    """Context manager measuring wall seconds in ``.s``."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        self.s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self._t0
