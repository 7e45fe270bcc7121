"""The prompt router as a router file's predictor: fitted from the query text alone (no model loaded), priced with
no small-model call before the decision, and chosen on val against other predictors by the same costs."""

from __future__ import annotations

import numpy as np
import pytest
from _route_tasks import AddTask
from _two_models import Small, _large_answer

from thrifty.core.errors import ConfigError, DataError
from thrifty.llm.fake import FakeChatModel
from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router
from thrifty.route.fit.probe_fit import ProbeFitConfig, fit_probe_run
from thrifty.route.fit.selection import choose_predictor
from thrifty.route.predictors.build import build_predictor
from thrifty.route.predictors.plain_probe import PlainProbePredictor
from thrifty.route.predictors.probe import ProbeClassifier
from thrifty.route.records.collect import CollectConfig, collect
from thrifty.tasks.base import Example

_OFFSET = {"train": 0, "val": 1000, "test": 2000}


class WordyAddTask(AddTask):
    """Sums whose wording tells the small model's failures apart: it is wrong on odd first numbers, which are
    the "tricky" ones."""

    def __init__(self, name: str = "add") -> None:
        super().__init__(name)

    def examples(self, split, n, seed=0):
        return [Example(id=f"{split}-{i}", prompt=f"{'tricky' if i % 2 else 'plain'} sum: what is "
                        f"{i + _OFFSET[split]} + {seed + 1}?", reference=str(i + _OFFSET[split] + seed + 1))
                for i in range(n)]


def _no_model(spec):
    raise AssertionError(f"the prompt router must not load a model ({spec})")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prompt_router")
    models = {"s": Small(), "l": FakeChatModel(rules=[(lambda t: True, _large_answer)])}
    for split in ("train", "val"):
        collect(CollectConfig(models=["s", "l"], tasks=["add"], split=split, n_per_task=24,
                              run_dir=str(tmp / "collect")), load_model=models.__getitem__, load_task=WordyAddTask)
    store = tmp / "collect" / "store.sqlite"
    cfg = ProbeFitConfig(store=str(store), run_dir=str(tmp / "fit"), model="s", tasks=["add"], n_per_task=24,
                         position="prompt", l2=[0.1])
    summary = fit_probe_run(cfg, load_model=_no_model, load_task=WordyAddTask)
    return tmp, store, models, cfg.out_path, summary


def test_fitted_from_the_query_text_without_loading_a_model(fitted):
    _, _, models, path, summary = fitted
    assert summary["position"] == "prompt" and summary["n"] == 24 and summary["labels"]["bad"] == 12
    predictor, version = build_predictor("prompt_router", "s", models["s"], str(path))
    assert version == ProbeClassifier.load(path).version
    tricky = predictor.predict([{"role": "user", "content": "tricky sum: what is 3001 + 1?"}], "add")
    plain = predictor.predict([{"role": "user", "content": "plain sum: what is 3002 + 1?"}], "add")
    assert tricky.p_bad > 0.5 > plain.p_bad
    assert tricky.tokens_in == 0 and tricky.method == "prompt_router"
    assert predictor.prompt([{"role": "user", "content": "x"}]) == [{"role": "user", "content": "x"}]
    assert predictor.continuation("great") == ""


def test_refused_for_another_model_or_position(fitted):
    _, _, models, path, _ = fitted
    with pytest.raises(ConfigError, match="not 'other'"):
        build_predictor("prompt_router", "other", models["s"], str(path))
    with pytest.raises(DataError, match="prompt_version"):
        PlainProbePredictor(models["s"], ProbeClassifier.load(path))
    with pytest.raises(ConfigError, match="prompt-router file"):
        build_predictor("prompt_router", "s", models["s"], "")


def test_calibrate_chooses_the_cheapest_candidate_at_the_quality_target(fitted):
    tmp, store, models, path, _ = fitted
    cfg = CalibrateConfig(store=str(store), run_dir=str(tmp / "cal"), small="s", large="l", tasks=["add"],
                          n_per_task=24, candidates=["zero_shot", "prompt_router"], prompt_router=str(path),
                          target="defer_rate", defer_rate=0.5, prices={"s": 1.0, "l": 3.0})
    router = calibrate_router(cfg, load_model=lambda s: models["s"], load_task=WordyAddTask)
    sel = router["fit"]["selection"]
    assert set(sel["candidates"]) == {"zero_shot", "prompt_router"}
    zs, pr = sel["candidates"]["zero_shot"], sel["candidates"]["prompt_router"]
    # both separate the small model's failures; the prompt router pays no prediction, so it is cheaper there
    assert zs["auroc_bad"] > 0.9 and pr["auroc_bad"] > 0.9
    assert pr["cost_at_target"] < zs["cost_at_target"]
    assert sel["chosen"] == "prompt_router" == router["predictor"]["name"]
    assert router["predictor"]["artefact"] == str(path)
    assert router["fit"]["defer_rate"] == 0.5 and router["fit"]["quality"] == 1.0
    # deferring costs the large model only: the same as always-large
    assert router["fit"]["mean_cost"] == pytest.approx(
        0.5 * router["fit"]["cost_small_always"] + 0.5 * router["fit"]["cost_large_always"])


def _cand(n, p_good, cost_answer=1.0, cost_defer=3.0):
    q_small = np.array([1.0, 0.0] * (n // 2))
    return {"rows": list(range(n)), "score": np.asarray(p_good, dtype=float), "q_small": q_small,
            "q_large": np.ones(n), "cost_answer": np.full(n, cost_answer), "cost_defer": np.full(n, cost_defer),
            "cost_large": np.full(n, 3.0)}


def test_choose_predictor_by_cost_at_the_target_then_apgr():
    good = [0.9, 0.1] * 4  # ranks the failures last: defers exactly them
    noisy = [0.9, 0.1, 0.1, 0.9] * 2
    chosen, sel = choose_predictor({"noisy": _cand(8, noisy), "good": _cand(8, good)}, 0.95)
    assert chosen == "good" and sel["candidates"]["good"]["saving_at_target"] > sel["candidates"]["noisy"][
        "saving_at_target"]
    # same ranking, one pays more when it defers: the cheaper one is kept
    chosen, _ = choose_predictor({"dear": _cand(8, good, cost_defer=3.5), "cheap": _cand(8, good)}, 0.95)
    assert chosen == "cheap"
    # a tie keeps the earlier listed
    assert choose_predictor({"a": _cand(8, good), "b": _cand(8, good)}, 0.95)[0] == "a"
    with pytest.raises(ConfigError, match="different numbers"):
        choose_predictor({"a": _cand(8, good), "b": _cand(6, good[:6])}, 0.95)
    with pytest.raises(ConfigError, match="candidates"):
        CalibrateConfig(small="s", large="l", tasks=["add"], candidates=["zero_shot", "nope"])
