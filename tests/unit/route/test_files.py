"""Router and ladder files read back as types: one validator each, one-line errors, old files still load."""

from __future__ import annotations

import json

import pytest

from thrifty.core.errors import ConfigError
from thrifty.route.decide.files import (
    LadderFile,
    PredictorRef,
    RouterFile,
    load_ladder,
    load_router,
    load_routing_file,
)

ROUTER = {"v": 1, "small": "s", "large": "l", "judge": "llm", "version": "abc",
          "predictor": {"name": "plain_probe", "artefact": "p.npz", "version": "7"},
          "policy": {"tau_good": 0.4, "calibrator": {"kind": "temperature", "temperature": 2.0}},
          "task_policies": {"add": {"tau_good": 0.8}},
          "target": {"cost": "tokens", "prices": {"s": 1.0, "l": 3.0}}, "fitted_on": {"tasks": ["add"]},
          "fit": {"selection": {"chosen": "plain_probe"}}}


def test_a_router_file_reads_into_typed_fields(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(ROUTER))
    r = load_router(path)
    assert (r.small, r.large, r.judge, r.version) == ("s", "l", "llm", "abc")
    assert r.predictor == PredictorRef("plain_probe", "p.npz", "7")
    assert r.policy.tau_good == 0.4 and r.policy.calibrator.temperature == 2.0
    assert r.policy_for("add").tau_good == 0.8 and r.policy_for("other") == r.policy == r.policy_for(None)
    assert r.target["prices"] == {"s": 1.0, "l": 3.0} and r.fitted_on["tasks"] == ["add"]
    assert r.fit["selection"]["chosen"] == "plain_probe" and r.record == ROUTER


def test_an_old_minimal_router_file_gets_the_defaults():
    old = {k: ROUTER[k] for k in ("v", "small", "large", "version", "policy")} | {"predictor": {"name": "zero_shot"}}
    r = RouterFile.from_record(old, "old.json")
    assert r.predictor == PredictorRef("zero_shot") and r.judge == "verifier" and r.task_policies == {}
    assert r.target == {} and r.fitted_on == {} and r.fit == {}


@pytest.mark.parametrize("broken, match", [
    ({"predictor": "probe"}, "predictor needs a name"),
    ({"policy": {"tau": 0.5}}, "policy in the router file is malformed"),
    ({"task_policies": {"add": {"tau_good": "high"}}}, "policy in the router file is malformed"),
    ({"target": [1]}, "must be JSON objects"),
    ({"v": 2}, "not a version-1 router file"),
])
def test_a_malformed_router_file_is_one_line_naming_the_file(broken, match):
    with pytest.raises(ConfigError, match=match) as err:
        RouterFile.from_record({**ROUTER, **broken}, "r.json")
    assert str(err.value).startswith("r.json") and "\n" not in str(err.value)


def test_a_ladder_file_validates_every_step_and_gives_each_tasks_ladder(tmp_path):
    step2 = {**ROUTER, "small": "l", "large": "xl", "task_policies": {}}
    record = {"v": 1, "kind": "ladder", "tiers": ["s", "l", "xl"], "steps": [ROUTER, step2], "max_tries": 1,
              "version": "lad"}
    path = tmp_path / "ladder.json"
    path.write_text(json.dumps(record))
    lad = load_ladder(path)
    assert lad.tiers == ("s", "l", "xl") and lad.max_tries == 1 and lad.version == "lad"
    assert [p.tau_good for p in lad.ladder("add").policies] == [0.8, 0.4]
    assert [p.tau_good for p in lad.ladder().policies] == [0.4, 0.4] and lad.ladder().max_tries == 1
    assert load_routing_file(path) == lad
    bad = {**record, "steps": [ROUTER, {**step2, "policy": {}}]}
    with pytest.raises(ConfigError, match=r"step 1\): .*malformed"):
        LadderFile.from_record(bad, "ladder.json")
    with pytest.raises(ConfigError, match="max_tries"):
        LadderFile.from_record({**record, "max_tries": 0}, "ladder.json")


def test_a_router_file_is_a_two_tier_ladder(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(ROUTER))
    lad = load_routing_file(path)
    assert lad.tiers == ("s", "l") and lad.steps == (load_router(path),) and lad.version == "abc"
    assert lad.record["kind"] == "ladder" and lad.record["steps"] == [ROUTER]
