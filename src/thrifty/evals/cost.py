"""Honest cost accounting in one place: what a query cost, summed over its backend calls from measured usage.

A backend call reports its :class:`Usage` — prompt tokens (of which ``cached_tokens`` were reused from a prefix
or KV cache), output tokens and wall time. A query's cost is the sum over its calls of

    (prompt − cached) × price.prompt + cached × price.cached + output × price.output      (``unit="tokens"``)

or the sum of the calls' wall times (``unit="latency"``). Every router and every baseline is priced by
:func:`query_cost`, so a prediction call, a prefill that was paid and then discarded by a deferral, or an
embedding pass shows up in the cost exactly as it was measured.

**Default prices** (:func:`default_prices`) are proportional to a model's active parameters: a transformer spends
about 2·N FLOPs per token whether it reads (prefill) or writes (decode) it, so prompt and output tokens cost N
(billions of parameters) per token by default, and a cached prompt token costs ``cached_discount`` × that
(default 0.1, the order of hosted APIs' cache discounts). ``output_ratio`` prices decode above prefill, as
hosted APIs do (e.g. 4). No benchmark prices two models alike unless a caller passes such prices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from thrifty.core.errors import ConfigError, check_choice

UNITS = ("tokens", "latency")

ACTIVE_PARAMS_B: dict[str, float] = {
    "smollm2-135m-instruct": 0.135,
    "gemma-3-270m": 0.268,
    "qwen2.5-coder-0.5b-instruct": 0.494,
    "qwen2.5-coder-1.5b-instruct": 1.54,
    "all-minilm-l6-v2": 0.0227,
}
"""Active parameters (billions) of the bundled models, from their model cards."""


@dataclass(frozen=True)
class Price:
    """Price per token: uncached prompt, cached prompt, output (any currency or unit, one per table)."""

    prompt: float
    cached: float
    output: float

    def __post_init__(self) -> None:
        for name, v in (("prompt", self.prompt), ("cached", self.cached), ("output", self.output)):
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"price.{name} must be a finite number >= 0, got {v!r}")


@dataclass(frozen=True)
class Usage:
    """What one backend call used, as measured: its model, prompt tokens (cached ones included), the cached
    part, output tokens and wall time."""

    model: str
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if min(self.prompt_tokens, self.cached_tokens, self.output_tokens) < 0 or self.latency_s < 0:
            raise ConfigError(f"usage of {self.model!r}: token counts and latency must be >= 0")
        if self.cached_tokens > self.prompt_tokens:
            raise ConfigError(f"usage of {self.model!r}: {self.cached_tokens} cached tokens exceed "
                              f"{self.prompt_tokens} prompt tokens")


def default_prices(models: Iterable[str], cached_discount: float = 0.1, output_ratio: float = 1.0,
                   params_b: Mapping[str, float] | None = None) -> dict[str, Price]:
    """Prices proportional to active parameters (see the module notes); ``params_b`` adds or overrides models."""
    if not (0.0 <= cached_discount <= 1.0) or not (output_ratio > 0 and math.isfinite(output_ratio)):
        raise ConfigError("cached_discount must be in [0, 1] and output_ratio > 0")
    table = {**ACTIVE_PARAMS_B, **(params_b or {})}
    out = {}
    for m in models:
        if m not in table:
            raise ConfigError(f"no active-parameter count for {m!r}: pass params_b={{{m!r}: N}} or explicit prices")
        n = float(table[m])
        out[m] = Price(n, n * cached_discount, n * output_ratio)
    return out


def call_cost(usage: Usage, price: Price) -> float:
    """One call's token cost: uncached prompt, cached prompt and output tokens at their prices."""
    fresh = usage.prompt_tokens - usage.cached_tokens
    return fresh * price.prompt + usage.cached_tokens * price.cached + usage.output_tokens * price.output


def query_cost(calls: Iterable[Usage], prices: Mapping[str, Price] | None = None, unit: str = "tokens") -> float:
    """A query's cost: the sum over its backend calls (tokens at ``prices``, or wall time with ``unit="latency"``)."""
    check_choice("cost unit", unit, UNITS)
    total = 0.0
    for u in calls:
        if unit == "latency":
            total += float(u.latency_s)
            continue
        if prices is None or u.model not in prices:
            raise ConfigError(f"no price for model {u.model!r}")
        total += call_cost(u, prices[u.model])
    return total


__all__ = ["ACTIVE_PARAMS_B", "UNITS", "Price", "Usage", "call_cost", "default_prices", "query_cost"]
