"""Prediction evaluation: predictions land in the store, metrics match the evals functions, re-runs are free."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _route_tasks import AddTask

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore, record_key
from thrifty.evals import accuracy, auroc_bad, ece_binary, macro_f1, majority_baseline
from thrifty.llm.fake import FakeChatModel
from thrifty.route.predictors import build_report_card
from thrifty.route.records.collect import CollectConfig, collect
from thrifty.route.records.predictions import PredictEvalConfig
from thrifty.route.replay.predict_eval import format_markdown, predict_eval

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _first(text: str) -> int:
    return int(re.findall(r"\d+", text)[0])


def _answer(text: str) -> str:
    """Right on even i, wrong on odd i: the verifier grades even great, odd bad."""
    a, b = map(int, re.findall(r"\d+", text)[:2])
    return f"Answer: {a + b if a % 2 == 0 else 0}"


BAD_HEAVY = {"bad": 0.8, "ok": 0.1, "great": 0.1}
GREAT_HEAVY = {"bad": 0.1, "ok": 0.2, "great": 0.7}


class Answerer:
    """The model under test: answers by rule; predicts with one fake without a card and another with one."""

    def __init__(self) -> None:
        self.gen = FakeChatModel(rules=[(lambda t: True, _answer)])
        # zero-shot: right about odd questions, but wrongly pessimistic about question 2
        self.plain = FakeChatModel(label_rules=[(lambda t: _first(t) % 2 == 1 or _first(t) == 2, BAD_HEAVY)],
                                   label_default=GREAT_HEAVY)
        # with its report card: right about every question; question 4 is unreadable (no mass on any label)
        self.carded = FakeChatModel(label_rules=[(lambda t: _first(t) == 4, {}),
                                                 (lambda t: _first(t) % 2 == 1, BAD_HEAVY)],
                                    label_default=GREAT_HEAVY)

    def chat(self, messages, params=None, assistant_prefix=""):
        return self.gen.chat(messages, params, assistant_prefix=assistant_prefix)

    def label_probs(self, messages, labels, assistant_prefix=""):
        has_card = any("report card" in m["content"] for m in messages if m["role"] == "system")
        fake = self.carded if has_card else self.plain
        return fake.label_probs(messages, labels, assistant_prefix=assistant_prefix)

    @property
    def n_predict_calls(self) -> int:
        return self.plain.n_calls + self.carded.n_calls


@pytest.fixture
def setup(tmp_path):
    """A store with train grades (n=10) and test grades (n=6) of model "m", plus its report card."""
    run = tmp_path / "run"
    model = Answerer()
    for split, n in (("train", 10), ("test", 6)):
        collect(CollectConfig(models=["m"], tasks=["add"], split=split, n_per_task=n, run_dir=str(run)),
                load_model=lambda spec: model, load_task=AddTask)
    with RunStore(run / "store.sqlite") as store:
        card = build_report_card(store, "m", split="train", judge="verifier")
        # test-6 gets an unparsed grade; test-7 has no grade at all
        store.put("grade", record_key("grade", {"manual": "test-6"}), {"m": {"label": "unparsed"}},
                  {"judge": "verifier", "task": "add", "split": "test", "example": "test-6"})
    card_path = card.save(tmp_path / "card.json")
    return run, card_path


def _cfg(run, card_path, **kw):
    base = dict(store=str(run / "store.sqlite"), run_dir=str(run / "pe"), model="m", tasks=["add"],
                n_per_task=8, predictors=["zero_shot", "report_card"], card=str(card_path), n_boot=200)
    return PredictEvalConfig(**{**base, **kw})


def test_predict_eval_metrics_storage_and_rerun(setup):
    run, card_path = setup
    model, loaded = Answerer(), []

    def load(spec):
        loaded.append(spec)
        return model

    cfg = _cfg(run, card_path)
    res = predict_eval(cfg, load_model=load, load_task=AddTask)
    assert loaded == ["m"] and model.n_predict_calls == 12  # 6 graded examples × 2 predictors
    c = res["counts"]
    assert (c["ungraded"], c["unparsed_grades"], c["new_predictions"], c["reused_predictions"]) == (1, 1, 12, 0)

    gold = np.array([2 if i % 2 == 0 else 0 for i in range(6)])  # great on even, bad on odd
    zs_pred = np.array([0 if (i % 2 or i == 2) else 2 for i in range(6)])
    zs = res["metrics"]["zero_shot"]["ALL"]
    assert zs["n"] == 6 and zs["accuracy"] == pytest.approx(accuracy(gold, zs_pred)) == pytest.approx(5 / 6)
    assert zs["majority_baseline"] == pytest.approx(majority_baseline(gold)) == 0.5
    assert zs["macro_f1"] == pytest.approx(macro_f1(gold, zs_pred))
    p_rows = np.array([[0.8, 0.1, 0.1] if p == 0 else [0.1, 0.2, 0.7] for p in zs_pred])
    assert zs["auroc_bad"] == pytest.approx(auroc_bad(p_rows, gold))
    assert zs["ece"] == pytest.approx(ece_binary(p_rows, gold, 15))
    assert zs["confusion"] == [[3, 0, 0], [0, 0, 0], [1, 0, 2]]
    lo, hi = zs["accuracy_ci"]
    assert lo <= zs["accuracy"] <= hi and zs["parse_failures"] == 0
    assert zs["mean_tokens_in"] > 0

    rc = res["metrics"]["report_card"]["ALL"]
    # question 4 is unparsed: uniform probabilities, read as "bad" (ties go to the worse grade) — a miss
    assert rc["parse_failures"] == 1 and rc["accuracy"] == pytest.approx(5 / 6)
    assert rc["mean_tokens_in"] > zs["mean_tokens_in"]  # the card costs prompt tokens
    gain = res["improvement"]["report_card"]["ALL"]
    assert gain["paired"] and gain["n"] == 6 and gain["points"] == pytest.approx(0.0)
    assert gain["ci"][0] <= 0.0 <= gain["ci"][1]
    assert res["card_version"] and res["metrics"]["zero_shot"]["add"]["n"] == 6

    with RunStore(run / "store.sqlite") as store:
        assert store.count("prediction", model="m", predictor="zero_shot", split="test") == 6
        assert store.count("prediction", predictor="report_card", task="add") == 6

    out = run / "pe"
    on_disk = json.loads((out / "predict_eval.json").read_text())
    assert on_disk["metrics"]["zero_shot"]["ALL"]["accuracy"] == pytest.approx(5 / 6)
    md = (out / "predict_eval.md").read_text()
    assert md == format_markdown(res)
    assert "majority baseline" in md and "| zero_shot | ALL | 6 | 83.3" in md and "| 50.0 |" in md
    for name in ("zero_shot", "report_card"):
        for kind in ("reliability", "confusion"):
            assert (out / f"{kind}_{name}.png").read_bytes()[:8] == PNG_MAGIC

    again_model, loaded2 = Answerer(), []
    res2 = predict_eval(cfg, load_model=lambda s: loaded2.append(s) or again_model, load_task=AddTask)
    assert loaded2 == [] and again_model.n_predict_calls == 0  # all stored: no call, no load
    assert (res2["counts"]["new_predictions"], res2["counts"]["reused_predictions"]) == (0, 12)
    assert res2["metrics"] == res["metrics"]  # bootstrap generators derive from the seed: same CIs


def test_zero_shot_only_and_a_different_judge_finds_no_grades(setup):
    run, card_path = setup
    model = Answerer()
    res = predict_eval(_cfg(run, card_path, predictors=["zero_shot"], card=""), load_model=lambda s: model,
                       load_task=AddTask)
    assert list(res["metrics"]) == ["zero_shot"] and res["improvement"] == {}
    none = predict_eval(_cfg(run, card_path, predictors=["zero_shot"], judge="rubric", run_dir=str(run / "x")),
                        load_model=lambda s: model, load_task=AddTask)
    assert none["counts"]["ungraded"] == 8 and none["metrics"] == {"zero_shot": {}}
    assert "skipped 8 without a grade" in (run / "x" / "predict_eval.md").read_text()


def test_card_for_another_model_and_missing_store_are_refused(setup, tmp_path):
    run, card_path = setup
    with pytest.raises(ConfigError, match="not 'other'"):
        predict_eval(_cfg(run, card_path, model="other"), load_model=lambda s: Answerer(), load_task=AddTask)
    with pytest.raises(DataError, match="not found"):
        predict_eval(_cfg(run, tmp_path / "nope.json"), load_model=lambda s: Answerer(), load_task=AddTask)
    with pytest.raises(ConfigError, match="no run store"):
        predict_eval(_cfg(run, card_path, store=str(tmp_path / "none.sqlite")), load_task=AddTask)


@pytest.mark.parametrize("bad, message", [
    ({"model": ""}, "model"),
    ({"tasks": []}, "tasks"),
    ({"split": "dev"}, "split"),
    ({"n_per_task": 0}, "n_per_task"),
    ({"predictors": []}, "predictors"),
    ({"predictors": ["oracle"]}, "unknown predictor"),
    ({"predictors": ["zero_shot", "zero_shot"]}, "twice"),
    ({"predictors": ["report_card"], "card": ""}, "needs card"),
    ({"predictors": ["probe"]}, "needs probe"),
    ({"predictors": ["sft"]}, "needs adapter"),
    ({"judge": ""}, "judge"),
    ({"n_boot": 0}, ">= 1"),
    ({"bins": 0}, ">= 1"),
])
def test_config_validation(bad, message):
    kw = {"model": "m", "tasks": ["add"], "predictors": ["zero_shot"], **bad}
    with pytest.raises(ConfigError, match=message):
        PredictEvalConfig(**kw)


class ProbedAnswerer(Answerer):
    """Also exposes a hidden state that says whether the question's first number is even (the gold grade)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden_calls = 0

    def hidden_state(self, messages, assistant_prefix=""):
        self.hidden_calls += 1
        question = [m for m in messages if m["role"] == "user"][-1]["content"]
        return np.array([1.0 if _first(question) % 2 == 0 else 0.0, 0.5])

    def prompt_ids(self, messages, assistant_prefix=""):
        return list(range(sum(len(m["content"].split()) for m in messages)))


