"""The scripted FakeChatModel: rules, stop/length handling, token accounting, label masses, failures, records."""

from __future__ import annotations

import threading
import time

import pytest

from thrifty.core.errors import ConfigError, ModelError, TransientError
from thrifty.llm.base import ChatModel, GenParams
from thrifty.llm.fake import FakeChatModel, last_user_text


def _msgs(text: str, system: str | None = None) -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": text}]


def test_is_a_chat_model():
    assert isinstance(FakeChatModel(), ChatModel)


def test_default_echoes_last_user_message():
    m = FakeChatModel()
    msgs = [*_msgs("first"), {"role": "assistant", "content": "x"}, {"role": "user", "content": "second one"}]
    c = m.chat(msgs)
    assert c.text == "second one"
    assert c.tokens_out == 2
    assert c.model == "fake"
    assert c.finish_reason == "stop"


def test_rules_first_match_wins_substring_and_callable():
    m = FakeChatModel(
        rules=[
            ("17*23", "391"),
            (lambda t: t.startswith("say"), lambda t: t.upper()),
            ("17", "never reached for 17*23"),
        ],
        default="no idea",
    )
    assert m.chat(_msgs("what is 17*23?")).text == "391"
    assert m.chat(_msgs("say hi")).text == "SAY HI"
    assert m.chat(_msgs("17 apples")).text == "never reached for 17*23"
    assert m.chat(_msgs("weather?")).text == "no idea"


def test_stop_strings_cut_at_earliest_and_max_tokens_truncates():
    m = FakeChatModel(default="alpha beta END gamma STOP delta")
    c = m.chat(_msgs("q"), GenParams(stop=("STOP", "END")))
    assert c.text == "alpha beta "
    assert c.finish_reason == "stop"
    c = m.chat(_msgs("q"), GenParams(max_tokens=3))
    assert (c.text, c.tokens_out, c.finish_reason) == ("alpha beta END", 3, "length")


def test_token_counts_and_prefix_cache():
    m = FakeChatModel(default="a b")
    msgs = _msgs("one two three", system="be brief")
    c1 = m.chat(msgs)
    # "system: be brief" (3) + "user: one two three" (4) + "assistant:" (1)
    assert c1.tokens_in == 8
    assert c1.cached_tokens == 0
    c2 = m.chat(msgs, assistant_prefix="Grade: great")
    assert c2.tokens_in == 10
    assert c2.cached_tokens == 8
    c3 = m.chat(_msgs("other"))
    assert c3.cached_tokens == 0


def test_logprobs_only_when_asked():
    m = FakeChatModel(default="x y z", logprob=-0.5)
    assert m.chat(_msgs("q")).token_logprobs is None
    assert m.chat(_msgs("q"), GenParams(logprobs=True)).token_logprobs == [-0.5, -0.5, -0.5]


def test_label_probs_renormalises_scripted_masses():
    m = FakeChatModel(
        label_rules=[("hard", {"great": 0.1, "ok": 0.1, "bad": 0.6})],
        label_default={"great": 0.5, "ok": 0.2, "bad": 0.1, "other": 0.2},
    )
    lp = m.label_probs(_msgs("an easy one"), ["great", "ok", "bad"])
    assert lp.probs == pytest.approx({"great": 0.625, "ok": 0.25, "bad": 0.125})
    assert lp.mass == pytest.approx(0.8)
    assert lp.method == "logprobs"
    lp = m.label_probs(_msgs("a hard one"), ["great", "ok", "bad"])
    assert lp.probs["bad"] == pytest.approx(0.75)
    assert lp.mass == pytest.approx(0.8)
    lp = m.label_probs(_msgs("easy"), ["great", "missing"])
    assert lp.probs == pytest.approx({"great": 1.0, "missing": 0.0})


def test_label_probs_unscripted_is_uniform_and_zero_mass_is_uniform():
    lp = FakeChatModel().label_probs(_msgs("q"), ["a", "b", "c", "d"])
    assert lp.probs == pytest.approx({k: 0.25 for k in "abcd"})
    assert lp.mass == 1.0
    lp = FakeChatModel(label_default={"x": 1.0}).label_probs(_msgs("q"), ["a", "b"])
    assert lp.probs == pytest.approx({"a": 0.5, "b": 0.5})
    assert lp.mass == 0.0


def test_label_probs_rejects_bad_labels():
    with pytest.raises(ConfigError):
        FakeChatModel().label_probs(_msgs("q"), [])
    with pytest.raises(ConfigError):
        FakeChatModel().label_probs(_msgs("q"), ["a", "a"])


def test_fail_first_raises_then_recovers_and_records():
    m = FakeChatModel(fail_first=2, default="ok")
    for _ in range(2):
        with pytest.raises(TransientError):
            m.chat(_msgs("q"))
    assert m.chat(_msgs("q")).text == "ok"
    assert m.n_calls == 3
    assert [type(c.error) for c in m.calls] == [TransientError, TransientError, type(None)]
    assert m.calls[-1].result is not None and m.calls[0].result is None


def test_custom_failure_instance():
    m = FakeChatModel(fail_first=1, failure=ModelError("boom"))
    with pytest.raises(ModelError, match="boom"):
        m.label_probs(_msgs("q"), ["a", "b"])
    assert m.label_probs(_msgs("q"), ["a", "b"]).probs == pytest.approx({"a": 0.5, "b": 0.5})


def test_delay_applies_to_first_calls_only():
    m = FakeChatModel(delay_s=0.15, delay_calls=1)
    t0 = time.perf_counter()
    m.chat(_msgs("q"))
    t1 = time.perf_counter()
    m.chat(_msgs("q"))
    t2 = time.perf_counter()
    assert t1 - t0 >= 0.14
    assert t2 - t1 < 0.1


def test_records_are_deep_copies_with_params():
    m = FakeChatModel()
    msgs = _msgs("hello")
    params = GenParams(max_tokens=5)
    m.chat(msgs, params, assistant_prefix="P:")
    msgs[0]["content"] = "mutated"
    call = m.calls[0]
    assert (call.kind, call.messages[0]["content"], call.params, call.assistant_prefix) == (
        "chat",
        "hello",
        params,
        "P:",
    )
    m.label_probs(_msgs("x"), ("a", "b"))
    assert m.calls[1].kind == "label_probs" and m.calls[1].labels == ("a", "b")


def test_invalid_messages_raise_config_error():
    with pytest.raises(ConfigError):
        FakeChatModel().chat([])
    with pytest.raises(ConfigError):
        FakeChatModel().chat([{"role": "wizard", "content": "x"}])


def test_in_flight_counts_concurrent_calls():
    m = FakeChatModel(delay_s=0.1)
    threads = [threading.Thread(target=m.chat, args=(_msgs("q"),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.max_in_flight == 3
    assert m.in_flight == 0


def test_bad_construction():
    with pytest.raises(ConfigError):
        FakeChatModel(fail_first=-1)
    with pytest.raises(ConfigError):
        FakeChatModel(delay_s=-0.1)


def test_last_user_text():
    assert last_user_text([{"role": "system", "content": "s"}]) == ""
    assert last_user_text(_msgs("u", system="s")) == "u"
