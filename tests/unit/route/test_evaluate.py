"""`route eval`: the router and its baselines replayed over stored test records; the prompt-only baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _two_models import SplitAddTask, two_model_store

from thrifty.core.errors import ConfigError, DataError
from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router
from thrifty.route.replay.baselines import PromptRouter, prompt_features
from thrifty.route.replay.evaluate import EvalConfig, evaluate_router, format_markdown

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_prompt_features_are_stable_normalised_and_task_aware():
    a = prompt_features("What is 2 + 3?", "add", dim=64)
    assert np.allclose(a, prompt_features("what IS 2 + 3?", "add", dim=64))  # lower-cased
    assert np.linalg.norm(a) == pytest.approx(1.0)
    assert not np.allclose(a, prompt_features("What is 2 + 3?", "mul", dim=64))
    assert not np.allclose(a, prompt_features("3 + 2 is what?", "add", dim=64))  # bigrams see word order
    assert np.all(prompt_features("", "", dim=8) == prompt_features("", "", dim=8))


def test_prompt_router_learns_which_prompts_the_small_model_fails():
    rows = [("t", [{"role": "user", "content": f"{'hard riddle' if i % 2 else 'easy sum'} number {i}"}])
            for i in range(40)]
    good = [i % 2 == 0 for i in range(40)]
    router = PromptRouter(dim=256).fit(rows, good, seed=0)
    test = [("t", [{"role": "user", "content": "hard riddle number 99"}]),
            ("t", [{"role": "user", "content": "easy sum number 98"}])]
    hard, easy = router.p_good(test)
    assert easy > 0.8 and hard < 0.2 and router.l2 is not None
    with pytest.raises(DataError, match="not fitted"):
        PromptRouter().p_good(test)


@pytest.fixture
def routed(tmp_path):
    store, small = two_model_store(tmp_path, 20, splits=("train", "val", "test"))
    cal = CalibrateConfig(store=str(store), run_dir=str(tmp_path / "cal"), small="s", large="l", tasks=["add"],
                          n_per_task=20, target="defer_rate", defer_rate=0.5)
    calibrate_router(cal, load_model=lambda s: small, load_task=SplitAddTask)
    return store, small, cal.out_path


class _WordEmbedder:
    """A fake encoder for unit tests: a unit vector of two word counts ("hard", everything else)."""

    model_id, max_length = "all-minilm-l6-v2", 256

    def tokenizer(self, text):
        return {"input_ids": text.split()}

    def embed(self, texts):
        v = np.array([[t.count("hard") + 0.1, len(t.split())] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_replay_scores_the_router_beside_random_oracle_and_prompt_baselines(tmp_path, routed):
    store, small, router = routed
    cfg = EvalConfig(router=str(router), store=str(store), run_dir=str(tmp_path / "eval"), n_per_task=20,
                     train_n_per_task=20)
    res = evaluate_router(cfg, load_model=lambda s: small, load_task=SplitAddTask, load_embedder=_WordEmbedder)
    m = res["methods"]
    assert res["n"] == 20 and res["q_small"] == 0.5 and res["q_large"] == 1.0
    assert set(m) == {"router", "random", "oracle", "prompt_router", "embed_knn", "p_true", "chow"}
    assert m["embed_knn"]["summary"]["cost_weak"] > m["oracle"]["summary"]["cost_weak"]  # it pays the encoder
    assert m["random"]["summary"]["apgr"] == pytest.approx(0.5)
    # the small model knows exactly which of its answers fail: its router matches the oracle's order
    assert m["router"]["summary"]["apgr"] == pytest.approx(m["oracle"]["summary"]["apgr"])
    assert m["router"]["summary"]["auroc"] == 1.0 and m["router"]["summary"]["cpt_80"] == pytest.approx(0.4)
    assert m["router"]["operating_point"] == pytest.approx(
        {"tau": m["router"]["operating_point"]["tau"], "defer_rate": 0.5, "quality": 1.0,
         "cost": m["router"]["operating_point"]["cost"]})
    assert m["router"]["summary"]["cost_strong"] > m["oracle"]["summary"]["cost_strong"]  # it pays predictions
    plain_large = m["oracle"]["summary"]["cost_strong"]  # savings of every method are against plain always-large
    for s in (v["summary"] for v in m.values()):
        assert s["cost_large_plain"] == pytest.approx(plain_large)
        assert s["savings"] == pytest.approx(1 - s["cost_at_q"] / plain_large)
    assert 0.0 <= m["prompt_router"]["summary"]["apgr"] <= 1.0
    # P(True) says True to everything: no ordering, the random line, and it always pays the small answer
    assert m["p_true"]["summary"]["apgr"] == pytest.approx(0.5) and m["p_true"]["summary"]["auroc"] == 0.5
    assert m["p_true"]["summary"]["cost_weak"] > m["oracle"]["summary"]["cost_weak"]
    assert m["p_true"]["summary"]["cost_strong"] > m["oracle"]["summary"]["cost_strong"]
    # its token log-probs do know which answers are wrong: Chow orders like the oracle and pays only the answer
    assert m["chow"]["summary"]["apgr"] == pytest.approx(m["oracle"]["summary"]["apgr"])
    assert m["chow"]["summary"]["auroc"] == 1.0 and small.scored == 20
    assert m["chow"]["summary"]["cost_weak"] == pytest.approx(m["oracle"]["summary"]["cost_weak"])
    assert res["overhead"]["tokens_in"] > 0 and res["overhead"]["parse_failures"] == 0
    for name, s in ((k, v["summary"]) for k, v in m.items()):  # paired bootstrap intervals hold their estimate
        assert s["n_boot"] == 1000, name
        for key in ("apgr", "savings"):
            lo, hi = s[f"{key}_ci"]
            assert lo - 1e-9 <= s[key] <= hi + 1e-9 and hi - lo < 1.0, (name, key, lo, s[key], hi)
    assert m["random"]["summary"]["apgr_ci"] == pytest.approx([0.5, 0.5])  # the line's APGR is ½ on any resample
    assert m["router"]["summary"]["apgr_ci"][1] - m["router"]["summary"]["apgr_ci"][0] > 0.01  # 20 queries: wide
    assert res["pricing"]["models"] == ["s", "l"] and res["router"]["target"]["cost"] == "tokens"
    assert "selection" not in res["router"]  # calibrated with one predictor: nothing was chosen
    out = tmp_path / "eval"
    assert json.loads((out / "route_eval.json").read_text())["n"] == 20
    assert (out / "route_eval.md").read_text() == format_markdown(res) and "| router |" in format_markdown(res)
    for name in ("quality_vs_large_calls", "quality_vs_cost"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    assert res["per_task"]["add"]["n"] == 20 and res["per_task"]["add"]["router_apgr"] == pytest.approx(
        m["router"]["summary"]["apgr"])
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 2
    assert "<script" not in page and "router APGR" in page and "s → l" in page and "Per task" in page
    assert "95 % CI" in page and "Cost = mean price units per query" in page and "<details>" in page
    assert "Predictor chosen on" not in page
    calls = small.pred.n_calls, small.verify.n_calls, small.scored
    assert small.verify.n_calls == 20
    evaluate_router(cfg, load_model=lambda s: small, load_task=SplitAddTask)
    assert (small.pred.n_calls, small.verify.n_calls, small.scored) == calls  # every score was stored


def test_replay_carries_the_predictor_selection_and_the_interval_setting(tmp_path, routed):
    store, small, router_path = routed
    router = json.loads(router_path.read_text())
    router["fit"]["selection"] = {  # as `route calibrate` writes it when it compares candidates
        "rule": "lowest cost at 0.95 x the large model's quality", "quality": 0.95, "chosen": "zero_shot",
        "candidates": {"zero_shot": {"apgr": 0.9, "cost_at_target": 1.5, "saving_at_target": 0.2,
                                     "defer_at_target": 0.5, "auroc_bad": 1.0, "n": 20},
                       "<probe>": {"apgr": 0.4, "cost_at_target": 2.5, "saving_at_target": -0.1,
                                   "defer_at_target": 0.9, "auroc_bad": 0.6, "n": 20}}}
    router_path.write_text(json.dumps(router))  # the version hash leaves "fit" out: the file still loads
    cfg = EvalConfig(router=str(router_path), store=str(store), run_dir=str(tmp_path / "sel"), n_per_task=20,
                     baselines=["random", "oracle"], n_boot=0)
    res = evaluate_router(cfg, load_model=lambda s: small, load_task=SplitAddTask)
    assert res["router"]["selection"]["chosen"] == "zero_shot"
    assert "apgr_ci" not in res["methods"]["router"]["summary"]  # n_boot 0: no intervals
    page = (tmp_path / "sel" / "report.html").read_text()
    assert "Predictor chosen on val" in page and "zero_shot (chosen)" in page and "&lt;probe&gt;" in page
    assert "## Predictor chosen on val" in (tmp_path / "sel" / "route_eval.md").read_text()
    with pytest.raises(ConfigError, match="n_boot"):
        EvalConfig(router="r.json", n_boot=-1)


def test_every_route_eval_curve_gets_its_own_line_style_and_marker():
    from thrifty.evals.plots import curve_styles
    from thrifty.route.replay.evaluate import BASELINES

    styles = curve_styles(len(BASELINES) + 1)  # the router and every baseline
    assert len(set(styles)) == len(styles) and len({m for _, m in styles}) == len(styles)


def test_replay_notes_a_missing_train_split_and_refuses_bad_input(tmp_path):
    store, small = two_model_store(tmp_path, 10, splits=("val", "test"))
    cal = CalibrateConfig(store=str(store), run_dir=str(tmp_path / "cal"), small="s", large="l", tasks=["add"],
                          n_per_task=10, target="defer_rate")
    calibrate_router(cal, load_model=lambda s: small, load_task=SplitAddTask)
    res = evaluate_router(EvalConfig(router=str(cal.out_path), store=str(store), run_dir=str(tmp_path / "e"),
                                     n_per_task=10), load_model=lambda s: small, load_task=SplitAddTask)
    assert "prompt_router" not in res["methods"] and "prompt_router skipped" in res["notes"][0]
    with pytest.raises(DataError, match="both models"):
        evaluate_router(EvalConfig(router=str(cal.out_path), store=str(store), run_dir=str(tmp_path / "e2"),
                                   split="train"), load_model=lambda s: small, load_task=SplitAddTask)
    with pytest.raises(ConfigError, match="router"):
        EvalConfig()
    with pytest.raises(ConfigError, match="baseline"):
        EvalConfig(router="r.json", baselines=["frugal"])
    with pytest.raises(ConfigError, match="not found"):
        evaluate_router(EvalConfig(router=str(tmp_path / "none.json")))


def test_report_escapes_whatever_the_names_hold(tmp_path):
    from thrifty.route.replay.report_html import render

    summary = {"apgr": 0.5, "cpt_50": 0.5, "cpt_80": 0.8, "cost_at_q": 1.0, "savings": float("nan"), "aiq": 0.4}
    result = {"router": {"small": "<b>s</b>", "large": "l&l", "version": "v", "predictor": {"name": "x"},
                         "policy": {}},
              "split": "test", "n": 2, "tasks": ["<t>"], "q_small": 0.1, "q_large": 0.9,
              "methods": {"router": {"summary": summary, "operating_point": {"tau": 0.5, "defer_rate": 0.5,
                                                                             "quality": 0.5, "cost": 1.0}}},
              "overhead": {"tokens_in": 3, "tokens_out": 0, "latency_s": 0.1, "parse_failures": 0},
              "notes": ["<script>alert(1)</script>"], "per_task": {}}
    page = render(result, tmp_path)
    assert "<b>s</b>" not in page and "&lt;b&gt;s&lt;/b&gt;" in page and "<script>" not in page
    assert "quality_vs_cost.png missing" in page and "—" in page  # NaN saving shown as a dash
