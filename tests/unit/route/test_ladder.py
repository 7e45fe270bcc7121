"""N-tier ladders: the replay rule by hand, the normalised-cost curve, ladder files, and a replay on a store."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _two_models import Small, SplitAddTask, _large_answer

from thrifty.core.errors import ConfigError, DataError
from thrifty.llm.fake import FakeChatModel
from thrifty.route.decide.files import load_ladder
from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router
from thrifty.route.fit.ladder import build_ladder, save_ladder
from thrifty.route.records.collect import CollectConfig, collect
from thrifty.route.replay.ladder_eval import LadderEvalConfig, evaluate_ladder, ladder_curve, ladder_outcomes

# 4 queries, 3 tiers. Tier 0 answers query 0; tier 1 answers query 1 (tier 0 deferred); queries 2 and 3 reach
# the top (query 3's tier-0 prediction is unreadable: -1).
P_GOOD = [[0.9, 0.8], [0.2, 0.7], [0.1, 0.1], [-1.0, 0.2]]
TAUS = [0.5, 0.6]
QUALITY = [[1.0, 1.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.0, 1.0], [0.5, 1.0, 0.0]]
ANSWER = [[1.0, 3.0, 10.0]] * 4
PREDICT = [[0.5, 2.0]] * 4


def test_ladder_outcomes_match_a_hand_computed_replay():
    tier, q, cost = ladder_outcomes(P_GOOD, TAUS, QUALITY, ANSWER, PREDICT)
    assert tier.tolist() == [0, 1, 2, 2]
    assert q.tolist() == [1.0, 0.5, 1.0, 0.0]
    assert cost.tolist() == [0.5 + 1.0, 0.5 + 2.0 + 3.0, 0.5 + 2.0 + 10.0, 0.5 + 2.0 + 10.0]


def test_threshold_is_inclusive_and_max_tries_sends_the_rest_to_the_top():
    tier, _, _ = ladder_outcomes([[0.5, 0.6]], [0.5, 0.6], [[0, 0, 1]], [[1, 1, 1]], [[0, 0]])
    assert tier.tolist() == [0]  # score == threshold answers
    tier, _, cost = ladder_outcomes(P_GOOD, TAUS, QUALITY, ANSWER, PREDICT, max_tries=1)
    assert tier.tolist() == [0, 2, 2, 2]  # tier 1 is never consulted, so query 1 goes to the top
    assert cost.tolist() == [1.5, 10.5, 10.5, 10.5]  # only tier 0's prediction paid
    with pytest.raises(ConfigError, match="must be"):
        ladder_outcomes(P_GOOD, [0.5], QUALITY, ANSWER, PREDICT)


def test_curve_runs_from_always_cheapest_to_always_top_in_normalised_cost():
    always = [[1.5, 4.0, 10.0]] * 4
    curve = ladder_curve(P_GOOD, QUALITY, ANSWER, PREDICT, always, rates=[0.0, 0.5, 1.0])
    assert curve.c[0] == 0.0 and curve.c[-1] == 1.0 and np.all(np.diff(curve.c) >= 0)
    assert curve.r[0] == np.mean([1.0, 0.0, 0.0, 0.5]) and curve.r[-1] == np.mean([1.0, 1.0, 1.0, 0.0])
    # d = 0: every lower tier answers (-1 is below any threshold, so query 3 still defers at tier 0 and answers
    # at tier 1): cost (1.5 + 1.5 + 1.5 + 5.5) / 4 = 2.5 → c = (2.5 - 1.5) / 8.5
    d0 = [k for k, d in enumerate(curve.threshold) if d == 0.0]
    assert len(d0) == 1 and curve.c[d0[0]] == pytest.approx(1.0 / 8.5)
    # d = 1: everything climbs to the top and pays both predictions: cost 12.5 > always-top, so it is dropped
    assert 1.0 not in curve.threshold.tolist()


def _medium_answer(text: str) -> str:  # right unless i % 4 == 1
    a, b = map(int, re.findall(r"\d+", text)[:2])
    return f"Answer: {a + b if a % 4 != 1 else -1}"


class Medium(Small):
    def __init__(self):
        super().__init__()
        self.gen = FakeChatModel(rules=[(lambda t: True, _medium_answer)])
        first = lambda t: int(re.findall(r"\d+", t)[0])  # noqa: E731
        self.pred = FakeChatModel(label_rules=[(lambda t: first(t) % 4 == 1, {"bad": 0.8, "ok": 0.1, "great": 0.1})],
                                  label_default={"bad": 0.1, "ok": 0.3, "great": 0.6})


def _three_tier(tmp_path, n=24):
    models = {"s": Small(), "m": Medium(), "l": FakeChatModel(rules=[(lambda t: True, _large_answer)])}
    run = tmp_path / "collect"
    for split in ("val", "test"):
        collect(CollectConfig(models=list(models), tasks=["add"], split=split, n_per_task=n, run_dir=str(run)),
                load_model=models.__getitem__, load_task=SplitAddTask)
    store = run / "store.sqlite"
    paths = []
    for small, large in (("s", "m"), ("m", "l")):
        cfg = CalibrateConfig(store=str(store), run_dir=str(tmp_path / f"r_{small}"), small=small, large=large,
                              tasks=["add"], n_per_task=n, target="defer_rate", defer_rate=0.5,
                              prices={"s": 1.0, "m": 2.0, "l": 100.0})
        calibrate_router(cfg, load_model=models.__getitem__, load_task=SplitAddTask)
        paths.append(cfg.out_path)
    return store, models, paths


def test_ladder_file_round_trip_and_broken_chains(tmp_path):
    _, _, (r_sm, r_ml) = _three_tier(tmp_path, n=8)
    record = build_ladder([r_sm, r_ml], max_tries=2)
    assert record["tiers"] == ["s", "m", "l"] and record["max_tries"] == 2 and len(record["version"]) == 12
    out = save_ladder(record, tmp_path / "ladder.json")
    typed = load_ladder(out)
    assert typed.record == json.loads(out.read_text()) == record
    assert typed.tiers == ("s", "m", "l") and typed.max_tries == 2 and [s.small for s in typed.steps] == ["s", "m"]
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(r_sm.read_text().replace('"large": "m"', '"large": "x"'))
    with pytest.raises(ConfigError, match="not a stronger tier"):
        build_ladder([elsewhere, r_ml])
    with pytest.raises(ConfigError, match="distinct"):
        build_ladder([r_ml, r_sm])
    with pytest.raises(ConfigError, match="max_tries"):
        build_ladder([r_sm, r_ml], max_tries=0)
    (tmp_path / "bad.json").write_text('{"kind": "ladder", "v": 1, "tiers": ["s"], "steps": []}')
    with pytest.raises(ConfigError, match="one step per lower tier"):
        load_ladder(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="not found"):
        load_ladder(tmp_path / "none.json")


def test_ladder_replay_on_a_store_matches_the_rule(tmp_path):
    store, models, paths = _three_tier(tmp_path)
    ladder = save_ladder(build_ladder(paths), tmp_path / "ladder.json")
    cfg = LadderEvalConfig(ladder=str(ladder), store=str(store), run_dir=str(tmp_path / "ev"), n_per_task=24)
    res = evaluate_ladder(cfg, load_model=models.__getitem__, load_task=SplitAddTask)
    assert res["n"] == 24 and res["tiers"] == ["s", "m", "l"]
    assert res["always"]["s"]["quality"] == 0.5 and res["always"]["m"]["quality"] == 0.75
    assert res["always"]["l"]["quality"] == 1.0
    # s answers its right (even) half; m answers what it gets right of the rest; the top takes i % 4 == 1
    assert res["fitted"]["share"] == {"s": 0.5, "m": 0.25, "l": 0.25} and res["fitted"]["quality"] == 1.0
    assert 0 < res["fitted"]["c"] < 1 and res["ladder_curve"]["points_in_range"] >= 3
    assert res["ladder_curve"]["apgr"] > 0.5 and (tmp_path / "ev" / "ladder_eval.md").exists()
    calls = models["m"].pred.n_calls
    evaluate_ladder(cfg, load_model=models.__getitem__, load_task=SplitAddTask)
    assert models["m"].pred.n_calls == calls  # predictions stored and reused
    with pytest.raises(DataError, match="every tier"):  # the val split has no tier-0 predictions for n=30
        evaluate_ladder(LadderEvalConfig(ladder=str(ladder), store=str(store), run_dir=str(tmp_path / "e2"),
                                         tasks=["nothing"], n_per_task=24),
                        load_model=models.__getitem__, load_task=SplitAddTask)
