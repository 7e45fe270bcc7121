"""The routing service without HTTP: names and thresholds, guarded backends, fallbacks, stickiness, ledger."""

from __future__ import annotations

import time

import pytest
from _serve_fakes import ask, large, service, small

from thrifty.core.errors import ConfigError, ModelError
from thrifty.core.store import RunStore
from thrifty.llm.base import GenParams
from thrifty.route.serve.ledger import Ledger
from thrifty.route.serve.service import ServeConfig, ServiceError

P = GenParams(max_tokens=16)


def test_model_names_resolve_with_an_optional_threshold(tmp_path):
    svc, _ = service(tmp_path)
    assert svc.model_names() == ["thrifty/demo"]
    assert svc.resolve("thrifty/demo") == ("demo", None) and svc.resolve("demo") == ("demo", None)
    assert svc.resolve("thrifty/demo-0.25") == ("demo", 0.25) and svc.resolve("thrifty/demo-1") == ("demo", 1.0)
    for bad in ("thrifty/other", "thrifty/demo-1.5", "gpt-4o", ""):
        with pytest.raises(ServiceError) as exc:
            svc.resolve(bad)
        assert exc.value.status == 404 and exc.value.code == "model_not_found"


def test_answers_easy_queries_itself_and_defers_hard_ones_with_metadata(tmp_path):
    svc, models = service(tmp_path)
    easy = svc.complete(ask("easy one"), "thrifty/demo", P)
    assert (easy.action, easy.model, easy.tier, easy.text) == ("answer", "s", 0, "small answer")
    meta = easy.metadata()
    assert meta["label"] == "great" and meta["probs"]["p_great"] == pytest.approx(0.8) and not meta["fallback"]
    assert meta["overhead_tokens"] == easy.predictions[0].tokens_in > 0
    hard = svc.complete(ask("hard one"), "thrifty/demo", P)
    assert (hard.action, hard.model, hard.text) == ("defer", "l", "large answer")
    assert models["l"].calls[-1].messages == ask("hard one")  # the large model never sees the prediction prompt
    # a client-chosen threshold of 0 answers everything with the small model
    assert svc.complete(ask("hard one"), "thrifty/demo-0", P).action == "answer"
    assert svc.metrics.value("thrifty_requests_total", {"router": "demo", "action": "defer", "code": "200"}) == 1
    assert svc.metrics.value("thrifty_deferrals_total", {"router": "demo"}) == 1


def test_failing_small_model_passes_the_query_up(tmp_path):
    svc, _ = service(tmp_path, s=small(fail_first=10, failure=ModelError("boom")))
    res = svc.complete(ask("easy one"), "thrifty/demo", P)
    assert (res.action, res.model, res.predictions) == ("defer", "l", []) and "boom" in res.errors[0]


def test_large_failure_falls_back_to_the_small_answer_or_503(tmp_path):
    svc, _ = service(tmp_path, lg=large(fail_first=100), retries=1)
    res = svc.complete(ask("hard one"), "thrifty/demo", P)
    assert (res.action, res.model, res.text) == ("fallback", "s", "small answer") and res.metadata()["fallback"]
    assert len(res.errors) == 2  # one retry of the transient error
    strict, _ = service(tmp_path, lg=large(fail_first=100), fallback="error", retries=0)
    with pytest.raises(ServiceError) as exc:
        strict.complete(ask("hard one"), "thrifty/demo", P)
    assert exc.value.status == 503 and exc.value.code == "backend_unavailable"


def test_a_hung_backend_times_out_instead_of_hanging(tmp_path):
    svc, _ = service(tmp_path, lg=large(delay_s=5.0), timeout_s=0.2, retries=0)
    t0 = time.perf_counter()
    res = svc.complete(ask("hard one"), "thrifty/demo", P)
    assert time.perf_counter() - t0 < 2.0 and res.action == "fallback" and "timed out" in res.errors[0]
    svc.close()


def test_circuit_opens_and_later_requests_fail_fast_without_calling_the_backend(tmp_path):
    svc, models = service(tmp_path, lg=large(fail_first=1000), retries=0, breaker_failures=2, breaker_reset_s=60)
    for _ in range(2):
        svc.complete(ask("hard one"), "thrifty/demo", P)
    calls = len(models["l"].calls)
    res = svc.complete(ask("hard one"), "thrifty/demo", P)
    assert len(models["l"].calls) == calls and "circuit open" in res.errors[-1] and res.action == "fallback"
    assert svc.metrics.value("thrifty_backend_errors_total", {"model": "l", "kind": "open"}) == 1


