"""Probe fitting: stratified folds, L2 chosen by brute-force cross-validation, the cached end-to-end run."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore
from thrifty.route.fit.probe_fit import (
    ProbeFitConfig,
    choose_l2,
    cv_log_loss,
    fit_probe_run,
    stratified_folds,
)
from thrifty.route.predictors.probe import ProbeClassifier
from thrifty.tasks.base import Example, Score


def test_stratified_folds_deal_every_class_evenly_and_follow_the_rng():
    y = [0] * 7 + [1] * 3 + [2] * 5
    fold = stratified_folds(y, 3, random.Random(0))
    for cls in (0, 1, 2):
        per_fold = [sum(1 for f, v in zip(fold, y, strict=True) if v == cls and f == k) for k in range(3)]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == y.count(cls)
    assert fold == stratified_folds(y, 3, random.Random(0))
    assert fold != stratified_folds(y, 3, random.Random(1))


def test_cv_log_loss_holds_each_row_out_once():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 2)), np.array([0, 1, 2] * 4)
    fold = [i % 3 for i in range(12)]
    manual = []
    for k in range(3):
        test = np.array([f == k for f in fold])
        p = ProbeClassifier(l2=0.5).fit(X[~test], y[~test]).predict_proba(X[test])
        manual.extend(-np.log(p[np.arange(test.sum()), y[test]]))
    assert cv_log_loss(X, y, 0.5, fold, 3) == pytest.approx(float(np.mean(manual)))


def test_choose_l2_is_the_brute_force_argmin_and_prefers_strong_penalties_on_noise():
    rng = np.random.default_rng(1)
    y = np.array([0, 2] * 15)
    X_noise = rng.standard_normal((30, 20))  # features carry no signal: a strong penalty generalises best
    best, scores = choose_l2(X_noise, y, [1e-3, 1.0, 100.0], 5, random.Random(0))
    assert best == min(scores, key=scores.get) and best == 100.0
    X_signal = np.c_[y * 2.0 + 0.3 * rng.standard_normal(30), rng.standard_normal(30)]
    best, scores = choose_l2(X_signal, y, [1e-3, 1.0, 100.0], 5, random.Random(0))
    assert best == min(scores, key=scores.get) and best < 100.0
    assert choose_l2(X_signal, y, [0.3], 5, random.Random(0)) == (0.3, {})


class LineTask:
    name = "t"

    def examples(self, split, n, seed=0):
        return [Example(f"{split}-{i}", ("hard " if i % 2 else "easy ") + "x" * i) for i in range(n)]

    def score(self, example, text):
        return Score(0.0, False, None, "unused")


class FeatureModel:
    """Hidden state = (is the question hard, its length); counts its calls."""

    def __init__(self):
        self.calls = 0

    def hidden_state(self, messages, assistant_prefix=""):
        self.calls += 1
        text = [m for m in messages if m["role"] == "user"][-1]["content"]
        return np.array([1.0 if text.startswith("hard") else 0.0, len(text) / 10.0])


def test_fit_probe_run_fits_saves_and_reuses_cached_features(tmp_path):
    store = tmp_path / "store.sqlite"
    with RunStore(store) as st:
        for ex in LineTask().examples("train", 20):
            label = "bad" if ex.prompt.startswith("hard") else "great"
            tags = {"task": "t", "example": ex.id, "split": "train", "judge": "verifier"}
            st.put("grade", ex.id, {"m": {"label": label}}, tags)
    model = FeatureModel()
    cfg = ProbeFitConfig(store=str(store), run_dir=str(tmp_path / "run"), model="m", tasks=["t"], n_per_task=20,
                         l2=[0.01, 10.0], folds=4)
    out = fit_probe_run(cfg, load_model=lambda spec: model, load_task=lambda spec: LineTask())
    assert out["n"] == 20 and out["labels"] == {"bad": 10, "ok": 0, "great": 10} and not out["features_cached"]
    assert out["l2"] in (0.01, 10.0) and set(out["cv_log_loss"]) == {"0.01", "10.0"} and model.calls == 20
    probe = ProbeClassifier.load(cfg.out_path)
    assert probe.version == out["version"] and probe.meta["model"] == "m" and probe.meta["l2"] == out["l2"]
    assert json.loads((tmp_path / "run" / "probe_summary.json").read_text())["version"] == out["version"]
    again = fit_probe_run(cfg, load_model=lambda spec: model, load_task=lambda spec: LineTask())
    assert again["features_cached"] and model.calls == 20 and again["version"] == out["version"]


def test_probe_fit_config_and_data_errors(tmp_path):
    with pytest.raises(ConfigError, match="test split"):
        ProbeFitConfig(model="m", tasks=["t"], split="test")
    with pytest.raises(ConfigError, match="positive"):
        ProbeFitConfig(model="m", tasks=["t"], l2=[0.0])
    with pytest.raises(ConfigError, match="no run store"):
        fit_probe_run(ProbeFitConfig(model="m", tasks=["t"], run_dir=str(tmp_path)))
    RunStore(tmp_path / "store.sqlite").close()
    with pytest.raises(DataError, match="route collect"):
        fit_probe_run(ProbeFitConfig(model="m", tasks=["t"], run_dir=str(tmp_path)),
                      load_model=lambda spec: FeatureModel(), load_task=lambda spec: LineTask())
