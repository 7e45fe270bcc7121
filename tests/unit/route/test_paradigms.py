"""PA: the decision picks answer vs defer, the answer continues the prediction prompt, overhead is accounted."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.llm.base import GenParams
from thrifty.llm.fake import FakeChatModel
from thrifty.route.decide.paradigms import PAResult, answer, defer_if_p_bad_above, pa, rpra
from thrifty.route.predictors import Prediction, ReportCard, ReportCardPredictor, ZeroShotPredictor
from thrifty.route.predictors.report_card import CardStats


def _model():
    return FakeChatModel(
        rules=[(lambda m: True, lambda m: "Answer: 4")],
        label_rules=[("easy", {"great": 0.8, "ok": 0.15, "bad": 0.05}), ("hard", {"great": 0.1, "bad": 0.9})],
    )


EASY = [{"role": "user", "content": "easy: what is 2 + 2?"}]
HARD = [{"role": "user", "content": "hard: factor this 60-digit number"}]


def test_baseline_answer_is_a_plain_chat():
    model = _model()
    c = answer(model, EASY, GenParams(max_tokens=8))
    assert c.text == "Answer: 4" and model.calls[-1].messages == EASY and model.calls[-1].assistant_prefix == ""


def test_pa_answers_continuing_from_the_prediction_prefix():
    model = _model()
    res = pa(model, None, EASY, GenParams(max_tokens=8), defer_if_p_bad_above(0.5))
    assert isinstance(res, PAResult) and res.action == "answer"
    assert res.prediction.label == "great" and res.prediction.p_good == pytest.approx(0.95)
    predict_call, answer_call = model.calls
    assert predict_call.kind == "label_probs" and answer_call.kind == "chat"
    assert answer_call.messages == predict_call.messages  # same conversation + same instruction
    assert answer_call.assistant_prefix == "Grade: great\n"
    assert answer_call.assistant_prefix.startswith(predict_call.assistant_prefix)
    assert res.completion.text == "Answer: 4"
    assert res.completion.cached_tokens == res.prediction.tokens_in  # the whole prediction prompt is reused
    assert res.overhead_tokens_in == res.prediction.tokens_in and res.overhead_tokens_out == 0
    assert res.overhead_latency_s == res.prediction.latency_s
    assert res.prefill_tokens == res.prediction.tokens_in + 1  # only the label word is new to the answer
    assert res.latency_s >= res.completion.latency_s


def test_pa_defers_without_answering():
    model = _model()
    res = pa(model, None, HARD, GenParams(max_tokens=8), defer_if_p_bad_above(0.5))
    assert res.action == "defer" and res.completion is None and res.prediction.p_bad == pytest.approx(0.9)
    assert [c.kind for c in model.calls] == ["label_probs"]
    assert res.prefill_tokens == res.overhead_tokens_in > 0


def test_decision_is_injected_and_checked():
    model = _model()
    seen = []
    res = pa(model, None, HARD, None, lambda p: seen.append(p) or "answer")
    assert res.action == "answer" and seen[0].label == "bad"
    assert model.calls[-1].assistant_prefix == "Grade: bad\n"
    with pytest.raises(ConfigError, match="decision must be one of"):
        pa(model, None, EASY, None, lambda p: "maybe")
    with pytest.raises(ConfigError):
        defer_if_p_bad_above(1.5)


def test_default_rule_defers_on_unparsed_and_threshold():
    rule = defer_if_p_bad_above(0.3)
    assert rule(Prediction(0.5, 0.2, 0.3)) == "answer"
    assert rule(Prediction(0.5, 0.1, 0.4)) == "defer"
    assert rule(Prediction.uniform()) == "defer"
    assert defer_if_p_bad_above(0.9)(Prediction.uniform()) == "defer"  # unreadable always defers


def test_pa_with_report_card_predictor_and_multi_turn():
    model = _model()
    card = ReportCard(model="fake", tasks={"arith": CardStats({"great": 4})})
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, *EASY]
    res = pa(model, ReportCardPredictor(model, card), conv, GenParams(max_tokens=8), task="arith")
    assert res.action == "answer"
    sent = model.calls[-1].messages
    assert sent[1:] == conv and card.render("arith") in sent[0]["content"]
    with pytest.raises(ConfigError, match="self-prediction"):
        pa(model, ZeroShotPredictor(_model()), EASY)


def _thinker():
    return FakeChatModel(rules=[(lambda m: True, lambda m: "  looks   simple\nAnswer: 4")],
                         label_rules=[("easy", {"great": 0.7, "ok": 0.2, "bad": 0.1}), ("hard", {"bad": 1.0})])


def test_rpra_reasons_predicts_reasons_and_answers_in_one_growing_turn():
    model = _thinker()
    res = rpra(model, None, EASY, GenParams(max_tokens=20), defer_if_p_bad_above(0.5),
               reason_before=5, reason_after=3)
    assert res.action == "answer" and res.prediction.reasoning == "looks simple"
    kinds = [(c.kind, c.assistant_prefix) for c in model.calls]
    assert kinds == [
        ("chat", "Reasoning:"),
        ("label_probs", "Reasoning: looks simple\nGrade:"),
        ("chat", "Reasoning: looks simple\nGrade: great\nReasoning:"),
        ("chat", "Reasoning: looks simple\nGrade: great\nReasoning: looks simple\n\n"),
    ]
    assert model.calls[0].params.max_tokens == 5 and model.calls[2].params.max_tokens == 3
    assert model.calls[0].params.stop == ("\n",)
    assert all(c.messages == model.calls[0].messages for c in model.calls)  # one prompt, growing prefix
    assert "Reasoning: <brief" in model.calls[0].messages[0]["content"]
    assert res.reasoning_after == "looks simple"
    first, read, second = model.calls[0].result, model.calls[1].result, model.calls[2].result
    assert res.overhead_tokens_in == first.tokens_in + read.tokens_in + second.tokens_in
    assert res.overhead_tokens_out == first.tokens_out + second.tokens_out == 4
    assert res.completion.cached_tokens > 0
    assert res.overhead_cached_tokens == first.cached_tokens + second.cached_tokens > 0
    c = res.completion
    assert res.prefill_tokens == res.overhead_tokens_in - res.overhead_cached_tokens + c.tokens_in - c.cached_tokens


def test_rpra_defers_and_discards_reasoning():
    model = _thinker()
    res = rpra(model, None, HARD, None, defer_if_p_bad_above(0.5))
    assert res.action == "defer" and res.completion is None and res.reasoning_after == ""
    assert [c.kind for c in model.calls] == ["chat", "label_probs"]
    assert res.overhead_tokens_out == model.calls[0].result.tokens_out
    with pytest.raises(ConfigError, match="budgets"):
        rpra(model, None, EASY, reason_before=0)
