"""The demo's whole pipeline on scripted backends: collect → report card → predict-eval → calibrate → eval."""

from __future__ import annotations

from _two_models import SplitAddTask, two_model_store

from thrifty.core.store import RunStore
from thrifty.route.decide.files import PredictorRef, load_router
from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router
from thrifty.route.predictors import build_report_card
from thrifty.route.records.predictions import PredictEvalConfig
from thrifty.route.replay.evaluate import EvalConfig, evaluate_router
from thrifty.route.replay.predict_eval import predict_eval


def test_the_demo_pipeline_end_to_end_on_scripted_models(tmp_path):
    store, small = two_model_store(tmp_path, 12, splits=("train", "val", "test"))
    with RunStore(store) as st:
        card = build_report_card(st, "s", split="train", judge="verifier")
    card_path = card.save(tmp_path / "card.json")
    pe = predict_eval(PredictEvalConfig(store=str(store), run_dir=str(tmp_path / "pe"), model="s", tasks=["add"],
                                        n_per_task=12, predictors=["zero_shot", "report_card"], card=str(card_path),
                                        n_boot=50), load_model=lambda s: small, load_task=SplitAddTask)
    assert pe["metrics"]["report_card"]["ALL"]["n"] == 12
    cal = CalibrateConfig(store=str(store), run_dir=str(tmp_path / "router"), small="s", large="l", tasks=["add"],
                          n_per_task=12, predictor="report_card", card=str(card_path), target="defer_rate",
                          defer_rate=0.5)
    router = calibrate_router(cal, load_model=lambda s: small, load_task=SplitAddTask)
    again = load_router(cal.out_path)
    policy = again.policy
    assert policy.calibrator.kind == "temperature"
    assert again.record["predictor"] == {"name": "report_card", "version": card.version, "artefact": str(card_path)}
    assert again.predictor == PredictorRef("report_card", str(card_path), card.version)
    res = evaluate_router(EvalConfig(router=str(cal.out_path), store=str(store), run_dir=str(tmp_path / "eval"),
                                     n_per_task=12, train_n_per_task=12),
                          load_model=lambda s: small, load_task=SplitAddTask)
    assert res["router"]["version"] == router["version"] and res["n"] == 12
    assert res["methods"]["router"]["summary"]["apgr"] == res["methods"]["oracle"]["summary"]["apgr"]
    assert res["methods"]["router"]["operating_point"]["defer_rate"] == 0.5
    assert (tmp_path / "eval" / "report.html").is_file()
    # the test split's report-card predictions were made once, by predict-eval, and reused by eval
    with RunStore(store) as st:
        assert st.count("prediction", predictor="report_card", split="test") == 12


def test_the_demo_pipeline_on_the_plain_prompt_probe_pays_nothing_extra_when_answering(tmp_path):
    from test_evaluate import _WordEmbedder

    from thrifty.route.fit.probe_fit import ProbeFitConfig, fit_probe_run

    store, small = two_model_store(tmp_path, 12, splits=("train", "val", "test"))
    fit = fit_probe_run(ProbeFitConfig(store=str(store), run_dir=str(tmp_path / "probe"), model="s", tasks=["add"],
                                       n_per_task=12, position="plain", l2=[1.0]),
                        load_model=lambda s: small, load_task=SplitAddTask)
    assert fit["position"] == "plain" and fit["n"] == 12
    pe = predict_eval(PredictEvalConfig(store=str(store), run_dir=str(tmp_path / "pe"), model="s", tasks=["add"],
                                        n_per_task=12, predictors=["plain_probe"], probe=fit["probe"], n_boot=50),
                      load_model=lambda s: small, load_task=SplitAddTask)
    assert pe["metrics"]["plain_probe"]["ALL"]["n"] == 12
    cal = CalibrateConfig(store=str(store), run_dir=str(tmp_path / "router"), small="s", large="l", tasks=["add"],
                          n_per_task=12, predictor="plain_probe", probe=fit["probe"], target="defer_rate",
                          defer_rate=0.5)
    calibrate_router(cal, load_model=lambda s: small, load_task=SplitAddTask)
    res = evaluate_router(EvalConfig(router=str(cal.out_path), store=str(store), run_dir=str(tmp_path / "eval"),
                                     n_per_task=12, train_n_per_task=12),
                          load_model=lambda s: small, load_task=SplitAddTask, load_embedder=_WordEmbedder)
    m = res["methods"]
    assert m["router"]["summary"]["apgr"] == m["oracle"]["summary"]["apgr"]  # the probe sees the odd questions
    # the prediction is the answer's own prefill: answering costs exactly the plain answer, deferring the large one
    assert m["router"]["summary"]["cost_weak"] == m["oracle"]["summary"]["cost_weak"]
    assert m["router"]["summary"]["cost_strong"] == m["oracle"]["summary"]["cost_strong"]