def test_sticky_conversations_stay_with_the_tier_they_reached(tmp_path):
    svc, models = service(tmp_path, sticky=True)
    assert svc.complete(ask("hard one"), "thrifty/demo", P, conversation="c1").tier == 1
    n = len(models["s"].calls)
    later = svc.complete(ask("easy one"), "thrifty/demo", P, conversation="c1")
    assert (later.tier, later.predictions, len(models["s"].calls)) == (1, [], n)  # the small model is not asked
    assert svc.complete(ask("easy one"), "thrifty/demo", P, conversation="c2").tier == 0


def test_every_decision_reaches_the_ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    svc, _ = service(tmp_path, ledger=ledger, ledger_messages=False)
    ids = [svc.complete(ask(q), "thrifty/demo", P, task="t", key_name="alice").request_id
           for q in ("easy", "hard", "easy")]
    svc.close()
    with RunStore(tmp_path / "ledger.sqlite") as store:
        recs = {r.value["request_id"]: r.value for r in store.records("decision")}
    assert set(recs) == set(ids) and recs[ids[1]]["action"] == "defer" and recs[ids[0]]["key"] == "alice"
    assert "messages" not in recs[ids[0]] and recs[ids[0]]["task"] == "t"


def test_failed_requests_reach_the_ledger_too(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    svc, _ = service(tmp_path, ledger=ledger, lg=large(fail_first=100), fallback="error", retries=0)
    with pytest.raises(ServiceError):
        svc.complete(ask("hard one"), "thrifty/demo", P)
    svc.close()
    with RunStore(tmp_path / "ledger.sqlite") as store:
        (rec,) = [r.value for r in store.records("decision")]
    assert rec["action"] == "error" and rec["status"] == 503 and rec["messages"] == ask("hard one")


def test_bad_configs_are_one_line_errors():
    for kw, match in (({}, "routers"), ({"routers": {"a-b": "x"}}, "router name"),
                      ({"routers": {"a": "x"}, "fallback": "maybe"}, "fallback"),
                      ({"routers": {"a": "x"}, "default_max_tokens": 4096}, "max_tokens"),
                      ({"routers": {"a": "x"}, "port": 0}, "port")):
        with pytest.raises(ConfigError, match=match):
            ServeConfig(**kw)


def test_self_timed_backends_run_inline_and_others_on_a_watchdog_thread(tmp_path):
    import threading

    def large_on(timed: bool):
        class Large(type(large())):
            enforces_timeout = timed

            def chat(self, messages, params=None, assistant_prefix=""):
                self.thread = threading.current_thread().name
                return super().chat(messages, params, assistant_prefix)

        return Large(default="large answer", model_id="l")

    for timed in (True, False):
        model = large_on(timed)
        svc, _ = service(tmp_path, lg=model)
        assert svc.complete(ask("hard one"), "thrifty/demo", P).model == "l"
        on_pool = model.thread.startswith("thrifty-backend")
        assert on_pool is not timed  # HTTP-like backends in the request's thread, in-process ones on the pool


def test_streaming_events_announce_the_decision_before_the_text(tmp_path):
    svc, _ = service(tmp_path)
    for question, model, action in (("easy one", "s", "answer"), ("hard one", "l", "defer")):
        events = []
        res = svc.complete(ask(question), "thrifty/demo", P, on_event=lambda k, p, ev=events: ev.append((k, p)))
        kinds = [k for k, _ in events]
        assert kinds[0] == "decided" and set(kinds[1:]) == {"text"} and len(kinds) > 2  # word by word
        assert (events[0][1]["model"], events[0][1]["action"]) == (model, action)
        assert "".join(p for k, p in events[1:]) == res.text


def test_a_backend_failing_mid_stream_is_not_retried_or_replaced(tmp_path):
    class Breaks(type(large())):
        def chat(self, messages, params=None, assistant_prefix="", on_text=None):
            self.tries = getattr(self, "tries", 0) + 1
            if on_text is not None:
                on_text("partial ")
            raise TransientError("connection dropped")

    from thrifty.core.errors import TransientError

    broken = Breaks(model_id="l")
    svc, _ = service(tmp_path, lg=broken, retries=2)
    events = []
    with pytest.raises(ServiceError) as exc:
        svc.complete(ask("hard one"), "thrifty/demo", P, on_event=lambda k, p: events.append((k, p)))
    assert exc.value.status == 502 and exc.value.code == "stream_interrupted"
    assert broken.tries == 1 and [k for k, _ in events] == ["decided", "text"]  # no retry, no fallback text
    plain, _ = service(tmp_path, lg=Breaks(model_id="l"), retries=2)
    assert plain.complete(ask("hard one"), "thrifty/demo", P).action == "fallback"  # not streaming: falls back
