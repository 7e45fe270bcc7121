"""The routing service against misbehaving backends and bad settings: upstream client errors, request deadlines,
truncated streams, strict config numbers, a private ledger file, and nothing about backends shown to clients."""

from __future__ import annotations

import json
import math
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from _serve_fakes import ask, large, service, small

from thrifty.core.config import load_config
from thrifty.core.errors import ConfigError
from thrifty.core.store import RunStore
from thrifty.llm.base import GenParams
from thrifty.llm.openai_compat import OpenAICompatModel, UpstreamClientError
from thrifty.route.serve.deploy import load_deployment
from thrifty.route.serve.ledger import Ledger
from thrifty.route.serve.service import RoutingService, ServeConfig, ServiceError

P = GenParams(max_tokens=16)


class Refusing(type(large())):
    """A large tier whose backend refuses requests (HTTP 400 upstream) while ``refuse`` is set."""

    refuse = True

    def chat(self, messages, params=None, assistant_prefix="", on_text=None):
        self.tries = getattr(self, "tries", 0) + 1
        if self.refuse:
            raise UpstreamClientError("POST http://10.1.2.3:8000/v1/chat/completions: HTTP 400: context too long", 400)
        return super().chat(messages, params, assistant_prefix)


def test_upstream_client_errors_are_client_400s_that_spare_the_breaker(tmp_path):
    lg = Refusing(default="large answer", model_id="l")
    svc, _ = service(tmp_path, lg=lg, retries=2, breaker_failures=2)
    for _ in range(5):
        with pytest.raises(ServiceError) as exc:
            svc.complete(ask("hard one"), "thrifty/demo", P)
        err = exc.value
        assert (err.status, err.kind) == (400, "invalid_request_error")
        assert "10.1.2.3" not in err.message and "context too long" not in err.message
    assert lg.tries == 5  # never retried
    assert svc.breaker("l").state == "closed"  # and never held against the backend
    lg.refuse = False
    assert svc.complete(ask("hard one"), "thrifty/demo", P).model == "l"


def test_a_fallback_never_hides_a_refused_request(tmp_path):
    svc, _ = service(tmp_path, lg=Refusing(default="x", model_id="l"), fallback="lower")
    with pytest.raises(ServiceError) as exc:  # the request itself is bad: no lower tier's answer instead
        svc.complete(ask("hard one"), "thrifty/demo", P)
    assert exc.value.status == 400


class _Slow(BaseHTTPRequestHandler):
    delay_s = 3.0

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        time.sleep(self.delay_s)
        data = json.dumps({"choices": [{"message": {"content": "late"}, "finish_reason": "stop"}]}).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass


@pytest.fixture
def slow_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_the_request_deadline_caps_every_call_of_a_self_timed_backend(tmp_path, slow_url):
    remote = OpenAICompatModel(slow_url, "big", timeout_s=30.0, max_retries=0, model_id="l")  # its own timeout: 30 s
    svc, _ = service(tmp_path, lg=remote, timeout_s=0.4, retries=3, request_timeout_s=1.0, fallback="error")
    t0 = time.perf_counter()
    with pytest.raises(ServiceError) as exc:
        svc.complete(ask("hard one"), "thrifty/demo", P)
    assert exc.value.status == 503 and time.perf_counter() - t0 < 1.6


def test_the_guard_starts_no_call_past_the_deadline_and_caps_each_wait(tmp_path):
    lg = large(delay_s=0.5)
    svc, models = service(tmp_path, lg=lg, timeout_s=0.3, retries=5, request_timeout_s=0.7, fallback="error")
    t0 = time.perf_counter()
    with pytest.raises(ServiceError):
        svc.complete(ask("hard one"), "thrifty/demo", P)
    assert time.perf_counter() - t0 < 1.2 and len(models["l"].calls) <= 3  # not 6 tries of 0.3 s
    svc.close()


def test_the_default_request_deadline_follows_timeouts_retries_and_tiers(tmp_path):
    svc, _ = service(tmp_path, timeout_s=2.0, retries=1)
    assert svc.request_timeout("demo") == pytest.approx(2.0 * 2 * 2)
    fixed, _ = service(tmp_path, timeout_s=2.0, request_timeout_s=3.0)
    assert fixed.request_timeout("demo") == 3.0