def test_probe_predictor_is_fitted_on_train_and_scored_on_test(setup):
    from thrifty.route.fit.probe_fit import ProbeFitConfig, fit_probe_run
    from thrifty.route.predictors.probe import ProbeClassifier

    run, card_path = setup
    model = ProbedAnswerer()
    fit = fit_probe_run(ProbeFitConfig(store=str(run / "store.sqlite"), run_dir=str(run / "probe"), model="m",
                                       tasks=["add"], n_per_task=10, l2=[0.1], folds=2),
                        load_model=lambda s: model, load_task=AddTask)
    assert fit["n"] == 10 and model.hidden_calls == 10
    cfg = _cfg(run, card_path, predictors=["zero_shot", "probe"], probe=fit["probe"], run_dir=str(run / "pp"))
    res = predict_eval(cfg, load_model=lambda s: model, load_task=AddTask)
    assert res["metrics"]["probe"]["ALL"]["accuracy"] == 1.0 and res["metrics"]["probe"]["ALL"]["n"] == 6
    assert res["versions"]["probe"] == ProbeClassifier.load(fit["probe"]).version
    assert res["metrics"]["probe"]["ALL"]["mean_tokens_in"] > 0
    calls = model.hidden_calls
    again = predict_eval(cfg, load_model=lambda s: model, load_task=AddTask)
    assert model.hidden_calls == calls and again["counts"]["new_predictions"] == 0
    with pytest.raises(ConfigError, match="not 'other'"):
        predict_eval(_cfg(run, card_path, predictors=["probe"], probe=fit["probe"], model="other"),
                     load_model=lambda s: model, load_task=AddTask)
