"""The HTTP side of OpenAI-compatible backends: client, keys, deadlines, retries and failure classification.

:class:`OpenAITransport` sends one request at a time with bounded retries on 429/5xx/timeouts/connection errors, a
server's Retry-After (capped) replacing the backoff. Keys are never needed for local endpoints (loopback, private
addresses, single-label or ``.local``/``.internal`` host names); for other hosts the key is read when a request is
made, never at import or construction. An upstream 4xx that retrying cannot fix (not 401/403/407/408/429) raises
:class:`UpstreamClientError` with the upstream status.

Each attempt has a total deadline (the policy's ``timeout_s``), capped by the caller's deadline
(:func:`call_deadline`). Every socket read, write and connect waits at most until it (:func:`deadline_transport`
with :func:`io_deadline`), so a backend that drips bytes — headers or body — is cut when its time is up, not one
read timeout after each byte; bodies are also checked between chunks (:func:`timed_chunks`, for transports that are
not ours).
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpcore
import httpx

from thrifty.core.errors import ModelError, TransientError
from thrifty.core.text import one_line
from thrifty.llm.base import RetryPolicy
from thrifty.llm.retry_after import retry_after_seconds

T = TypeVar("T")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
_NOT_CLIENT_ERRORS = (401, 403, 407, 408, 429)  # the backend's own credentials or load, not the request's fault
_DEADLINE: ContextVar[float | None] = ContextVar("thrifty_call_deadline", default=None)
_IO_DEADLINE: ContextVar[float | None] = ContextVar("thrifty_io_deadline", default=None)


class UpstreamClientError(ModelError):
    """The backend refused the request itself (HTTP 4xx but 401/403/407/408/429): retrying cannot help and the
    backend is healthy. ``status`` is the upstream HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DeadlineExceeded(httpx.TimeoutException):
    """The attempt's total time ran out while the reply was still arriving."""


@contextmanager
def call_deadline(at: float | None) -> Iterator[None]:
    """Within this block every request of an :class:`OpenAITransport` (in this context) ends by ``at`` (a
    ``time.monotonic()`` value), retries included; nested deadlines keep the earlier one. None: no change."""
    outer = _DEADLINE.get()
    token = _DEADLINE.set(at if outer is None else (outer if at is None else min(at, outer)))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


@contextmanager
def io_deadline(at: float) -> Iterator[None]:
    """Socket waits of a :func:`deadline_transport` in this context end by ``at`` (``time.monotonic()``)."""
    token = _IO_DEADLINE.set(at)
    try:
        yield
    finally:
        _IO_DEADLINE.reset(token)


def _capped(timeout: float | None, late: type[Exception]) -> float | None:
    """``timeout`` cut to the time left before the context's deadline; raises ``late`` when none is left."""
    at = _IO_DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise late("the deadline passed")
    return left if timeout is None else min(timeout, left)