def test_a_truncated_backend_stream_is_an_error_for_the_client_and_the_ledger(tmp_path):
    events = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in ("The", " ans")]
    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode()  # no finish_reason, no [DONE]
    remote = OpenAICompatModel("http://127.0.0.1:9/v1", "l", model_id="l", max_retries=0, transport=httpx.MockTransport(
        lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    svc, _ = service(tmp_path, lg=remote, ledger=ledger)
    seen = []
    with pytest.raises(ServiceError) as exc:
        svc.complete(ask("hard one"), "thrifty/demo", P, on_event=lambda k, p: seen.append(k))
    assert exc.value.code == "stream_interrupted" and seen[:2] == ["decided", "text"]
    svc.close()
    with RunStore(tmp_path / "ledger.sqlite") as store:
        (rec,) = [r.value for r in store.records("decision")]
    assert rec["action"] == "error" and rec["status"] == 502


@pytest.mark.parametrize(("override", "field"), [("timeout_s=nan", "timeout_s"), ("timeout_s=-1", "timeout_s"),
                                                 ("retries=-5", "retries"), ("rate=inf", "rate"),
                                                 ("breaker_reset_s=nan", "breaker_reset_s"),
                                                 ("request_timeout_s=0", "request_timeout_s"),
                                                 ("auth_fail_rate=-2", "auth_fail_rate")])
def test_config_numbers_must_be_finite_and_in_range(tmp_path, override, field):
    with pytest.raises(ConfigError, match=field) as exc:
        load_config(ServeConfig, None, ["routers.a=r.json", override])
    assert "\n" not in str(exc.value)
    assert ServeConfig(routers={"a": "r.json"}).timeout_s > 0 and not math.isnan(ServeConfig(routers={"a": "x"}).rate)


def test_the_ledger_file_is_readable_by_its_owner_only(tmp_path):
    ledger = Ledger(tmp_path / "runs" / "ledger.sqlite")
    svc, _ = service(tmp_path, ledger=ledger)
    svc.complete(ask("easy one"), "thrifty/demo", P)
    svc.close()
    for path in (tmp_path / "runs").iterdir():  # the store and its WAL/shared-memory files
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def _url_tiers(tmp_path, lg):
    spec_s, spec_l = "openai:http://10.0.0.5:8000/v1#small-8b", "openai:http://10.0.0.6:8000/v1#big-70b"
    path = tmp_path / "u.json"
    path.write_text(json.dumps({"v": 1, "small": spec_s, "large": spec_l, "predictor": {"name": "zero_shot"},
                                "policy": {"tau_good": 0.5}, "version": "v"}))
    models = {spec_s: small(), spec_l: lg}
    dep = load_deployment(path, load_model=models.__getitem__)
    return RoutingService({"demo": dep}, ServeConfig(routers={"demo": str(path)}, retries=0))


def test_clients_see_tier_names_never_backend_urls_or_upstream_text(tmp_path):
    svc = _url_tiers(tmp_path, large())
    res = svc.complete(ask("hard one"), "thrifty/demo", P)
    shown = svc.client_metadata(res)
    assert shown["model"] == "big-70b" and shown["predictions"][0]["model"] == "small-8b"
    assert "10.0.0" not in json.dumps(shown)
    down = _url_tiers(tmp_path, large(fail_first=100, failure=httpx.ConnectError("10.0.0.6 refused")))
    down.cfg.fallback = "error"
    with pytest.raises(ServiceError) as exc:
        down.complete(ask("hard one"), "thrifty/demo", P)
    assert exc.value.status == 503 and "10.0.0" not in exc.value.message and "refused" not in exc.value.message
    fell = _url_tiers(tmp_path, large(fail_first=100, failure=httpx.ConnectError("10.0.0.6 refused")))
    meta = fell.client_metadata(fell.complete(ask("hard one"), "thrifty/demo", P))
    assert meta["action"] == "fallback" and meta["backend_errors"] == ["big-70b: error"]


def test_logprob_fallbacks_of_the_tiers_are_exported(tmp_path):
    class Counting(type(small())):
        logprob_fallbacks = 3

    svc, _ = service(tmp_path, s=Counting(rules=[("", "x")], model_id="s"))
    svc.complete(ask("easy one"), "thrifty/demo", P)
    assert svc.metrics.value("thrifty_logprob_fallbacks_total", {"model": "s"}) == 3
