"""The routing report's words and page: intervals, cost unit, definitions, router table, selection, the why line."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from thrifty.route.replay.eval_ci import method_cis
from thrifty.route.replay.report_html import render
from thrifty.route.replay.report_text import cost_unit, format_markdown, headline, why_no_saving


def _summary(apgr: float, savings: float, auroc: float | None = None) -> dict:
    s = {"apgr": apgr, "apgr_ci": [apgr - 0.1, apgr + 0.1], "cpt_50": 0.3, "cpt_80": 0.6, "cost_at_q": 1.0,
         "savings": savings, "savings_ci": [savings - 0.05, savings + 0.05], "aiq": 0.7, "n_boot": 1000}
    return s if auroc is None else {**s, "auroc": auroc}


def _result(router_saving: float = 0.2, unit: str = "tokens", source: str = "active_parameters",
            selection: dict | None = None, auroc: float = 0.8) -> dict:
    small, large = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"
    router = {"version": "abc123", "small": small, "large": large, "judge": "verifier",
              "predictor": {"name": "plain_probe", "version": "p1", "artefact": "runs/probe<1>.npz"},
              "policy": {"tau_good": 0.61234, "tau_great": None,
                         "calibrator": {"kind": "temperature", "temperature": 1.7, "iso_x": [], "iso_y": []}},
              "target": {"kind": "quality", "quality": 0.95, "delta": 0.1, "cost": unit, "prices": {},
                         "cached_discount": 0.1, "price_source": source},
              "fitted_on": {"split": "val", "tasks": ["add"], "n_per_task": 40}, "own_policy_tasks": []}
    if selection is not None:
        router["selection"] = selection
    return {"router": router, "split": "test", "n": 50, "tasks": ["add"], "q_small": 0.6, "q_large": 0.9,
            "methods": {"router": {"summary": _summary(0.7, router_saving, auroc),
                                   "operating_point": {"tau": 0.61, "defer_rate": 0.4, "quality": 0.86, "cost": 1.2}},
                        "random": {"summary": _summary(0.5, 0.02)}, "oracle": {"summary": _summary(0.9, 0.4)},
                        "embed_knn": {"summary": _summary(0.6, 0.05, 0.7)},
                        "chow": {"summary": _summary(0.65, 0.12, 0.75)}},
            "overhead": {"tokens_in": 80, "tokens_out": 0, "latency_s": 0.2, "parse_failures": 0},
            "pricing": {"unit": unit, "source": source, "cached_discount": 0.1, "models": [small, large],
                        "prices": {small: 1.0, large: 3.0} if source == "given" else {}},
            "notes": [], "per_task": {}}


def test_intervals_hold_the_estimate_narrow_with_more_queries_and_repeat_with_the_seed():
    def draw(n: int, seed: int = 3):
        rng = np.random.default_rng(seed)
        qs = rng.choice([0.0, 0.5, 1.0], n, p=[0.4, 0.2, 0.4])
        ql = np.maximum(qs, rng.choice([0.5, 1.0], n))
        score = (ql - qs) + rng.normal(0, 0.3, n)  # a noisy but informative deferral signal
        cw, cs = np.full(n, 1.0), np.full(n, 4.0)
        return qs, ql, score, cw, cs

    small, big = method_cis("router", *draw(40), np.full(40, 3.5), n_boot=300), \
        method_cis("router", *draw(400), np.full(400, 3.5), n_boot=300)
    for ci in (small, big):
        for key in ("apgr", "savings"):
            lo, hi = ci[f"{key}_ci"]
            assert lo <= ci[key] <= hi
    width = lambda ci, k: ci[f"{k}_ci"][1] - ci[f"{k}_ci"][0]  # noqa: E731
    assert 0 < width(big, "apgr") < width(small, "apgr") < 0.6
    assert 0 < width(big, "savings") < width(small, "savings")
    assert method_cis("router", *draw(40), np.full(40, 3.5), n_boot=300) == small  # seeded: the same numbers
    qs, ql, _, cw, cs = draw(40)
    rnd = method_cis("random", qs, ql, None, cw, cs, cs, n_boot=200)
    assert rnd["apgr_ci"] == pytest.approx([0.5, 0.5]) and rnd["apgr"] == pytest.approx(0.5)


def test_cost_unit_says_tokens_at_which_prices_or_seconds(tmp_path):
    active = cost_unit(_result())
    assert "price units" in active and "active parameters in billions" in active and "10 %" in active
    assert "qwen2.5-coder-1.5b-instruct 1.54 per token" in active
    given = cost_unit(_result(source="given"))
    assert "per 1k tokens" in given and "qwen2.5-coder-1.5b-instruct 3 per 1k tokens (given)" in given
    assert "thousands of tokens" in cost_unit(_result(source="uniform"))
    seconds = cost_unit(_result(unit="latency"))
    assert "seconds" in seconds and "price" not in seconds
    for unit, word in (("tokens", "price units"), ("latency", "seconds per query")):
        res = _result(unit=unit)
        assert word in format_markdown(res) and word in render(res, tmp_path)


def test_both_outputs_define_every_column_and_read_the_router(tmp_path):
    res = _result()
    md, page = format_markdown(res), render(res, tmp_path)
    for term in ("APGR", "CPT(50 %), CPT(80 %)", "cost at 95 % of large quality", "saving vs always large", "AIQ",
                 "AUROC (bad)", "[lo, hi]"):
        assert f"**{term}**" in md and f"<dt>{term}</dt>" in page
    assert "0.700 [0.600, 0.800]" in md and "0.700 [0.600, 0.800]" in page  # APGR with its interval
    assert "20.0 % [15.0 %, 25.0 %]" in md and "95 % CI [15.0 %, 25.0 %]" in page  # the saving's, in the card
    sentence = "answers with qwen2.5-coder-0.5b-instruct when the temperature-calibrated (T = 1.7) p_good"
    assert sentence in md and sentence in page and "at least 0.6123" in md
    assert "| artefact | runs/probe<1>.npz |" in md and "runs/probe&lt;1&gt;.npz" in page
    assert "<details><summary>router file (JSON)</summary>" in page
    assert "oracle saving at 95 %" in page and "best baseline (chow) saving at 95 %" in page
    assert "Predictor chosen" not in md and "Predictor chosen" not in page  # no selection recorded


def test_a_recorded_selection_is_shown_and_escaped(tmp_path):
    sel = {"rule": "lowest cost at 0.95 x the large model's quality", "quality": 0.95, "chosen": "plain_probe",
           "candidates": {"plain_probe": {"apgr": 0.7, "cost_at_target": 1.1, "saving_at_target": 0.2,
                                          "defer_at_target": 0.4, "auroc_bad": 0.8, "n": 40},
                          "<img src=x onerror=1>": {"apgr": 0.5, "cost_at_target": float("nan"),
                                                    "saving_at_target": float("nan"), "defer_at_target": 1.0,
                                                    "auroc_bad": 0.5, "n": 40}}}
    res = _result(selection=sel)
    md, page = format_markdown(res), render(res, tmp_path)
    assert "## Predictor chosen on val" in md and "| plain_probe (chosen) | 0.700 | 1.100 | 20.0 % |" in md
    assert "<h2>Predictor chosen on val</h2>" in page and "plain_probe (chosen)" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=1&gt;" in page
    bad = copy.deepcopy(res)
    bad["router"]["small"] = "<script>alert(1)</script>"
    bad["notes"] = ["<b>note</b>"]
    page = render(bad, tmp_path)
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>note</b>" not in page


def test_a_negative_saving_gets_its_why_in_both_outputs(tmp_path):
    res = _result(router_saving=-0.14)
    why = why_no_saving(res)
    assert "discarded prefill" in why and "80 prompt tokens" in why  # a plain probe with a good signal
    md, page = format_markdown(res), render(res, tmp_path)
    assert f"**Why:** {why}" in md and "Why no saving:" in page and why.replace("'", "&#x27;") in page
    assert headline(res).splitlines()[1] == f"Why: {why}"
    assert "-14.0 % [-19.0 %, -9.0 %]" in headline(res) and "oracle 40.0 %" in headline(res)
    weak = _result(router_saving=-0.05, auroc=0.52)
    assert "barely separates" in why_no_saving(weak)
    good = _result(router_saving=0.2)
    assert "Why" not in format_markdown(good) and "Why no saving" not in render(good, tmp_path)
    assert "\n" not in headline(good)
