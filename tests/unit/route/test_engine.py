"""The routing engine's one climber: decisions per tier, lazily asked predictors, capped tries, guarded calls
passing the query up, fallback, repair, and PA's open-topped climb."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.llm.base import Completion
from thrifty.route.decide.engine import FALLBACK, Hooks, NoTierAnswered, TierDown, climb
from thrifty.route.decide.policy import ANSWER, DEFER, REPAIR, Ladder, Policy
from thrifty.route.predictors.base import Prediction


def _pred(great, ok, bad, parsed=True):
    return Prediction(great, ok, bad, tokens_in=10, latency_s=0.01, parsed=parsed)


class _Model:
    def __init__(self, name):
        self.model_id, self.calls = name, []

    def chat(self, messages, params=None, assistant_prefix=""):
        self.calls.append(assistant_prefix)
        return Completion(text=f"{self.model_id} answer", tokens_in=5, tokens_out=3, latency_s=0.1,
                          model=self.model_id)


class _Predictor:
    prefix = "Grade:"

    def __init__(self, model, prediction):
        self.model, self.prediction, self.n_calls = model, prediction, 0

    def predict(self, messages, task=None):
        self.n_calls += 1
        return self.prediction

    def prompt(self, messages, task=None, reply_format=None):
        return messages

    def continuation(self, label):
        return f"Grade: {label}\n"


MSG = [{"role": "user", "content": "q"}]
CONFIDENT, UNSURE = _pred(0.8, 0.1, 0.1), _pred(0.2, 0.2, 0.6)


def _ladder(preds, policies=None):
    policies = policies or (Policy(0.5), Policy(0.7))
    models = [_Model(n) for n in ("small", "medium", "large")[: len(preds) + 1]]
    return models, [_Predictor(m, p) for m, p in zip(models, preds, strict=False)], list(policies)[: len(preds)]


@pytest.mark.parametrize("preds, tier, action", [
    ((CONFIDENT, UNSURE), 0, ANSWER), ((UNSURE, CONFIDENT), 1, ANSWER), ((UNSURE, UNSURE), 2, DEFER),
    ((UNSURE, _pred(0.6, 0.3, 0.1, parsed=False)), 2, DEFER)])
def test_the_lowest_tier_whose_policy_answers_handles_the_query(preds, tier, action):
    models, predictors, policies = _ladder(preds)
    res = climb(models, predictors, policies, MSG)
    assert (res.tier, res.action, res.text) == (tier, action, f"{models[tier].model_id} answer")
    assert res.consulted == list(range(min(tier + 1, 2)))  # tiers above the answering one are never asked
    assert [p.n_calls for p in predictors] == [1 if i <= tier else 0 for i in range(2)]
    if tier < 2:
        assert models[tier].calls == ["Grade: great\n"]  # the answer continues its own prediction


def test_max_tries_and_start_skip_tiers_and_the_top_answers_the_plain_conversation():
    models, predictors, policies = _ladder((UNSURE, CONFIDENT))
    capped = climb(models, predictors, policies, MSG, max_tries=1)
    assert (capped.tier, predictors[1].n_calls, models[2].calls) == (2, 0, [""])  # medium is never asked
    sticky = climb(models, predictors, policies, MSG, start=1)
    assert (sticky.tier, sticky.consulted, predictors[0].n_calls) == (1, [1], 1)
    with pytest.raises(ConfigError, match="start tier"):
        climb(models, predictors, policies, MSG, start=3)
    with pytest.raises(ConfigError, match="predictors"):
        climb(models, predictors[:1], policies, MSG)


def test_three_way_policy_repairs_with_the_hook():
    models, predictors, _ = _ladder((_pred(0.5, 0.3, 0.2),))
    fixes = []

    def fix(model, messages, draft, params):
        fixes.append(draft.text)
        return Completion(text="fixed", tokens_in=1, tokens_out=1, latency_s=0.0)

    res = climb(models, predictors, [Policy(0.5, 0.9)], MSG, hooks=Hooks(repair=fix))
    assert (res.tier, res.action, res.text, fixes) == (0, REPAIR, "fixed", ["small answer"])
    assert res.tokens_out == 4 and res.overhead_tokens_in == 10


def test_a_failing_tier_passes_the_query_up_and_fallback_serves_the_best_lower_answer():
    models, predictors, policies = _ladder((UNSURE, UNSURE))
    failed = []

    def guard(tier, fn, kind):
        if tier == 2 or (tier == 0 and kind == "predict"):
            raise TierDown(f"tier {tier} down")
        return fn()

    res = climb(models, predictors, policies, MSG, hooks=Hooks(guard=guard, fallback=True,
                                                                on_answer_failed=failed.append))
    assert (res.tier, res.action, res.consulted, failed) == (1, FALLBACK, [1], [2])
    assert res.errors == ["tier 0 down", "tier 2 down"]
    with pytest.raises(NoTierAnswered, match="tier 2 down"):
        climb(models, predictors, policies, MSG, hooks=Hooks(guard=guard))


def test_without_a_top_tier_a_deferral_comes_back_unanswered():
    model = _Model("small")
    res = climb([model], [_Predictor(model, UNSURE)], [Policy(0.5)], MSG, top=False)
    assert (res.action, res.completions, res.text, model.calls) == (DEFER, [], "", [])
    ok = climb([model], [_Predictor(model, CONFIDENT)], [Policy(0.5)], MSG, top=False)
    assert (ok.action, ok.tier, ok.text) == (ANSWER, 0, "small answer")


def test_the_ladder_dataclass_feeds_the_climber():
    ladder = Ladder(("small", "medium", "large"), (Policy(0.5), Policy(0.7)), max_tries=1)
    models, predictors, _ = _ladder((UNSURE, CONFIDENT))
    res = climb(models, predictors, ladder.policies, MSG, max_tries=ladder.max_tries, names=ladder.tiers)
    assert (res.tier, res.model, res.prediction_dicts()[0]["label"]) == (2, "large", "bad")
