"""Predictions: probability checks, label/p_good math, reading label_probs, parse failures and whole conversations."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.llm.base import LabelProbs
from thrifty.llm.fake import FakeChatModel
from thrifty.route.predictors import (
    DEFAULT_PREFIX,
    Prediction,
    Predictor,
    ZeroShotPredictor,
    prediction_instruction,
    with_instruction,
)


def test_prediction_math_and_validation():
    p = Prediction(0.5, 0.3, 0.2, tokens_in=10, tokens_out=0, latency_s=0.1, method="logprobs", parsed=True)
    assert p.p_good == pytest.approx(0.8) and p.label == "great"
    d = p.as_dict()
    assert d["label"] == "great" and d["p_good"] == pytest.approx(0.8) and d["tokens_in"] == 10
    with pytest.raises(ConfigError, match="sum to 1"):
        Prediction(0.5, 0.3, 0.3)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        Prediction(1.2, -0.1, -0.1)
    Prediction(0.5, 0.5 - 5e-7, 0.0)  # within 1e-6 of 1 is fine


@pytest.mark.parametrize(("probs", "label"), [
    ((0.4, 0.4, 0.2), "ok"),      # great/ok tie → the worse grade
    ((0.4, 0.2, 0.4), "bad"),     # great/bad tie → bad
    ((0.2, 0.4, 0.4), "bad"),
    ((0.1, 0.2, 0.7), "bad"),
])
def test_label_ties_go_to_the_worse_grade(probs, label):
    assert Prediction(*probs).label == label


def test_uniform_is_unparsed():
    u = Prediction.uniform(tokens_in=3)
    assert not u.parsed and u.p_great == pytest.approx(1 / 3) and u.label == "bad"


def test_zero_shot_reads_scripted_distribution_after_prefix():
    model = FakeChatModel(label_rules=[("capital", {"great": 6.0, "ok": 3.0, "bad": 1.0})],
                          label_default={"bad": 1.0})
    pred = ZeroShotPredictor(model)
    assert isinstance(pred, Predictor)
    p = pred.predict([{"role": "user", "content": "What is the capital of France?"}])
    assert (p.p_great, p.p_ok, p.p_bad) == pytest.approx((0.6, 0.3, 0.1))
    assert p.parsed and p.method == "logprobs" and p.tokens_in > 0
    call = model.calls[-1]
    assert call.kind == "label_probs" and call.assistant_prefix == DEFAULT_PREFIX
    assert call.labels == ("great", "ok", "bad")
    q = pred.predict([{"role": "user", "content": "Prove the Riemann hypothesis."}])
    assert q.p_bad == pytest.approx(1.0) and q.label == "bad"


CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Sum 2 and 2?"}]


def test_multi_turn_conversation_is_passed_whole_with_instruction_in_the_system_message():
    model = FakeChatModel(label_default={"ok": 1.0})
    before = [dict(m) for m in CONV]
    ZeroShotPredictor(model, prefix="Verdict:").predict(CONV)
    seen = model.calls[-1].messages
    assert before == CONV  # caller's list untouched
    assert len(seen) == 4 and seen[1:] == CONV[1:]
    assert seen[0]["role"] == "system" and seen[0]["content"].startswith("Be brief.\n\n")
    assert '"Verdict: <label>"' in seen[0]["content"]
    assert model.calls[-1].assistant_prefix == "Verdict:"


def test_instruction_placements():
    instr = "PREDICT"
    no_sys = CONV[1:]
    assert with_instruction(no_sys, instr) == [{"role": "system", "content": instr}, *no_sys]
    assert with_instruction(CONV, instr, "end") == [*CONV, {"role": "system", "content": instr}]
    model = FakeChatModel()
    ZeroShotPredictor(model, placement="end").predict(CONV)
    assert model.calls[-1].messages[:4] == CONV and model.calls[-1].messages[4]["role"] == "system"
    with pytest.raises(ConfigError, match="placement"):
        ZeroShotPredictor(model, placement="middle")
    with pytest.raises(ConfigError, match="placement"):
        with_instruction(CONV, instr, "middle")


class _Unparsed:
    model_id = "u"

    def __init__(self, parsed=False, mass=1.0):
        self.parsed, self.mass = parsed, mass

    def label_probs(self, messages, labels, assistant_prefix=""):
        return LabelProbs({"great": 1.0, "ok": 0.0, "bad": 0.0}, tokens_in=7, latency_s=0.01, mass=self.mass,
                          method="text", parsed=self.parsed, tokens_out=4)


@pytest.mark.parametrize(("parsed", "mass"), [(False, 1.0), (True, 0.0)])
def test_unreadable_prediction_is_uniform_and_unparsed(parsed, mass):
    p = ZeroShotPredictor(_Unparsed(parsed, mass)).predict([{"role": "user", "content": "x"}])
    assert not p.parsed and p.probs == pytest.approx({"great": 1 / 3, "ok": 1 / 3, "bad": 1 / 3})
    assert (p.tokens_in, p.tokens_out, p.method) == (7, 4, "text")


def test_instruction_text_and_bad_inputs():
    text = prediction_instruction("Grade:", extra="CARD HERE")
    for word in ("great", "ok", "bad", "strict judge", "CARD HERE", '"Grade: <label>"'):
        assert word in text
    with pytest.raises(ConfigError):
        ZeroShotPredictor(FakeChatModel(), prefix="")
    with pytest.raises(ConfigError):
        ZeroShotPredictor(FakeChatModel()).predict([])
    with pytest.raises(ConfigError, match="unknown grade label"):
        ZeroShotPredictor(FakeChatModel()).continuation("fine")
    assert ZeroShotPredictor(FakeChatModel()).continuation("ok") == "Grade: ok\n"
