"""The plain-prompt probe: features read from the conversation exactly as the answer sees it, a prediction the
answer continues (no prefix), refusal of probes fitted elsewhere, and its place in the routing engine."""

from __future__ import annotations

import numpy as np
import pytest
from test_probe import FakeModel, _examples, _store_with_grades

from thrifty.core.errors import ConfigError, DataError
from thrifty.llm.base import Completion
from thrifty.route.decide.engine import climb
from thrifty.route.decide.policy import ANSWER, DEFER, Policy
from thrifty.route.predictors.build import build_predictor
from thrifty.route.predictors.plain_probe import (
    PlainProbePredictor,
    fit_plain_probe,
    plain_features,
    plain_prompt_version,
)
from thrifty.route.predictors.probe import ProbeClassifier, ProbePredictor, labelled_examples


class _Answering(FakeModel):
    def __init__(self, model_id="fake"):
        super().__init__(model_id)
        self.chats = []

    def chat(self, messages, params=None, assistant_prefix=""):
        self.chats.append((messages, assistant_prefix))
        return Completion(text="answer", tokens_in=7, tokens_out=2, latency_s=0.0, cached_tokens=7)


def _fitted(tmp_path, model):
    with _store_with_grades(tmp_path) as store:
        rows = labelled_examples(store, "fake", _examples(), split="train")
    data = plain_features(model, rows)
    return data, fit_plain_probe(data, "fake")


def test_features_are_read_at_the_end_of_the_plain_conversation(tmp_path):
    model = FakeModel()
    data, probe = _fitted(tmp_path, model)
    assert data.X.shape == (12, 2) and all(prefix == "" for _, prefix in model.calls)
    assert model.calls[0][0] == _examples()["t:easy"][0].messages()  # no instruction added
    assert probe.meta["prompt_version"] == plain_prompt_version()
    pred = PlainProbePredictor(model, probe)
    hard, easy = (pred.predict([{"role": "user", "content": q}]) for q in ("hard question yy", "easy question"))
    assert (hard.label, easy.label, hard.method) == ("bad", "great", "plain_probe")
    assert hard.tokens_in == len(model.prompt_ids([{"role": "user", "content": "hard question yy"}], ""))
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    assert pred.prompt(msgs) == msgs and pred.prompt(msgs) is not msgs and pred.continuation("great") == ""


def test_a_probe_fitted_at_one_position_is_refused_at_the_other(tmp_path):
    model = FakeModel()
    _, plain = _fitted(tmp_path, model)
    with pytest.raises(DataError, match="prompt_version"):
        ProbePredictor(model, plain)
    X, y = np.zeros((3, 2)), np.array([0, 1, 2])
    with pytest.raises(DataError, match="prompt_version"):
        PlainProbePredictor(model, ProbeClassifier().fit(X, y, model="fake", prompt_version="instruction-v"))
    with pytest.raises(ConfigError, match="reply format"):
        PlainProbePredictor(model, plain).prompt([{"role": "user", "content": "q"}], reply_format="x")
    path = plain.save(tmp_path / "plain.npz")
    built, version = build_predictor("plain_probe", "fake", model, str(path))
    assert isinstance(built, PlainProbePredictor) and version == plain.version
    with pytest.raises(ConfigError, match="needs a probe file"):
        build_predictor("plain_probe", "fake", model)


def test_the_engine_answers_by_continuing_the_plain_prefill_or_defers(tmp_path):
    model, large = _Answering(), _Answering("large")
    _, probe = _fitted(tmp_path, model)
    pred = PlainProbePredictor(model, probe)
    easy = [{"role": "user", "content": "easy question"}]
    res = climb([model, large], [pred], [Policy(0.5)], easy)
    assert (res.action, res.tier) == (ANSWER, 0)
    assert model.chats == [(easy, "")] and model.calls[-1] == (easy, "")  # the same prompt, nothing added
    hard = [{"role": "user", "content": "hard question yy"}]
    res = climb([model, large], [pred], [Policy(0.5)], hard)
    assert (res.action, res.tier, large.chats) == (DEFER, 1, [(hard, "")])
