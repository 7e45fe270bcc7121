"""Route replay costs go through the one cost function: the plain probe pays its prefill once when answering and
as a discarded prefill when deferring; an instruction predictor answers in the context of its own prompt."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from thrifty.route.records.joins import price_source, price_table, query_costs

GENS = {"s": {("t", "e"): {"tokens_in": 100, "tokens_out": 50, "latency_s": 2.0}},
        "l": {("t", "e"): {"tokens_in": 100, "tokens_out": 60, "latency_s": 5.0}}}
PRICES = {"s": 1000.0, "l": 3000.0}  # per 1k tokens: 1 and 3 per token


def _rows(tokens_in):
    return [SimpleNamespace(task="t", example="e", prediction={"tokens_in": tokens_in, "latency_s": 0.5})]


def test_plain_probe_prediction_is_the_answers_prefill():
    ans, dfr = query_costs(_rows(100), GENS, "s", "l", prices=PRICES, predictor="plain_probe", cached_discount=0.1)
    assert ans[0] == pytest.approx(100 + 50)  # exactly the plain answer: the probe read its prefill
    assert dfr[0] == pytest.approx(100 + 3 * 160)  # the small prefill is paid, then the large answer


def test_instruction_predictor_pays_its_prompt_once_and_answers_in_the_same_context():
    ans, dfr = query_costs(_rows(300), GENS, "s", "l", prices=PRICES, predictor="report_card", cached_discount=0.1)
    assert ans[0] == pytest.approx(300 + 50) and dfr[0] == pytest.approx(300 + 480)
    plain_a, plain_d = query_costs(_rows(300), GENS, "s", "l", prices=PRICES, with_prediction=False)
    assert (plain_a[0], plain_d[0]) == (pytest.approx(150.0), pytest.approx(480.0))
    lat_a, lat_d = query_costs(_rows(300), GENS, "s", "l", cost="latency", predictor="report_card")
    assert (lat_a[0], lat_d[0]) == (pytest.approx(2.5), pytest.approx(5.5))


def test_bundled_models_are_priced_by_active_parameters_unless_prices_are_given():
    small, large = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"
    table = price_table([small, large])
    assert table[large].prompt / table[small].prompt == pytest.approx(1.54 / 0.494)
    assert price_source([small, large]) == "active_parameters" and price_source(["s", "l"], PRICES) == "given"
    assert price_source(["x", "y"]) == "uniform" and price_source([small, "x"]) == "mixed"
