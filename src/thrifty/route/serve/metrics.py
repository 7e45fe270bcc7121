"""Prometheus metrics for the routing server: counters and histograms with declared labels in a private registry.

Each :class:`Metrics` owns its own ``prometheus_client`` CollectorRegistry (never the process-wide default), so two
services in one process count apart. ``watch`` exports a counter read from elsewhere at scrape time (e.g. the
backends' own fallback counts). What the server records is listed in docs/metrics.md (``thrifty_requests_total``,
``thrifty_deferrals_total``, ...). ``prometheus_client`` is imported when a registry is made, not at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Watched:
    """A counter family whose samples ``read()`` returns at scrape time ({label value: count})."""

    def __init__(self, name: str, help_text: str, label: str, read: Callable[[], dict[str, float]]) -> None:
        self.name, self.help, self.label, self.read = name, help_text, label, read

    def _family(self) -> Any:
        from prometheus_client.core import CounterMetricFamily

        return CounterMetricFamily(self.name, self.help, labels=[self.label])

    def describe(self) -> Iterator[Any]:
        yield self._family()

    def collect(self) -> Iterator[Any]:
        family = self._family()
        for value, count in sorted(self.read().items()):
            family.add_metric([value], float(count))
        yield family


class Metrics:
    """Named counters and histograms in a private registry; names, help texts and label names are declared up
    front, then ``inc``/``observe`` take the label values as a dict."""

    def __init__(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

        self.registry = CollectorRegistry(auto_describe=True)
        self.content_type = CONTENT_TYPE_LATEST
        self._metrics: dict[str, Any] = {}
        self._kinds: dict[str, str] = {}

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        from prometheus_client import Counter

        self._metrics[name] = Counter(name, help_text, tuple(labels), registry=self.registry)
        self._kinds[name] = "counter"

    def histogram(self, name: str, help_text: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        from prometheus_client import Histogram

        self._metrics[name] = Histogram(name, help_text, tuple(labels), registry=self.registry,
                                        buckets=tuple(sorted(buckets)))
        self._kinds[name] = "histogram"

    def watch(self, name: str, help_text: str, label: str, read: Callable[[], dict[str, float]]) -> None:
        """A counter ``read()`` reports at each scrape ({label value: count})."""
        self.registry.register(_Watched(name, help_text, label, read))
        self._kinds[name] = "watched"

    def _series(self, name: str, labels: dict[str, str] | None) -> Any:
        metric = self._metrics[name]
        return metric.labels(**{k: str(v) for k, v in labels.items()}) if labels else metric

    def inc(self, name: str, labels: dict[str, str] | None = None, value: float = 1.0) -> None:
        self._series(name, labels).inc(value)

    def observe(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self._series(name, labels).observe(value)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A counter's current value (0 when never incremented), or a histogram's observation count."""
        kind = self._kinds[name]
        sample = f"{name}_count" if kind == "histogram" else (name if name.endswith("_total") else f"{name}_total")
        found = self.registry.get_sample_value(sample, {k: str(v) for k, v in (labels or {}).items()})
        return 0.0 if found is None else float(found)

    def render(self) -> str:
        """The exposition text of every metric in this registry."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode("utf-8")


def server_metrics() -> Metrics:
    """The routing server's metric set."""
    m = Metrics()
    m.counter("thrifty_requests_total", "chat completion requests by router, action and HTTP status",
              ("router", "action", "code"))
    m.counter("thrifty_deferrals_total", "requests answered by a higher tier than the first (deferred)", ("router",))
    m.counter("thrifty_fallbacks_total", "requests served a lower tier's answer because a higher tier failed",
              ("router",))
    m.counter("thrifty_backend_errors_total", "failed backend calls by model and kind (timeout, transient, error, "
              "open, deadline, client)", ("model", "kind"))
    m.counter("thrifty_rejected_total", "requests refused before routing by reason (auth, auth_throttled, rate, "
              "size, invalid, max_tokens)", ("reason",))
    m.histogram("thrifty_overhead_seconds", "routing overhead per request: the predictions' latency", ("router",))
    m.histogram("thrifty_request_seconds", "end-to-end time per routed request", ("router",))
    return m


__all__ = ["LATENCY_BUCKETS", "Metrics", "server_metrics"]
