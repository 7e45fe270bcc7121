"""Collection: generations and scores land in the store; a re-run reuses them and loads no model."""

from __future__ import annotations

import json
import re

import pytest
from _route_tasks import AddTask

from thrifty.core.errors import ConfigError
from thrifty.core.store import RunStore
from thrifty.llm.fake import FakeChatModel
from thrifty.route.records.collect import CollectConfig, collect, format_table


def _right(msg: str) -> str:
    a, b = map(int, re.findall(r"\d+", msg)[:2])
    return f"Answer: {a + b}"


def _models(loaded):
    def load(spec):
        loaded.append(spec)
        if spec == "good":
            return FakeChatModel(rules=[(lambda m: True, _right)])
        return FakeChatModel(default="Answer: 0")
    return load


def test_collect_scores_and_resumes(tmp_path):
    cfg = CollectConfig(models=["good", "bad"], tasks=["add"], n_per_task=4, run_dir=str(tmp_path / "run"))
    loaded: list[str] = []
    res = collect(cfg, load_model=_models(loaded), load_task=AddTask)
    assert res.table["good"]["add"]["accuracy"] == 1.0
    assert res.table["bad"]["add"]["accuracy"] == 0.0  # "0" is never i + 1
    assert (res.new_generations, res.reused_generations, res.failures) == (8, 0, 0)
    assert loaded == ["good", "bad"]
    with RunStore(cfg.store_path) as store:
        assert store.count("generation") == 8 and store.count("score") == 8
        assert store.count("generation", model="good", task="add") == 4
    assert (tmp_path / "run" / "config.yaml").exists()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["table"]["good"]["ALL"]["n"] == 4

    loaded.clear()
    again = collect(cfg, load_model=_models(loaded), load_task=AddTask)
    assert loaded == []  # everything stored: no model is even loaded
    assert (again.new_generations, again.reused_generations) == (0, 8)
    assert again.table == res.table

    more = CollectConfig(models=["good", "bad"], tasks=["add"], n_per_task=6, run_dir=str(tmp_path / "run"))
    grown = collect(more, load_model=_models(loaded), load_task=AddTask)
    assert (grown.new_generations, grown.reused_generations) == (4, 8)
    assert "good" in format_table(grown.table)


def test_failed_generations_are_counted_not_stored(tmp_path):
    cfg = CollectConfig(models=["flaky"], tasks=["add"], n_per_task=2, retries=0, run_dir=str(tmp_path / "r"))
    flaky = FakeChatModel(default="Answer: 1", fail_first=1)
    res = collect(cfg, load_model=lambda s: flaky, load_task=AddTask)
    assert res.failures == 1 and res.new_generations == 1
    res2 = collect(cfg, load_model=lambda s: flaky, load_task=AddTask)  # the failed one is retried
    assert (res2.failures, res2.new_generations, res2.reused_generations) == (0, 1, 1)


@pytest.mark.parametrize("bad", [{"models": []}, {"split": "dev"}, {"n_per_task": 0}])
def test_config_validation(bad):
    with pytest.raises((ValueError, ConfigError)):
        CollectConfig(**bad)


def test_default_verifier_judge_grades_every_answer(tmp_path):
    cfg = CollectConfig(models=["good", "bad"], tasks=["add"], n_per_task=3, run_dir=str(tmp_path / "run"))
    res = collect(cfg, load_model=_models([]), load_task=AddTask)
    assert res.table["good"]["add"]["great"] == 1.0 and res.table["good"]["add"]["grade_value"] == 1.0
    assert res.table["bad"]["add"]["bad"] == 1.0 and res.table["bad"]["ALL"]["grade_value"] == 0.0
    with RunStore(cfg.store_path) as store:
        assert store.count("grade", judge="verifier") == 6  # verifier grades each answer on its own
    assert "great" in format_table(res.table)


