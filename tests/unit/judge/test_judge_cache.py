"""Grade caching in the run store: re-runs make no judge call; keys change with whatever changes grades."""

from __future__ import annotations

from _judge_scripts import keyword_rule, scripted_judge

from thrifty.core.store import RunStore
from thrifty.judge import CachedJudge, RubricJudge, VerifierJudge, grade_fields
from thrifty.llm.fake import FakeChatModel
from thrifty.tasks.base import Example, Score

ANSWERS = {"small": "OK answer", "large": "GREAT answer"}


def test_rerun_makes_no_judge_call(tmp_path):
    path = tmp_path / "store.sqlite"
    model = scripted_judge(keyword_rule)
    with RunStore(path) as store:
        cj = CachedJudge(RubricJudge(model), store, tags={"task": "demo"})
        first = cj.grade("Q?", ANSWERS)
        assert model.n_calls == 1 and (cj.hits, cj.misses) == (0, 1)
        assert not any(g.info["cached"] for g in first.values())
    fresh_model = scripted_judge(keyword_rule)
    with RunStore(path) as store:  # a new process would see the same file
        cj = CachedJudge(RubricJudge(fresh_model), store)
        again = cj.grade("Q?", dict(reversed(ANSWERS.items())))
        assert fresh_model.n_calls == 0 and (cj.hits, cj.misses) == (1, 0)
        assert all(g.info["cached"] for g in again.values())
        assert {m: (g.label, g.rationale, g.raw) for m, g in again.items()} == \
            {m: (g.label, g.rationale, g.raw) for m, g in first.items()}
        (rec,) = list(store.records("grade"))
        assert rec.tags == {"judge": "generic-joint", "judge_model": "fake", "mode": "joint", "task": "demo"}


def test_any_change_to_the_graded_group_is_a_miss(tmp_path):
    model = scripted_judge(keyword_rule)
    with RunStore(tmp_path / "s.sqlite") as store:
        cj = CachedJudge(RubricJudge(model), store)
        cj.grade("Q?", ANSWERS)
        cj.grade("Q?", {**ANSWERS, "small": "BAD answer"})   # one answer changed
        cj.grade("Q?", {**ANSWERS, "third": "OK"})           # one more answer in the joint group
        cj.grade("Q2?", ANSWERS)                              # another query
        cj.grade("Q?", ANSWERS, reference="ref")             # a reference
        assert model.n_calls == 5 and cj.misses == 5
        CachedJudge(RubricJudge(model, rubric="mischievous"), store).grade("Q?", ANSWERS)
        CachedJudge(RubricJudge(model, seed=1), store).grade("Q?", ANSWERS)
        CachedJudge(RubricJudge(FakeChatModel(model_id="other", rules=model.rules)), store).grade("Q?", ANSWERS)
        assert model.n_calls == 7  # the third judge used its own model
        cj.grade("Q?", ANSWERS)
        assert model.n_calls == 7 and cj.hits == 1


def test_isolated_mode_caches_per_answer(tmp_path):
    model = scripted_judge(keyword_rule)
    with RunStore(tmp_path / "s.sqlite") as store:
        cj = CachedJudge(RubricJudge(model, mode="isolated"), store)
        cj.grade("Q?", ANSWERS)
        assert model.n_calls == 2
        grades = cj.grade("Q?", {**ANSWERS, "new": "BAD"})  # only the new model's answer is judged
        assert model.n_calls == 3 and grades["new"].label == "bad"
        assert store.count("grade") == 3


def test_unparsed_grades_are_cached_too(tmp_path):
    model = FakeChatModel(default="not json")
    with RunStore(tmp_path / "s.sqlite") as store:
        cj = CachedJudge(RubricJudge(model), store)
        assert cj.grade("Q?", ANSWERS)["small"].label == "unparsed"
        assert cj.grade("Q?", ANSWERS)["small"].raw == "not json"
        assert model.n_calls == 2  # the first grade's call + its one retry; none for the second grade


def test_verifier_grades_are_cached(tmp_path):
    calls = []

    class Task:
        name = "t"

        def score(self, example, text):
            calls.append(text)
            return Score(1.0, True, text)

    ex = Example("e1", "Q?", "4", meta={"k": 1})
    with RunStore(tmp_path / "s.sqlite") as store:
        cj = CachedJudge(VerifierJudge(Task()), store)
        cj.grade(ex, {"a": "4", "b": "4"})
        cj.grade(ex, {"a": "4", "b": "4"})
        assert calls == ["4", "4"]
        cj.grade(Example("e1", "Q?", "4", meta={"k": 2}), {"a": "4"})  # other metadata → other key
        assert len(calls) == 3


def test_grade_fields_contents():
    j = RubricJudge(FakeChatModel(model_id="j"))
    ex = Example("e9", "prompt", "ref", system="sys")
    fields = grade_fields(j, ex, {"b": "2", "a": "1"})
    assert fields["judge"] == j.fingerprint() and fields["query"] == "sys\n\nprompt"
    assert fields["answers"] == [["a", "1"], ["b", "2"]] and fields["reference"] == "ref"
    assert fields["example"]["id"] == "e9"
    assert grade_fields(j, "prompt", {"a": "1"})["example"] is None


def test_stored_labels_read_back_the_latest_grade_per_example(tmp_path):
    from thrifty.judge.cache import stored_labels

    with RunStore(tmp_path / "s.sqlite") as store:
        tags = {"split": "val", "judge": "verifier"}
        store.put("grade", "1", {"m": {"label": "bad"}}, {**tags, "task": "a", "example": "e1"})
        store.put("grade", "2", {"m": {"label": "great"}}, {**tags, "task": "a", "example": "e1"})  # replaces
        store.put("grade", "3", {"m": {"label": "unparsed"}, "n": {"label": "ok"}}, {**tags, "task": "b",
                                                                                     "example": "e2"})
        store.put("grade", "4", {"m": {"label": "ok"}}, {**tags, "task": "a"})  # no example tag: left out
        store.put("grade", "5", {"m": {"label": "ok"}}, {"split": "test", "judge": "verifier", "task": "a",
                                                         "example": "e3"})
        assert stored_labels(store, "m", "val", "verifier") == {("a", "e1"): "great", ("b", "e2"): "unparsed"}
        assert stored_labels(store, "m", "val", "verifier", task="b") == {("b", "e2"): "unparsed"}
        assert stored_labels(store, "n", "val", "verifier") == {("b", "e2"): "ok"}
        assert stored_labels(store, "m", "val", "rubric") == {}
