"""Router and ladder files made live: history trimming, loading tiers and predictors, sticky escalation."""

from __future__ import annotations

import json

import pytest
from test_ladder import _three_tier

from thrifty.core.errors import ConfigError
from thrifty.llm.fake import FakeChatModel
from thrifty.route.decide.files import load_routing_file
from thrifty.route.decide.policy import ANSWER, DEFER
from thrifty.route.fit.ladder import build_ladder, save_ladder
from thrifty.route.serve.deploy import load_deployment, trim_history


def _m(role, text):
    return {"role": role, "content": text}


def test_trim_history_keeps_system_and_last_message_and_newest_turns_that_fit():
    conv = [_m("system", "sys"), _m("user", "a" * 40), _m("assistant", "b" * 40), _m("user", "c" * 8)]
    assert trim_history(conv, None) == conv
    count = len  # one token per character
    assert trim_history(conv, 100, count) == conv
    assert trim_history(conv, 51, count) == [conv[0], conv[2], conv[3]]  # 3 + 8 + 40 fits, + 40 more does not
    assert trim_history(conv, 1, count) == [conv[0], conv[3]]  # the last message always stays
    assert trim_history(conv[1:], 48, count) == conv[2:]
    out = trim_history(conv, None)
    out[0]["content"] = "changed"
    assert conv[0]["content"] == "sys"  # copies, never the caller's dicts


def _q(i):
    return [{"role": "user", "content": f"What is {2000 + i} + 1?"}]


def test_router_file_loads_as_a_two_tier_deployment_and_routes(tmp_path):
    _, models, (r_sm, _) = _three_tier(tmp_path, n=8)
    record = load_routing_file(r_sm)
    assert record.tiers == ("s", "m") and len(record.steps) == 1 and record.version == record.steps[0].version
    dep = load_deployment(r_sm, load_model=models.__getitem__)
    assert dep.tiers == ("s", "m")
    even, odd = dep.route(_q(0)), dep.route(_q(3))
    assert (even.action, even.tier) == (ANSWER, 0) and (odd.action, odd.tier) == (DEFER, 1)
    assert (even.model, odd.model) == ("s", "m") and odd.text == "Answer: 2004"  # m is right on i = 3


def test_ladder_file_routes_across_three_tiers_and_sticky_escalation_skips_lower_tiers(tmp_path):
    _, models, paths = _three_tier(tmp_path, n=8)
    ladder = save_ladder(build_ladder(paths), tmp_path / "ladder.json")
    dep = load_deployment(ladder, load_model=models.__getitem__)
    assert [dep.route(_q(i)).tier for i in range(4)] == [0, 2, 0, 1]  # i=1: m is wrong on i % 4 == 1 and knows
    calls = models["s"].pred.n_calls
    sticky = dep.route(_q(0), start_tier=1)  # an earlier turn went to tier 1: s is not asked again
    assert sticky.tier == 1 and models["s"].pred.n_calls == calls and len(sticky.predictions) == 1
    top = dep.route(_q(0), start_tier=2)
    assert (top.tier, top.action, top.predictions) == (2, DEFER, [])
    with pytest.raises(ConfigError, match="start_tier"):
        dep.route(_q(0), start_tier=3)


def test_unreadable_files_fail_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_routing_file(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a router or ladder"):
        load_routing_file(tmp_path / "junk.json")
    (tmp_path / "r.json").write_text(json.dumps({"v": 99}))
    with pytest.raises(ConfigError, match="router file"):
        load_deployment(tmp_path / "r.json", load_model=lambda s: FakeChatModel())


def test_a_tagged_request_uses_its_tasks_own_policy(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"v": 1, "small": "a", "large": "b", "predictor": {"name": "zero_shot"},
                                "policy": {"tau_good": 0.5}, "task_policies": {"hard": {"tau_good": 0.9}},
                                "version": "hand"}))
    dep = load_deployment(path, load_model=lambda spec: FakeChatModel(model_id=spec))  # uniform: p_good 2/3
    assert dep.ladder_for("hard").policies[0].tau_good == 0.9 and dep.ladder_for("other") == dep.ladder
    assert dep.route(_q(0), task="other").tier == 0 and dep.route(_q(0), task="hard").tier == 1