class CountingAddTask(AddTask):
    """AddTask that counts how often its checker runs (a HumanEval checker executes code: once is enough)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.scored = 0

    def score(self, example, text):
        self.scored += 1
        return super().score(example, text)


def test_the_verifier_judge_reuses_the_scores_instead_of_running_the_checker_again(tmp_path):
    task = CountingAddTask("add")
    cfg = CollectConfig(models=["good", "bad"], tasks=["add"], n_per_task=3, run_dir=str(tmp_path / "run"))
    res = collect(cfg, load_model=_models([]), load_task=lambda spec: task)
    assert task.scored == 6 and res.table["good"]["add"]["great"] == 1.0  # 3 examples x 2 models, once each
    collect(cfg, load_model=_models([]), load_task=lambda spec: task)
    assert task.scored == 6  # scores and grades are stored: a re-run runs no checker at all


def _scripted_rubric_judge(calls):
    """A judge model that answers the rubric judge's fenced prompt: great if an answer says 'Answer: 0'."""

    def respond(prompt: str) -> str:
        calls.append(prompt)
        nonce = re.match(r"Fence code: ([0-9a-f]+)", prompt).group(1)
        bodies = re.findall(rf"\u27e6BEGIN ANSWER (\d+) {nonce}\u27e7\n(.*?)\n\u27e6END ANSWER \1 {nonce}\u27e7",
                            prompt, flags=re.S)
        grades = [{"answer": int(i), "rationale": "scripted", "label": "great" if "Answer: 0" in body else "bad"}
                  for i, body in bodies]
        return json.dumps({"nonce": nonce, "grades": grades})

    return FakeChatModel(rules=[(lambda text: text.startswith("Fence code: "), respond)])


def test_joint_rubric_judge_sees_all_models_at_once_and_is_cached(tmp_path):
    calls: list[str] = []
    loaded: list[str] = []

    def load(spec):
        loaded.append(spec)
        return _scripted_rubric_judge(calls) if spec == "judge" else _models([])(spec)

    cfg = CollectConfig(models=["good", "bad"], tasks=["add"], n_per_task=3, judge="rubric", judge_model="judge",
                        run_dir=str(tmp_path / "run"))
    res = collect(cfg, load_model=load, load_task=AddTask)
    assert len(calls) == 3  # one joint call per example, both answers in it
    assert all(p.count("BEGIN ANSWER") == 2 for p in calls)
    assert res.table["bad"]["add"]["great"] == 1.0  # the scripted judge favours "Answer: 0"
    assert res.table["good"]["add"]["bad"] == 1.0
    calls.clear()
    again = collect(cfg, load_model=load, load_task=AddTask)
    assert calls == [] and again.table == res.table  # grades come from the store


def test_llm_judge_needs_a_judge_model():
    with pytest.raises(ValueError, match="needs judge_model"):
        CollectConfig(judge="rubric")


def test_unknown_judge_is_rejected_before_any_work():
    with pytest.raises(ValueError, match="unknown judge 'oracle'"):
        CollectConfig(judge="oracle")


def test_the_same_prompt_in_two_tasks_is_visible_under_both(tmp_path):
    """A generation is keyed by its inputs, so task "b" (same prompts as "a") reuses "a"'s; readers that look
    answers up by task and split must still find them under "b"."""
    from thrifty.route.records.joins import stored_generations

    model = FakeChatModel(default="Answer: 1")
    for tasks in (["a", "b"], ["a", "b", "c"]):  # one run with both, then a later run adding "c"
        collect(CollectConfig(models=["m"], tasks=tasks, split="val", n_per_task=3, run_dir=str(tmp_path / "r"),
                              judge=""), load_model=lambda s: model, load_task=AddTask)
    with RunStore(tmp_path / "r" / "store.sqlite") as store:
        gens = stored_generations(store, "m", "val")
    assert {t for t, _ in gens} == {"a", "b", "c"} and len(gens) == 9
    assert len({g["text"] for g in gens.values()}) == 1


def test_two_concurrent_collects_of_the_same_work_call_the_backend_once_per_item(tmp_path):
    import threading
    import time

    calls = []

    class Slow(FakeChatModel):
        def chat(self, messages, params=None, assistant_prefix=""):
            calls.append(messages[-1]["content"])
            time.sleep(0.05)
            return super().chat(messages, params, assistant_prefix=assistant_prefix)

    cfg = CollectConfig(models=["good"], tasks=["add"], n_per_task=6, run_dir=str(tmp_path / "run"))
    results = []

    def run():
        results.append(collect(cfg, load_model=lambda s: Slow(rules=[(lambda m: True, _right)]), load_task=AddTask))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(calls) == 6 and len(set(calls)) == 6  # each item answered once, by whichever run got there first
    assert sorted((r.new_generations, r.reused_generations) for r in results) == [(0, 6), (6, 0)]
