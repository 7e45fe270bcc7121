"""PA/RPRA on the real bundled Qwen2.5-Coder-0.5B: a readable prediction summing to 1; the answer reuses its prefix."""

from __future__ import annotations

import os

import pytest
from _bundled import open_bundled

from thrifty.llm.base import GenParams
from thrifty.route.decide.paradigms import pa, rpra
from thrifty.route.predictors import ZeroShotPredictor

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

NAME = "qwen2.5-coder-0.5b-instruct"
QUERIES = [
    [{"role": "user", "content": "What is 17 + 25? End with a line 'Answer: <number>'."}],
    [{"role": "system", "content": "You are a concise assistant."},
     {"role": "user", "content": "Name the capital of France."},
     {"role": "assistant", "content": "Paris."},
     {"role": "user", "content": "And of Italy? One word."}],
]


@pytest.fixture(scope="module")
def qwen():
    m = open_bundled(NAME, prefix_cache=True)
    yield m
    m.close()


@pytest.mark.integration
@pytest.mark.parametrize("messages", QUERIES, ids=["single-turn", "multi-turn"])
def test_pa_predicts_then_answers_from_the_same_prefix(qwen, messages):
    res = pa(qwen, ZeroShotPredictor(qwen), messages, GenParams(max_tokens=24), lambda p: "answer")
    p = res.prediction
    assert p.parsed and p.method == "logprobs"
    assert p.p_great + p.p_ok + p.p_bad == pytest.approx(1.0, abs=1e-6)
    c = res.completion
    assert c is not None and c.text.strip()
    assert c.cached_tokens > 0 and c.cached_tokens >= p.tokens_in - 1  # the prediction prompt is reused
    assert c.tokens_in - c.cached_tokens <= 4  # only the label and newline are new
    print(f"\n{NAME} probs={p.probs} predict_in={p.tokens_in} predict_s={p.latency_s:.2f} "
          f"answer_in={c.tokens_in} cached={c.cached_tokens} out={c.tokens_out} answer_s={c.latency_s:.2f} "
          f"text={c.text[:60]!r}")


@pytest.mark.integration
def test_rpra_reasoning_is_capped_and_the_answer_reuses_it(qwen):
    res = rpra(qwen, None, QUERIES[0], GenParams(max_tokens=24), lambda p: "answer", reason_before=16,
               reason_after=16)
    p = res.prediction
    assert p.parsed and p.p_great + p.p_ok + p.p_bad == pytest.approx(1.0, abs=1e-6)
    assert p.reasoning and len(qwen.tokenize(p.reasoning)) <= 17  # one line, capped (re-tokenising may add one)
    assert res.completion is not None and res.completion.cached_tokens > p.tokens_in // 2
