"""Serving-time routing with scripted models: answer / repair / defer and a lazily climbed ladder."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.llm.base import Completion
from thrifty.llm.fake import FakeChatModel
from thrifty.route.decide.policy import ANSWER, DEFER, REPAIR, Ladder, Policy
from thrifty.route.predictors.zero_shot import ZeroShotPredictor
from thrifty.route.serve.runtime import REFINE_INSTRUCTION, route_ladder, route_query

GREAT = {"great": 0.8, "ok": 0.15, "bad": 0.05}
OK = {"great": 0.1, "ok": 0.7, "bad": 0.2}
BAD = {"great": 0.05, "ok": 0.15, "bad": 0.8}


def _small(name="small"):
    return FakeChatModel(rules=[(REFINE_INSTRUCTION, "refined answer"), ("", f"{name} answer")],
                         label_rules=[("easy", GREAT), ("medium", OK), ("hard", BAD)], label_default=BAD,
                         model_id=name)


def _q(text):
    return [{"role": "user", "content": text}]


def test_two_way_answers_by_continuing_the_prediction_or_defers_with_the_original_conversation():
    small, large = _small(), FakeChatModel(default="large answer", model_id="large")
    pred = ZeroShotPredictor(small)
    easy = route_query(small, large, pred, Policy(0.5), _q("easy one"))
    assert (easy.action, easy.tier, easy.model, easy.text) == (ANSWER, 0, "small", "small answer")
    assert small.calls[-1].assistant_prefix == pred.continuation("great")  # continues its own prediction
    assert large.n_calls == 0 and easy.overhead_tokens_in == easy.predictions[0].tokens_in
    hard = route_query(small, large, pred, Policy(0.5), _q("hard one"))
    assert (hard.action, hard.tier, hard.text) == (DEFER, 1, "large answer")
    assert large.calls[-1].messages == _q("hard one")  # no trace of the small model's prediction
    assert len(hard.predictions) == 1 and hard.latency_s >= hard.overhead_latency_s


def test_three_way_repairs_the_middle_with_one_self_refinement_or_a_given_repair():
    small, large = _small(), FakeChatModel(default="large answer")
    pred, policy = ZeroShotPredictor(small), Policy(0.5, tau_great=0.7)
    res = route_query(small, large, pred, policy, _q("medium one"))
    assert (res.action, res.tier, res.text) == (REPAIR, 0, "refined answer") and len(res.completions) == 2
    follow_up = small.calls[-1].messages
    assert follow_up[-2] == {"role": "assistant", "content": "small answer"}
    assert follow_up[-1]["content"] == REFINE_INSTRUCTION
    seen = []

    def retrieve(model, messages, draft, params):
        seen.append(draft.text)
        return Completion("with retrieval", 1, 1, 0.0)

    res = route_query(small, large, pred, policy, _q("medium two"), repair=retrieve)
    assert res.text == "with retrieval" and seen == ["small answer"]
    assert route_query(small, large, pred, policy, _q("easy two")).action == ANSWER


def test_ladder_is_climbed_lazily_and_the_top_always_answers():
    s, m, top = _small("s"), _small("m"), FakeChatModel(default="top answer", model_id="top")
    ladder = Ladder(("s", "m", "top"), (Policy(0.5), Policy(0.5)))
    preds = [ZeroShotPredictor(s), ZeroShotPredictor(m)]
    res = route_ladder([s, m, top], preds, ladder, _q("easy"))
    assert res.tier == 0 and m.n_calls == 0 and top.n_calls == 0  # higher tiers never asked
    res = route_ladder([s, m, top], preds, ladder, _q("hard"))
    assert (res.tier, res.action, res.text) == (2, DEFER, "top answer") and len(res.predictions) == 2
    capped = Ladder(("s", "m", "top"), (Policy(0.5), Policy(0.5)), max_tries=1)
    calls = m.n_calls
    res = route_ladder([s, m, top], preds, capped, _q("hard"))
    assert res.tier == 2 and m.n_calls == calls and len(res.predictions) == 1


def test_predictors_must_wrap_their_own_tier_and_counts_must_match():
    s, other, large = _small(), _small("other"), FakeChatModel()
    with pytest.raises(ConfigError, match="own model"):
        route_query(s, large, ZeroShotPredictor(other), Policy(0.5), _q("easy"))
    with pytest.raises(ConfigError, match="needs as many"):
        route_ladder([s, large], [], Ladder(("s", "l"), (Policy(0.5),)), _q("easy"))
