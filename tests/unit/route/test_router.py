"""`route calibrate`: a policy fitted on val-split records for a target, written as a router file and read back."""

from __future__ import annotations

import json
import math

import pytest
from _two_models import SplitAddTask, two_model_store

from thrifty.core.errors import ConfigError, DataError
from thrifty.route.decide.files import load_router
from thrifty.route.decide.policy import DEFER
from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router
from thrifty.route.predictors.base import Prediction
from thrifty.tasks.base import Example


def _cfg(tmp_path, store, n, **kw):
    return CalibrateConfig(store=str(store), run_dir=str(tmp_path / "cal"), small="s", large="l", tasks=["add"],
                           n_per_task=n, **kw)


def test_defer_rate_target_writes_a_router_that_reads_back_and_reruns_free(tmp_path):
    store, small = two_model_store(tmp_path, 20)
    cfg = _cfg(tmp_path, store, 20, target="defer_rate", defer_rate=0.5, calibration="temperature")
    router = calibrate_router(cfg, load_model=lambda s: small, load_task=SplitAddTask)
    fit = router["fit"]
    assert fit["n"] == 20 and fit["defer_rate"] == 0.5 and fit["quality"] == 1.0  # the odd (wrong) half deferred
    assert fit["quality_small"] == 0.5 and fit["quality_large"] == 1.0 and fit["parse_failures"] == 0
    assert fit["cost_large_always"] > fit["cost_small_always"] > 0
    assert all(math.isfinite(fit[k][m]) for k in ("before", "after") for m in ("ece", "brier"))
    again = load_router(cfg.out_path)
    policy = again.policy
    assert again.record == json.loads(cfg.out_path.read_text()) and again.version == router["version"]
    assert (again.small, again.large, again.predictor.name, again.judge) == ("s", "l", router["predictor"]["name"],
                                                                              router["judge"])
    assert policy.calibrator.kind == "temperature" and policy.tau_good == router["policy"]["tau_good"]
    assert policy.decide(Prediction(0.1, 0.2, 0.7)) == DEFER
    calls = small.pred.n_calls
    rerun = calibrate_router(cfg, load_model=lambda s: small, load_task=SplitAddTask)
    assert small.pred.n_calls == calls and rerun["version"] == router["version"]
    assert rerun["fit"]["counts"]["reused_predictions"] == 20


def test_quality_target_is_certified_only_with_enough_queries(tmp_path):
    store, small = two_model_store(tmp_path, 30)
    few = calibrate_router(_cfg(tmp_path, store, 30, target="quality", quality=0.95, calibration="isotonic"),
                           load_model=lambda s: small, load_task=SplitAddTask)
    assert few["fit"]["certified"] is False and few["policy"]["tau_good"] == math.inf
    assert few["fit"]["defer_rate"] == 1.0 and few["fit"]["bound"] > 0


def test_quality_target_certified_on_a_larger_sample(tmp_path):
    store, small = two_model_store(tmp_path, 300)
    res = calibrate_router(_cfg(tmp_path, store, 300, target="quality", quality=0.95, delta=0.1,
                                calibration="isotonic"), load_model=lambda s: small, load_task=SplitAddTask)
    fit = res["fit"]
    assert fit["certified"] and fit["bound"] <= 0 and fit["defer_rate"] == 0.5 and fit["quality"] == 1.0


def test_budget_target_keeps_mean_cost_within_budget(tmp_path):
    store, small = two_model_store(tmp_path, 20)
    base = calibrate_router(_cfg(tmp_path, store, 20, target="defer_rate", defer_rate=0.0),
                            load_model=lambda s: small, load_task=SplitAddTask)["fit"]
    budget = (base["cost_small_always"] + base["cost_large_always"]) / 2
    res = calibrate_router(_cfg(tmp_path, store, 20, target="budget", budget=budget, prices={"s": 1.0, "l": 1.0}),
                           load_model=lambda s: small, load_task=SplitAddTask)["fit"]
    assert res["mean_cost"] <= budget + 1e-12 and res["quality"] >= base["quality"]


