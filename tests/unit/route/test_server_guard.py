"""Server guards and plumbing: hashed keys, token buckets, circuit breakers, Prometheus text, the ledger."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.core.store import RunStore
from thrifty.route.serve.guard import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    ApiKeys,
    CircuitBreaker,
    RateLimiter,
    hash_key,
    new_key,
)
from thrifty.route.serve.ledger import Ledger
from thrifty.route.serve.metrics import Metrics


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_api_keys_are_kept_hashed_and_checked_by_name(tmp_path):
    key = new_key()
    f = tmp_path / "keys"
    f.write_text(f"# team keys\nalice:{hash_key(key)}\n\n")
    keys = ApiKeys.load(f, env_value=" raw-one , ")
    assert len(keys) == 2 and keys.check(key) == "alice" and keys.check("raw-one") == "env-1"
    assert keys.check("nope") is None and keys.check(None) is None and keys.check("") is None
    assert key not in f.read_text()
    for text, match in (("alice\n", "name:sha256hex"), ("a:xyz\n", "SHA-256"),
                        (f"a:{hash_key('1')}\na:{hash_key('2')}\n", "twice")):
        f.write_text(text)
        with pytest.raises(ConfigError, match=match):
            ApiKeys.load(f)
    with pytest.raises(ConfigError, match="cannot read"):
        ApiKeys.load(tmp_path / "missing")


def test_token_bucket_allows_a_burst_then_refills_at_its_rate():
    clock = Clock()
    lim = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [lim.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("a") == pytest.approx(0.5)  # empty: one token in 1/rate seconds
    assert lim.take("b") == 0.0  # buckets are per key
    clock.t += 0.5
    assert lim.take("a") == 0.0 and lim.take("a") == pytest.approx(0.5)
    clock.t += 100
    assert [lim.take("a") for _ in range(4)][-1] > 0  # refills up to the burst only
    with pytest.raises(ConfigError):
        RateLimiter(0, 1)


def test_circuit_breaker_opens_after_consecutive_failures_and_half_opens_for_one_trial():
    clock = Clock()
    br = CircuitBreaker(failures=2, reset_s=10, clock=clock)
    br.record(False)
    br.record(True)
    br.record(False)
    assert br.state == CLOSED and br.allow()  # failures must be consecutive
    br.record(False)
    assert br.state == OPEN and not br.allow()
    clock.t += 10
    assert br.state == HALF_OPEN and br.allow() and not br.allow()  # one trial at a time
    br.record(False)
    assert br.state == OPEN  # the failed trial reopens it for another reset_s
    clock.t += 10
    assert br.allow()
    br.record(True)
    assert br.state == CLOSED and br.allow() and br.allow()


def test_prometheus_text_has_cumulative_buckets_and_escaped_labels():
    m = Metrics()
    m.counter("c_total", "a counter", ("router",))
    m.histogram("h_seconds", "a histogram", ("r",), buckets=(0.1, 1.0))
    m.inc("c_total", {"router": 'a"b'})
    m.inc("c_total", {"router": 'a"b'}, 2)
    for v in (0.05, 0.5, 5.0):
        m.observe("h_seconds", v, {"r": "x"})
    text = m.render()
    assert '# TYPE c_total counter\nc_total{router="a\\"b"} 3.0\n' in text
    assert 'h_seconds_bucket{le="0.1",r="x"} 1.0\nh_seconds_bucket{le="1.0",r="x"} 2.0\n' in text
    assert 'h_seconds_bucket{le="+Inf",r="x"} 3.0\nh_seconds_count{r="x"} 3.0\nh_seconds_sum{r="x"} 5.55' in text
    assert m.value("c_total", {"router": 'a"b'}) == 3 and m.value("h_seconds", {"r": "x"}) == 3
    assert m.value("c_total", {"router": "never"}) == 0


def test_rate_limiter_wait_spends_nothing_and_breaker_release_frees_the_trial():
    now = [0.0]
    lim = RateLimiter(rate=1.0, burst=1, clock=lambda: now[0])
    assert lim.wait("k") == 0.0 and lim.wait("k") == 0.0 and lim.take("k") == 0.0
    assert lim.wait("k") == pytest.approx(1.0) and lim.take("k") == pytest.approx(1.0)
    br = CircuitBreaker(failures=1, reset_s=5.0, clock=lambda: now[0])
    br.record(False)
    now[0] = 6.0
    assert br.allow() and not br.allow()  # half-open: one trial at a time
    br.release()  # the trial said nothing about the backend
    assert br.state == "half_open" and br.allow()


def test_ledger_writes_every_queued_decision_before_close_returns(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite", batch=7)
    for i in range(100):
        ledger.write({"request_id": f"r{i}", "time": 0.0, "router": "demo", "action": "answer" if i % 2 else "defer",
                      "model": "s"})
    ledger.close()
    assert ledger.written == 100 and ledger.failed == 0
    with RunStore(tmp_path / "ledger.sqlite") as store:
        assert store.count("decision", router="demo") == 100
        assert store.count("decision", action="defer", day="1970-01-01") == 50
