"""llm/base.py helpers: GenParams validation, renormalise, retries with backoff/timeouts, the async batch runner."""

from __future__ import annotations

import asyncio
import math

import pytest

from thrifty.core.errors import ConfigError, ModelError, TransientError
from thrifty.llm.base import (
    GenParams,
    RetryPolicy,
    achat_batch,
    call_with_retries,
    chat_batch,
    renormalise,
    validate_messages,
)
from thrifty.llm.fake import FakeChatModel


def _msgs(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


class _Sleeps:
    """An injected async sleep that records the requested delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, s: float) -> None:
        self.delays.append(s)


# ---- GenParams, renormalise, validate_messages ------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"max_tokens": 0}, {"temperature": -0.1}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_genparams_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        GenParams(**kwargs)


def test_genparams_stop_becomes_tuple_and_is_hashable():
    p = GenParams(stop=["a", "b"])
    assert p.stop == ("a", "b")
    assert hash(p) == hash(GenParams(stop=("a", "b")))


def test_renormalise_sums_to_one_and_reports_mass():
    probs, mass = renormalise({"a": 0.2, "b": 0.6, "c": -0.1})
    assert probs == pytest.approx({"a": 0.25, "b": 0.75, "c": 0.0})
    assert mass == pytest.approx(0.8)


@pytest.mark.parametrize("raw", [{"a": 0.0, "b": 0.0}, {"a": math.inf, "b": 1.0}, {"a": math.nan, "b": 1.0}])
def test_renormalise_degenerate_is_uniform_with_zero_mass(raw):
    probs, mass = renormalise(raw)
    assert probs == {"a": 0.5, "b": 0.5}
    assert mass == 0.0


def test_validate_messages():
    validate_messages(_msgs("hi"))
    for bad in ([], "hi", [{"role": "user"}], [{"role": "robot", "content": "x"}]):
        with pytest.raises(ConfigError):
            validate_messages(bad)


# ---- RetryPolicy and call_with_retries ----------------------------------------------------------------


def test_retry_policy_delay_is_exponential_and_capped_without_jitter():
    pol = RetryPolicy(backoff_base_s=0.5, backoff_factor=2.0, backoff_max_s=3.0, jitter=False)
    assert [pol.delay(k) for k in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert pol.delay(10_000) == 3.0  # huge exponents do not overflow


def test_retry_policy_full_jitter_stays_within_the_capped_ceiling():
    pol = RetryPolicy(backoff_base_s=0.5, backoff_factor=2.0, backoff_max_s=3.0, seed=1)
    for k in range(8):
        top = pol.ceiling(k)
        assert top == min(3.0, 0.5 * 2.0**k)
        draws = [pol.delay(k) for _ in range(200)]
        assert all(0.0 <= d <= top for d in draws)
        assert max(draws) - min(draws) > top / 2  # actually spread out, not a constant


def test_retry_policy_jitter_is_reproducible_from_seed_or_injected_rng():
    import random

    a, b = RetryPolicy(seed=7), RetryPolicy(seed=7)
    assert [a.delay(k) for k in range(5)] == [b.delay(k) for k in range(5)]
    assert [RetryPolicy(seed=8).delay(k) for k in range(5)] != [RetryPolicy(seed=7).delay(k) for k in range(5)]
    pol = RetryPolicy()
    assert pol.delay(2, rng=random.Random(3)) == RetryPolicy().delay(2, rng=random.Random(3))
    assert RetryPolicy(rng=random.Random(5)).delay(1) == RetryPolicy(seed=5).delay(1)


def test_retry_policy_copies_share_the_random_source_and_compare_equal():
    import dataclasses

    pol = RetryPolicy(seed=3)
    twin = dataclasses.replace(pol, retries=0)
    assert twin.rng is pol.rng
    assert RetryPolicy(seed=3) == RetryPolicy(seed=3)
    assert hash(RetryPolicy(seed=3)) == hash(RetryPolicy(seed=3))


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout_s": 0}, {"retries": -1}, {"backoff_base_s": -0.1}, {"backoff_factor": 0.5}, {"backoff_max_s": -1}],
)
def test_retry_policy_rejects_bad_values(kwargs):
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)


def test_retries_transient_errors_with_backoff():
    m = FakeChatModel(fail_first=2, default="done")
    sleeps = _Sleeps()
    pol = RetryPolicy(timeout_s=5, retries=3, backoff_base_s=0.5, backoff_factor=3.0, seed=11)
    res = asyncio.run(call_with_retries(lambda: m.chat(_msgs("q")), pol, sleep=sleeps))
    assert res.text == "done"
    assert m.n_calls == 3
    replay = RetryPolicy(timeout_s=5, retries=3, backoff_base_s=0.5, backoff_factor=3.0, seed=11)
    assert sleeps.delays == [replay.delay(0), replay.delay(1)]
    assert 0 <= sleeps.delays[0] <= 0.5 and 0 <= sleeps.delays[1] <= 1.5


def test_gives_up_after_last_attempt_with_last_error():
    m = FakeChatModel(fail_first=10)
    sleeps = _Sleeps()
    with pytest.raises(TransientError, match="3/10"):
        asyncio.run(call_with_retries(lambda: m.chat(_msgs("q")), RetryPolicy(retries=2), sleep=sleeps))
    assert m.n_calls == 3
    assert len(sleeps.delays) == 2


def test_non_transient_errors_propagate_at_once():
    m = FakeChatModel(fail_first=5, failure=ModelError("bad file"))
    sleeps = _Sleeps()
    with pytest.raises(ModelError, match="bad file"):
        asyncio.run(call_with_retries(lambda: m.chat(_msgs("q")), RetryPolicy(retries=3), sleep=sleeps))
    assert m.n_calls == 1
    assert sleeps.delays == []


def test_timeout_is_retried_then_succeeds():
    m = FakeChatModel(delay_s=0.3, delay_calls=1, default="late but fine")
    sleeps = _Sleeps()
    pol = RetryPolicy(timeout_s=0.05, retries=1, jitter=False)
    res = asyncio.run(call_with_retries(lambda: m.chat(_msgs("q")), pol, sleep=sleeps))
    assert res.text == "late but fine"
    assert m.n_calls == 2
    assert sleeps.delays == [pol.delay(0)]


def test_persistent_timeout_becomes_transient_error():
    m = FakeChatModel(delay_s=0.12)
    with pytest.raises(TransientError, match="timed out"):
        asyncio.run(
            call_with_retries(
                lambda: m.chat(_msgs("q")), RetryPolicy(timeout_s=0.03, retries=1), sleep=_Sleeps()
            )
        )
    assert m.n_calls == 2


# ---- achat_batch / chat_batch ----------------------------------------------------------------------------


def test_batch_keeps_request_order_despite_finish_order():
    import time

    def slow_first(text: str) -> str:
        time.sleep(0.15 if text == "0" else 0.0)
        return f"answer {text}"

    m = FakeChatModel(rules=[(lambda t: True, slow_first)])
    done: list[int] = []
    reqs = [(_msgs(str(i)), None) for i in range(4)]
    out = asyncio.run(achat_batch(m, reqs, concurrency=4, on_done=lambda i, r: done.append(i)))
    assert [c.text for c in out] == [f"answer {i}" for i in range(4)]
    assert sorted(done) == [0, 1, 2, 3]
    assert done[-1] == 0  # the slow one finished last but sits first


def test_batch_respects_concurrency_limit():
    m = FakeChatModel(delay_s=0.05)
    out = chat_batch(m, [(_msgs(str(i)), GenParams(max_tokens=4)) for i in range(6)], concurrency=2)
    assert len(out) == 6
    assert m.max_in_flight == 2
    assert all(c.text == str(i) for i, c in enumerate(out))


def test_batch_records_errors_in_place_and_retries_transients():
    def reply(text: str) -> str:
        if text == "boom":
            raise ValueError("broken request")
        return text

    m = FakeChatModel(rules=[(lambda t: True, reply)], fail_first=1)
    reqs = [(_msgs("a"), None), (_msgs("boom"), None), (_msgs("c"), None)]
    out = chat_batch(m, reqs, concurrency=1, retry=RetryPolicy(retries=1, backoff_base_s=0.001))
    assert out[0].text == "a"  # first attempt failed transiently, the retry succeeded
    assert isinstance(out[1], ValueError)
    assert out[2].text == "c"
    assert m.n_calls == 4


def test_batch_rejects_zero_concurrency():
    with pytest.raises(ConfigError):
        chat_batch(FakeChatModel(), [(_msgs("a"), None)], concurrency=0)


def test_batch_does_not_retry_models_that_retry_themselves():
    """A backend with its own retry loop (retries_itself) is not wrapped in a second one."""
    m = FakeChatModel(default="x", fail_first=1)
    m.retries_itself = True
    out = chat_batch(m, [(_msgs("a"), None)], concurrency=1, retry=RetryPolicy(retries=3, backoff_base_s=0.001))
    assert isinstance(out[0], TransientError)
    assert m.n_calls == 1
