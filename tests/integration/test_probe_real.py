"""The hidden-state probe on the real bundled Qwen2.5-Coder-0.5B: the feature vector and a tiny fit end to end."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from _bundled import open_bundled

from thrifty.route.predictors.probe import ProbePredictor, collect_features, fit_probe, prompt_version
from thrifty.route.predictors.zero_shot import ZeroShotPredictor
from thrifty.tasks.base import Example

integration = pytest.mark.integration

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

NAME = "qwen2.5-coder-0.5b-instruct"
LABELS = ("great", "ok", "bad")


@pytest.fixture(scope="module")
def qwen():
    m = open_bundled(NAME, prefix_cache=False)
    yield m
    m.close()


@integration
def test_hidden_state_at_the_prediction_position(qwen):
    reader = ZeroShotPredictor(qwen)
    prompt = reader.prompt([{"role": "user", "content": "What is 17 * 23?"}])
    qwen.label_probs(prompt, LABELS, assistant_prefix=reader.prefix)  # warm-up
    t0 = time.perf_counter()
    lp = qwen.label_probs(prompt, LABELS, assistant_prefix=reader.prefix)
    t_label = time.perf_counter() - t0
    t0 = time.perf_counter()
    a = qwen.hidden_state(prompt, assistant_prefix=reader.prefix)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = qwen.hidden_state(prompt, assistant_prefix=reader.prefix)
    t_hidden = time.perf_counter() - t0
    assert a.shape == (896,)  # Qwen2.5-0.5B's embedding size
    assert np.all(np.isfinite(a)) and np.array_equal(a, b)
    print(f"\n{NAME}: {lp.tokens_in} prompt tokens; label_probs {t_label:.2f}s, hidden_state {t_hidden:.2f}s "
          f"(first call {t_first:.2f}s)")


@integration
def test_hidden_state_shares_the_prompt_cache_and_the_answer_continues_from_it(qwen):
    from thrifty.llm.base import GenParams

    reader = ZeroShotPredictor(qwen)
    prompt = reader.prompt([{"role": "user", "content": "What is 12 + 30?"}])
    pure = qwen.hidden_state(prompt, assistant_prefix=reader.prefix)
    cached = open_bundled(NAME, prefix_cache=True)
    try:
        lp = cached.label_probs(prompt, LABELS, assistant_prefix=reader.prefix)
        vec = cached.hidden_state(prompt, assistant_prefix=reader.prefix)  # evaluates only the last token again
        cos = float(vec @ pure / np.linalg.norm(vec) / np.linalg.norm(pure))
        assert cos > 0.99  # not bit-equal: llama.cpp kernels are not batch-invariant
        answer = cached.chat(prompt, GenParams(max_tokens=16), assistant_prefix=reader.continuation("ok"))
        assert answer.text.strip() and answer.cached_tokens >= lp.tokens_in - 1
        again = cached.label_probs(prompt, LABELS, assistant_prefix=reader.prefix)  # logits still readable
        assert abs(sum(again.probs.values()) - 1.0) < 1e-9
    finally:
        cached.close()


@integration
def test_probe_fits_and_predicts_on_real_hidden_states(qwen):
    easy = [Example(f"e{i}", f"What is {i} + 1?") for i in range(2)]
    hard = [Example(f"h{i}", f"What is {i + 7}731 * 98{i}3, exactly?") for i in range(2)]
    rows = [("easy", ex, "great") for ex in easy] + [("hard", ex, "bad") for ex in hard]
    data = collect_features(qwen, rows)
    assert data.X.shape == (4, 896)
    probe = fit_probe(data, NAME, ZeroShotPredictor(qwen))
    assert probe.meta["prompt_version"] == prompt_version(ZeroShotPredictor(qwen))
    assert probe.meta["train_accuracy"] == 1.0
    pred = ProbePredictor(qwen, probe).predict([{"role": "user", "content": "What is 5 + 1?"}])
    assert abs(pred.p_great + pred.p_ok + pred.p_bad - 1.0) < 1e-9
    assert pred.method == "probe" and pred.tokens_in > 100 and pred.latency_s > 0
