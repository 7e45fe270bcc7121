"""Prometheus metrics for the routing server, in the text exposition format (no client library needed).

Counters and histograms with labels, thread-safe, rendered by :meth:`Metrics.render`. What the server records
is listed in docs/metrics.md (``thrifty_requests_total``, ``thrifty_deferrals_total``, ...).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in (labels or {}).items()))


def _fmt_labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    esc = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in items)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(items, esc, strict=True)) + "}"


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class Metrics:
    """A registry of named counters and histograms; names and help texts are declared up front."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}  # name → (type, help)
        self._counters: dict[str, dict[Labels, float]] = {}
        self._hists: dict[str, tuple[Sequence[float], dict[Labels, list[float]]]] = {}

    def counter(self, name: str, help_text: str) -> None:
        self._help[name] = ("counter", help_text)
        self._counters.setdefault(name, {})

    def histogram(self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._help[name] = ("histogram", help_text)
        self._hists.setdefault(name, (tuple(sorted(buckets)), {}))

    def inc(self, name: str, labels: dict[str, str] | None = None, value: float = 1.0) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + value

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        buckets, series = self._hists[name]
        key = _labels(labels)
        with self._lock:
            row = series.setdefault(key, [0.0] * (len(buckets) + 2))  # per-bucket counts, then sum, count
            for i, b in enumerate(buckets):
                if value <= b:
                    row[i] += 1
                    break
            row[-2] += value
            row[-1] += 1

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A counter's current value (0 when never incremented), or a histogram's observation count."""
        key = _labels(labels)
        with self._lock:
            if name in self._counters:
                return self._counters[name].get(key, 0.0)
            return self._hists[name][1].get(key, [0.0])[-1]

    def render(self) -> str:
        """The exposition text: HELP and TYPE lines, then one line per series (cumulative buckets)."""
        out: list[str] = []
        with self._lock:
            for name, (kind, help_text) in self._help.items():
                out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
                if kind == "counter":
                    for key, v in sorted(self._counters[name].items()):
                        out.append(f"{name}{_fmt_labels(key)} {_num(v)}")
                    continue
                buckets, series = self._hists[name]
                for key, row in sorted(series.items()):
                    cum = 0.0
                    for b, c in zip(buckets, row, strict=False):
                        cum += c
                        out.append(f"{name}_bucket{_fmt_labels(key, (('le', _num(b)),))} {_num(cum)}")
                    out.append(f"{name}_bucket{_fmt_labels(key, (('le', '+Inf'),))} {_num(row[-1])}")
                    out.append(f"{name}_sum{_fmt_labels(key)} {_num(row[-2])}")
                    out.append(f"{name}_count{_fmt_labels(key)} {_num(row[-1])}")
        return "\n".join(out) + "\n"


def server_metrics() -> Metrics:
    """The routing server's metric set."""
    m = Metrics()
    m.counter("thrifty_requests_total", "chat completion requests by router, action and HTTP status")
    m.counter("thrifty_deferrals_total", "requests answered by a higher tier than the first (deferred)")
    m.counter("thrifty_fallbacks_total", "requests served a lower tier's answer because a higher tier failed")
    m.counter("thrifty_backend_errors_total", "failed backend calls by model and kind (timeout, error, open)")
    m.counter("thrifty_rejected_total", "requests refused before routing by reason (auth, rate, size, invalid)")
    m.histogram("thrifty_overhead_seconds", "routing overhead per request: the predictions' latency")
    m.histogram("thrifty_request_seconds", "end-to-end time per routed request")
    return m


__all__ = ["LATENCY_BUCKETS", "Metrics", "server_metrics"]