def test_bad_configs_missing_records_and_broken_router_files(tmp_path):
    with pytest.raises(ConfigError, match="two different"):
        CalibrateConfig(small="s", large="s", tasks=["add"])
    with pytest.raises(ConfigError, match="target"):
        CalibrateConfig(small="s", large="l", tasks=["add"], target="speed")
    with pytest.raises(ConfigError, match="budget"):
        CalibrateConfig(small="s", large="l", tasks=["add"], target="budget")
    store, small = two_model_store(tmp_path, 4)
    with pytest.raises(DataError, match="both models"):
        calibrate_router(CalibrateConfig(store=str(store), run_dir=str(tmp_path / "c"), small="s", large="nobody",
                                         tasks=["add"], n_per_task=4), load_model=lambda s: small, load_task=SplitAddTask)
    with pytest.raises(ConfigError, match="not found"):
        load_router(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not a router"):
        load_router(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text(json.dumps({"v": 99}))
    with pytest.raises(ConfigError, match="version-1"):
        load_router(tmp_path / "old.json")


class _EvenTask(SplitAddTask):
    """Only even questions (the small model is always right), half as many, worded apart from "add"'s."""

    def examples(self, split, n, seed=0):
        return [Example(ex.id, "Please: " + ex.prompt, ex.reference) for ex in super().examples(split, n, seed)
                if int(ex.prompt.split()[2]) % 2 == 0]


def _tasks(name):
    return _EvenTask(name) if name == "even" else SplitAddTask(name)


def test_per_task_policies_for_tasks_with_enough_rows_and_the_global_policy_for_the_rest(tmp_path):
    from _two_models import Small, _large_answer

    from thrifty.llm.fake import FakeChatModel
    from thrifty.route.decide.files import RouterFile
    from thrifty.route.records.collect import CollectConfig, collect

    models = {"s": Small(), "l": FakeChatModel(rules=[(lambda t: True, _large_answer)])}
    run = tmp_path / "collect"
    collect(CollectConfig(models=["s", "l"], tasks=["add", "even"], split="val", n_per_task=30, run_dir=str(run)),
            load_model=models.__getitem__, load_task=_tasks)
    cfg = CalibrateConfig(store=str(run / "store.sqlite"), run_dir=str(tmp_path / "cal"), small="s", large="l",
                          tasks=["add", "even"], n_per_task=30, target="defer_rate", defer_rate=0.5, per_task=True,
                          min_task_n=30)
    router = calibrate_router(cfg, load_model=models.__getitem__, load_task=_tasks)
    assert router["fit"]["n"] == 45 and router["fit"]["per_task_skipped"] == ["even"]  # 15 even rows < 30
    assert set(router["task_policies"]) == {"add"} and router["task_fit"]["add"]["n"] == 30
    assert router["task_fit"]["add"]["defer_rate"] == 0.5 and router["task_fit"]["add"]["quality"] == 1.0
    assert router["fit"]["defer_rate"] == pytest.approx(15 / 45)  # the global fit: ties at the cut stay answered
    typed = RouterFile.from_record(router, "router")
    own, glob = typed.policy_for("add"), typed.policy_for("even")
    assert own == typed.task_policies["add"] and glob == typed.policy_for(None) == load_router(cfg.out_path).policy
    plain = calibrate_router(CalibrateConfig(**{**cfg.__dict__, "per_task": False}), load_model=models.__getitem__,
                             load_task=_tasks)
    assert "task_policies" not in plain and plain["version"] != router["version"]


def test_routed_p_good_uses_each_rows_task_policy():
    import numpy as np

    from thrifty.route.decide.files import RouterFile
    from thrifty.route.fit.calibrate import routed_p_good

    router = RouterFile.from_record({
        "v": 1, "small": "s", "large": "l", "predictor": {"name": "zero_shot"}, "version": "x",
        "policy": {"tau_good": 0.5},
        "task_policies": {"a": {"tau_good": 0.9, "calibrator": {"kind": "temperature", "temperature": 2.0}}}}, "r")
    probs = np.array([[0.1, 0.2, 0.7], [0.1, 0.2, 0.7], [0.6, 0.2, 0.2]])
    p_good, tau = routed_p_good(router, probs, np.array([True, True, False]), ["a", "b", "a"])
    t2 = np.sqrt(probs[0]) / np.sqrt(probs[0]).sum()  # temperature 2 on log-probs: p^(1/2), renormalised
    assert p_good.tolist() == pytest.approx([t2[1] + t2[2], 0.9, -1.0]) and tau.tolist() == [0.9, 0.5, 0.9]


def test_expected_grade_signal_is_fitted_and_recorded(tmp_path):
    store, small = two_model_store(tmp_path, 20)
    cfg = _cfg(tmp_path, store, 20, target="defer_rate", defer_rate=0.5, calibration="none", signal="expected_grade")
    router = calibrate_router(cfg, load_model=lambda s: small, load_task=SplitAddTask)
    policy = load_router(cfg.out_path).policy
    assert policy.signal == "expected_grade" and router["fit"]["defer_rate"] == 0.5
    # raw predictions: odd questions (bad 0.7, ok 0.2, great 0.1) → 0.2; even (0.2, 0.3, 0.5) → 0.65
    assert policy.tau_good == pytest.approx(0.65)
    with pytest.raises(ConfigError, match="signal"):
        _cfg(tmp_path, store, 20, signal="argmax")
