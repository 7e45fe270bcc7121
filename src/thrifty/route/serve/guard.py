"""What keeps the routing server safe and alive: hashed API keys, per-key rate limits, per-backend circuit
breakers. Plain classes with an injectable clock, no web framework.

- :class:`ApiKeys`: keys are stored and compared only as SHA-256 hashes (a key file holds ``name:hash`` lines;
  ``THRIFTY_API_KEYS`` may hold raw keys, hashed on load); :func:`new_key` makes one.
- :class:`RateLimiter`: a token bucket per key (``rate`` requests per second, ``burst`` at once); ``take``
  answers how long to wait when the bucket is empty (the Retry-After a 429 carries), ``wait`` the same without
  spending a token. The server also keeps one per client address for failed key checks (guessing is throttled).
- :class:`CircuitBreaker`: after ``failures`` consecutive failures a backend is *open* (calls fail at once) for
  ``reset_s``; then one trial call is let through (*half-open*): success closes it, failure opens it again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from thrifty.core.errors import ConfigError

KEY_PREFIX = "thr-"
_MAX_BUCKETS = 100_000  # keys (or client addresses) with a bucket before refilled ones are forgotten


def hash_key(key: str) -> str:
    """The stored form of an API key: its SHA-256 hex digest."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (shown once; only its hash is kept)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeys:
    """Named key hashes; :meth:`check` returns the key's name or None, in constant time per stored hash."""

    def __init__(self, hashes: dict[str, str] | None = None) -> None:
        self._by_name = dict(hashes or {})
        for name, h in self._by_name.items():
            if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise ConfigError(f"API key {name!r}: not a SHA-256 hex digest (64 lowercase hex characters)")

    def __len__(self) -> int:
        return len(self._by_name)

    @classmethod
    def load(cls, path: str | Path | None = None, env_value: str | None = None) -> ApiKeys:
        """Hashes from a key file (``name:sha256hex`` per line, ``#`` comments) and raw keys from ``env_value``
        (comma-separated, named env-1, env-2, ...)."""
        hashes: dict[str, str] = {}
        if path:
            p = Path(path)
            try:
                lines = p.read_text().splitlines()
            except OSError as exc:
                raise ConfigError(f"{p}: cannot read the API key file ({exc.strerror or exc})") from None
            for n, line in enumerate(lines, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                name, sep, digest = line.rpartition(":")
                if not sep or not name:
                    raise ConfigError(f"{p}:{n}: expected 'name:sha256hex' (make one with `thrifty route keys new`)")
                if name in hashes:
                    raise ConfigError(f"{p}:{n}: key name {name!r} appears twice")
                hashes[name] = digest.strip().lower()
        for i, raw in enumerate(k.strip() for k in (env_value or "").split(",") if k.strip()):
            hashes[f"env-{i + 1}"] = hash_key(raw)
        return cls(hashes)

    def check(self, key: str | None) -> str | None:
        """The name of the key, or None when it is missing or unknown."""
        if not key:
            return None
        digest = hash_key(key)
        found = None
        for name, h in self._by_name.items():  # compare against every hash: no early exit to time
            if hmac.compare_digest(digest, h):
                found = name
        return found


class RateLimiter:
    """Token buckets per key: ``rate`` tokens per second refill, at most ``burst`` held."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0 or burst < 1:
            raise ConfigError(f"rate limit needs rate > 0 and burst >= 1, got {rate} and {burst}")
        self.rate, self.burst, self._clock = float(rate), int(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, last refill time)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token for ``key``: 0.0 when allowed, else the seconds until a token is available."""
        return self._settle(key, spend=True)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0.0: it has one now); spends nothing."""
        return self._settle(key, spend=False)

    def _settle(self, key: str, spend: bool) -> float:
        with self._lock:
            now = self._clock()
            if len(self._buckets) > _MAX_BUCKETS:  # forget refilled buckets (a fresh one is the same): bounded memory
                self._buckets = {k: (t, at) for k, (t, at) in self._buckets.items()
                                 if t + (now - at) * self.rate < self.burst}
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                if spend:
                    self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker for one backend (see the module notes)."""

    def __init__(self, failures: int = 5, reset_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or reset_s < 0:
            raise ConfigError(f"circuit breaker needs failures >= 1 and reset_s >= 0, got {failures} and {reset_s}")
        self.failures, self.reset_s, self._clock = int(failures), float(reset_s), clock
        self._count = 0
        self._opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if self._clock() - self._opened_at >= self.reset_s else OPEN

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one trial call at a time is allowed."""
        with self._lock:
            state = self._state()
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._trial:
                self._trial = True
                return True
            return False

    def release(self) -> None:
        """End a call that says nothing about the backend's health (the request itself was refused, or it ran
        out of time elsewhere): a half-open trial slot is freed, nothing is counted."""
        with self._lock:
            self._trial = False

    def record(self, ok: bool) -> None:
        """Report a call's outcome."""
        with self._lock:
            self._trial = False
            if ok:
                self._count, self._opened_at = 0, None
                return
            self._count += 1
            if self._opened_at is not None or self._count >= self.failures:
                self._opened_at = self._clock()  # (re)open: a failed trial restarts the wait


__all__ = ["CLOSED", "HALF_OPEN", "KEY_PREFIX", "OPEN", "ApiKeys", "CircuitBreaker", "RateLimiter", "hash_key",
           "new_key"]
