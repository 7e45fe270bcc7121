"""The one cost function against hand-computed cases: uncached and cached prompt tokens, output, latency."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.evals.cost import Price, Usage, call_cost, default_prices, query_cost

PRICES = {"s": Price(1.0, 0.1, 2.0), "l": Price(3.0, 0.3, 6.0)}


def test_a_call_prices_uncached_cached_and_output_tokens():
    # 100 prompt tokens of which 80 cached, 10 out: 20*1 + 80*0.1 + 10*2 = 48
    assert call_cost(Usage("s", 100, 80, 10), PRICES["s"]) == pytest.approx(48.0)
    assert call_cost(Usage("l", 100, 0, 10), PRICES["l"]) == pytest.approx(360.0)


def test_a_query_sums_its_calls_and_a_deferral_pays_the_discarded_prefill():
    answered = [Usage("s", 180, 0, 200)]  # the prediction rode on this prefill: nothing extra
    deferred = [Usage("s", 180, 0, 0), Usage("l", 180, 0, 210)]  # the small prefill is paid, then the large answer
    assert query_cost(answered, PRICES) == pytest.approx(180 + 400)
    assert query_cost(deferred, PRICES) == pytest.approx(180 + 3 * 180 + 6 * 210)
    assert query_cost([Usage("s", 5, latency_s=0.25), Usage("l", 5, latency_s=1.5)], unit="latency") == 1.75
    assert query_cost([], PRICES) == 0.0


def test_default_prices_follow_active_parameters_with_a_cache_discount():
    p = default_prices(["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"], cached_discount=0.25,
                       output_ratio=4)
    small, large = p["qwen2.5-coder-0.5b-instruct"], p["qwen2.5-coder-1.5b-instruct"]
    assert large.prompt / small.prompt == pytest.approx(1.54 / 0.494)
    assert small.cached == pytest.approx(0.25 * small.prompt) and small.output == pytest.approx(4 * small.prompt)
    assert default_prices(["x"], params_b={"x": 2.0})["x"] == Price(2.0, 0.2, 2.0)


def test_bad_prices_usage_and_units_are_one_line_errors():
    with pytest.raises(ConfigError, match="no active-parameter count"):
        default_prices(["mystery"])
    with pytest.raises(ConfigError, match="cached tokens exceed"):
        Usage("s", 10, 11)
    with pytest.raises(ConfigError, match=r"price\.output"):
        Price(1.0, 0.1, float("nan"))
    with pytest.raises(ConfigError, match="no price for model"):
        query_cost([Usage("zz", 1)], PRICES)
    with pytest.raises(ConfigError, match="unit"):
        query_cost([], PRICES, unit="dollars")
