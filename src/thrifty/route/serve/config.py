"""The routing server's configuration: :class:`ServeConfig` (every field documented in docs/cli.md), its number
checks, and :func:`tier_name`, a tier as clients see it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from thrifty.core.errors import ConfigError, check_choice

FALLBACKS = ("lower", "error")


@dataclass
class ServeConfig:
    """How ``thrifty route serve`` runs; see docs/cli.md for every field."""

    routers: dict[str, str] = field(default_factory=dict)  # name → router or ladder file
    host: str = "127.0.0.1"
    port: int = 6060
    api_keys: str = ""  # key file: name:sha256hex per line (`thrifty route keys new`)
    api_keys_env: str = "THRIFTY_API_KEYS"  # env variable holding raw keys, comma-separated
    no_auth: bool = False  # serve without keys (refused unless the host is loopback)
    rate: float = 20.0  # requests per second per key
    burst: int = 40
    max_body_bytes: int = 1_000_000
    max_tokens: int = 1024  # the largest max_tokens a request may ask for
    default_max_tokens: int = 256
    timeout_s: float = 120.0  # per backend call attempt
    retries: int = 1
    request_timeout_s: float | None = None  # per request; None: timeout_s × (retries + 1) × tiers
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    fallback: str = "lower"  # lower | error
    ledger: str = ""  # run store of the decision ledger ('' = no ledger)
    ledger_messages: bool = True  # keep the conversation in the ledger (needed to replay or audit it)
    log_prompts: bool = False
    history_tokens: int = 2048
    sticky: bool = False  # a conversation (x-thrifty-conversation) stays at the highest tier it reached
    n_threads: int = 1  # llama.cpp threads per model
    workers: int = 32  # threads for backend calls
    public_metrics: bool = False  # serve /metrics without a key
    public_openapi: bool = False  # serve /openapi.json without a key
    auth_fail_rate: float = 1.0  # failed key checks per second a client address may make (refill) ...
    auth_fail_burst: int = 10  # ... and at once; beyond that its requests get 429 without a key check

    def __post_init__(self) -> None:
        _check_numbers(self)
        if not self.routers:
            raise ConfigError("routers must name at least one router or ladder file (name: path)")
        for name in self.routers:
            if not re.fullmatch(r"[A-Za-z0-9_.]+", name):
                raise ConfigError(f"router name {name!r}: use letters, digits, '_' and '.' only")
        check_choice("fallback", self.fallback, FALLBACKS)
        if not 1 <= self.default_max_tokens <= self.max_tokens:
            raise ConfigError("need 1 <= default_max_tokens <= max_tokens")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")


_POSITIVE = ("rate", "timeout_s", "request_timeout_s", "auth_fail_rate")  # finite and > 0 (None: unset)
_AT_LEAST = {"breaker_reset_s": 0, "retries": 0, "burst": 1, "max_body_bytes": 1024, "max_tokens": 1,
             "default_max_tokens": 1, "breaker_failures": 1, "history_tokens": 1, "n_threads": 1, "workers": 1,
             "auth_fail_burst": 1}


def _check_numbers(cfg: ServeConfig) -> None:
    """Every number of the config finite and in range (``timeout_s: nan`` would fail every request)."""
    for name in (*_POSITIVE, *_AT_LEAST):
        value = getattr(cfg, name)
        if value is None and name == "request_timeout_s":
            continue
        low = _AT_LEAST.get(name)
        whole = low is not None and name != "breaker_reset_s"
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or \
                not math.isfinite(value) or (value <= 0 if low is None else value < low):
            what = f"an integer >= {low}" if whole else ("a finite number > 0" if low is None else
                                                          f"a finite number >= {low}")
            raise ConfigError(f"{name} must be {what}, got {value!r}")


def tier_name(spec: str) -> str:
    """A tier as clients see it: the model of an endpoint spec (``openai:URL#MODEL`` → MODEL), a model file's or
    folder's own name for local models, a plain name as it is — never a URL or a path."""
    if "#" in spec:
        return spec.rsplit("#", 1)[1] or "model"
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        return spec
    base = rest.split("+", 1)[0].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return base.removesuffix(".gguf") or kind


__all__ = ["FALLBACKS", "ServeConfig", "tier_name"]