class _CappedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _CappedStream(self._inner.start_tls(ssl_context, server_hostname,
                                                   _capped(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CappedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _CappedStream(self._inner.connect_tcp(host, port, _capped(timeout, httpcore.ConnectTimeout),
                                                     local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _CappedStream(self._inner.connect_unix_socket(path, _capped(timeout, httpcore.ConnectTimeout),
                                                             socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(max_connections: int = 100, max_keepalive: int = 20) -> httpx.HTTPTransport:
    """httpx's own transport (TLS verified, keep-alive) over sockets whose every wait ends by the
    :func:`io_deadline` of the calling context (httpx itself bounds single reads only)."""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(  # the one hook httpx leaves for a network backend
        ssl_context=httpx.create_ssl_context(), max_connections=max_connections,
        max_keepalive_connections=max_keepalive, keepalive_expiry=5.0, network_backend=_CappedBackend())
    return transport


def timed_chunks(resp: httpx.Response, deadline: float) -> Iterator[bytes]:
    """The raw body of ``resp``, raising :class:`DeadlineExceeded` once ``time.monotonic()`` passes ``deadline``."""
    for chunk in resp.iter_bytes():
        if time.monotonic() > deadline:
            raise DeadlineExceeded("the reply did not finish before the deadline", request=resp.request)
        yield chunk


def is_local_url(url: str) -> bool:
    """True for loopback, private and link-local addresses and for host names that cannot be public."""
    host = (urlparse(url).hostname or "").lower().rstrip(".")
    if not host:
        return False
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or ("." not in host and ":" not in host):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def server_message(resp: httpx.Response) -> str:
    """The error message an OpenAI-shaped (or any) error body carries, as one line."""
    try:
        body = resp.json()
    except ValueError:
        return one_line(resp.text or resp.reason_phrase)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "detail", "msg"):
                if err.get(key):
                    return one_line(err[key])
        elif isinstance(err, str):
            return one_line(err)
        if body.get("detail"):
            return one_line(body["detail"])
    return one_line(str(body))


def json_object(raw: bytes, method: str, url: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; anything else raises a one-line ModelError naming the request."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise ModelError(f"{method} {url}: response is not JSON: {one_line(raw.decode('utf-8', 'replace'), 120)}") \
            from None
    if not isinstance(data, dict):
        raise ModelError(f"{method} {url}: expected a JSON object, got {type(data).__name__}")
    return data


class OpenAITransport:
    """One endpoint's HTTP client, credentials and retry loop (see the module notes).

    ``base_url`` includes the API root (e.g. ``http://127.0.0.1:8000/v1``). ``api_key`` or the environment variable
    ``api_key_env`` holds the key; ``headers`` go with every request. ``transport`` and ``sleep`` exist for tests.
    """

    def __init__(self, base_url: str, retry: RetryPolicy, *, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", headers: dict[str, str] | None = None,
                 retry_after_max_s: float = 30.0, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.api_key_env = api_key_env
        self.retry_after_max_s = retry_after_max_s
        self._api_key = api_key
        self._headers = dict(headers or {})
        self._transport = transport
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """Whether the HTTP client exists (it is made on the first request)."""
        return self._client is not None

    def auth_headers(self) -> dict[str, str]:
        """The Authorization header for this endpoint (none for a local one without a key); a public endpoint
        without a key raises ModelError. Reads the key now."""
        key = self._api_key or os.environ.get(self.api_key_env) or None
        if key is None and not is_local_url(self.base_url):
            raise ModelError(
                f"{self.base_url} is not a local endpoint and no API key is set: pass api_key or set {self.api_key_env}"
            )
        return {"Authorization": f"Bearer {key}"} if key else {}

    def client(self) -> httpx.Client:
        """The shared HTTP client, made on first use."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.base_url, timeout=self.retry.timeout_s, headers=self._headers,
                    transport=self._transport or deadline_transport(),
                )
            return self._client

    def close(self) -> None:
        """Close the HTTP client (a later request opens a new one)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def attempt_window(self) -> tuple[float, float]:
        """(deadline, seconds left) for an attempt starting now: its own timeout, capped by the caller's deadline."""
        now = time.monotonic()
        deadline = now + self.retry.timeout_s
        outer = _DEADLINE.get()
        if outer is not None:
            deadline = min(deadline, outer)
        return deadline, deadline - now

    def pause(self, wait: float) -> bool:
        """Sleep ``wait`` before a retry, never past the caller's deadline; False when no time is left for one."""
        outer = _DEADLINE.get()
        if outer is not None and outer - time.monotonic() <= wait:
            return False
        self._sleep(wait)
        return True

    def failed(self, resp: httpx.Response, method: str, url: str) -> tuple[str, float | None]:
        """A failed response: raise when retrying cannot help (4xx but 408/429; a refused request raises
        :class:`UpstreamClientError`); else (what failed, the server's Retry-After wait capped at
        ``retry_after_max_s``, or None)."""
        code = resp.status_code
        if code not in (408, 429) and code < 500:
            message = f"{method} {url}: HTTP {code}: {server_message(resp)}"
            raise ModelError(message) if code in _NOT_CLIENT_ERRORS else UpstreamClientError(message, code)
        after = retry_after_seconds(resp.headers.get("retry-after"))
        return f"HTTP {code}: {server_message(resp)}", None if after is None else min(after, self.retry_after_max_s)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON request and its JSON object reply, with the retries of :meth:`send`."""
        url = f"{self.base_url}{path}"
        return self.send(method, path, body, lambda resp, deadline: json_object(
            b"".join(timed_chunks(resp, deadline)), method, url))

    def send(self, method: str, path: str, body: dict[str, Any] | None,
             read: Callable[[httpx.Response, float], T], committed: Callable[[], bool] = lambda: False,
             retry_on: tuple[type[Exception], ...] = ()) -> T:
        """Send a request and return ``read(response, deadline)`` of its first 2xx reply, retrying failures (and
        ``retry_on`` errors raised by ``read``) until the policy's attempts or the caller's deadline run out. Once
        ``committed()`` is true (part of the reply was already handed on) a failure raises at once instead."""
        headers = self.auth_headers()  # checked before any network traffic
        url = f"{self.base_url}{path}"
        client = self.client()
        attempts = self.retry.retries + 1
        last, tried = "", 0
        for attempt in range(attempts):
            wait = self.retry.delay(attempt)
            deadline, budget = self.attempt_window()
            if budget <= 0:
                last = "the caller's deadline passed"
                break
            tried += 1
            try:
                with io_deadline(deadline), \
                        client.stream(method, path, json=body, headers=headers, timeout=budget) as resp:
                    if resp.status_code < 400:
                        return read(resp, deadline)
                    raw = b"".join(timed_chunks(resp, deadline))
                kept = {k: v for k, v in resp.headers.items() if k.lower() in ("retry-after", "content-type")}
                last, after = self.failed(httpx.Response(resp.status_code, headers=kept, content=raw), method, url)
                wait = wait if after is None else after
            except httpx.TimeoutException:
                if committed():
                    raise ModelError(f"{method} {url}: the stream stalled or ran past its {budget:g}s deadline") \
                        from None
                last = f"timed out after {budget:g}s"
            except httpx.TransportError as exc:
                if committed():
                    raise ModelError(f"{method} {url}: the stream broke ({one_line(exc, 120)})") from None
                last = f"connection failed ({one_line(exc, 120)})"
            except retry_on as exc:
                if committed():
                    raise
                last = str(exc)
            if attempt < attempts - 1 and not self.pause(wait):
                break
        raise TransientError(f"{method} {url}: {last} (gave up after {tried} attempts)")


__all__ = ["DeadlineExceeded", "OpenAITransport", "UpstreamClientError", "call_deadline", "deadline_transport",
           "io_deadline", "is_local_url", "json_object", "server_message", "timed_chunks"]
