"""The ChatModel contract: Completion/LabelProbs records, generation params, and the shared async batch runner."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
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
    """Timeout per attempt and exponential backoff between attempts (delay = base * factor**k, capped)."""

    timeout_s: float = 120.0
    retries: int = 2
    backoff_base_s: float = 0.5
    backoff_factor: float = 2.0
    backoff_max_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        return min(self.backoff_max_s, self.backoff_base_s * self.backoff_factor**attempt)


async def call_with_retries(fn: Callable[[], Any], policy: RetryPolicy, sleep=asyncio.sleep) -> Any:
    """Run blocking ``fn`` in a worker thread with a timeout; retry TransientError/timeouts with backoff.

    Non-transient errors propagate at once. After the last attempt the last error is raised.
    """
    last: BaseException | None = None
    for attempt in range(policy.retries + 1):
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), timeout=policy.timeout_s)
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

    A request that still fails after its retries yields its exception in place (the batch never aborts
    half-way); ``on_done(index, result)`` is called as each finishes (progress bars, stores).
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    retry = retry or RetryPolicy()
    if getattr(model, "retries_itself", False):  # e.g. HTTP backends honouring Retry-After: don't retry twice
        retry = dataclasses.replace(retry, retries=0)
    sem = asyncio.Semaphore(concurrency)
    out: list[Completion | BaseException] = [None] * len(requests)  # type: ignore[list-item]

    async def one(i: int, messages: Messages, params: GenParams | None) -> None:
        async with sem:
            try:
                res: Completion | BaseException = await call_with_retries(
                    lambda: model.chat(messages, params), retry
                )
            except Exception as exc:  # recorded in place, never swallowed silently
                res = exc
            out[i] = res
            if on_done is not None:
                on_done(i, res)

    await asyncio.gather(*(one(i, m, p) for i, (m, p) in enumerate(requests)))
    return out


def chat_batch(model: ChatModel, requests, concurrency: int = 4, retry: RetryPolicy | None = None, on_done=None):
    """Synchronous wrapper around :func:`achat_batch`."""
    return asyncio.run(achat_batch(model, requests, concurrency, retry, on_done))


class Timer:
    """Context manager measuring wall seconds in ``.s``."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        self.s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.s = time.perf_counter() - self._t0
