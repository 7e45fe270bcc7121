"""VerifierJudge: the documented Score → label rule, its thresholds, and grading with a real file task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from thrifty.core.errors import ConfigError
from thrifty.judge import VerifierJudge, label_for_score
from thrifty.tasks.base import Example, Score

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"


@pytest.mark.parametrize(("score", "label"), [
    (Score(1.0, True, "42", "correct"), "great"),
    (Score(0.0, True, "42", "odd scorer"), "great"),  # correct wins over the value
    (Score(0.5, False, "41", "partial"), "ok"),
    (Score(0.75, False, "41", "partial"), "ok"),
    (Score(0.4999, False, "41", "partial"), "bad"),
    (Score(0.01, False, "7", "format credit"), "bad"),
    (Score(0.0, False, "7", "wrong"), "bad"),
    (Score(1.0, True, None, "no answer"), "bad"),  # no parsed answer → bad, whatever else
    (Score(0.9, False, None, "no answer"), "bad"),
])
def test_default_rule(score, label):
    assert label_for_score(score) == label


def test_thresholds_are_configurable():
    s = Score(0.3, False, "x")
    assert label_for_score(s) == "bad"
    assert label_for_score(s, ok_at=0.3) == "ok"
    assert label_for_score(Score(0.9, False, "x"), great_at=0.9) == "great"
    assert label_for_score(Score(0.89, False, "x"), ok_at=0.5, great_at=0.9) == "ok"
    for ok_at, great_at in [(-0.1, 1.0), (0.6, 0.5), (0.5, 1.1)]:
        with pytest.raises(ConfigError, match="thresholds"):
            VerifierJudge(ScriptedTask({}), ok_at=ok_at, great_at=great_at)


@dataclass
class ScriptedTask:
    """Scores answers from a table; records every call."""

    table: dict[str, Score]
    name: str = "scripted"
    calls: list[tuple[str, str]] = field(default_factory=list)

    def examples(self, split, n, seed=0):
        return []

    def score(self, example: Example, text: str) -> Score:
        self.calls.append((example.id, text))
        return self.table[text]


def test_grade_maps_each_answer_with_its_score():
    task = ScriptedTask({"right": Score(1.0, True, "4", "correct"), "half": Score(0.5, False, "3", "partial"),
                         "none": Score(0.0, False, None, "no answer found")})
    grades = VerifierJudge(task).grade(Example("e", "2+2?"), {"m1": "right", "m2": "half", "m3": "none"})
    assert {m: g.label for m, g in grades.items()} == {"m1": "great", "m2": "ok", "m3": "bad"}
    assert grades["m3"].rationale.startswith("no answer found") and grades["m2"].info["score"] == 0.5
    assert '"value":0.5' in grades["m2"].raw
    assert [c[0] for c in task.calls] == ["e", "e", "e"]


def test_text_query_becomes_an_example_with_the_reference():
    seen = []

    class Echo:
        name = "echo"

        def score(self, example, text):
            seen.append(example)
            return Score(1.0 if text == example.reference else 0.0, text == example.reference, text)

    grades = VerifierJudge(Echo()).grade("2+2?", {"a": "4", "b": "5"}, reference="4")
    assert grades["a"].label == "great" and grades["b"].label == "bad"
    assert seen[0].prompt == "2+2?" and seen[0].reference == "4" and seen[0].id == seen[1].id


def test_with_a_real_file_task():
    from thrifty.tasks.loader import load_task

    task = load_task(f"qa:{FIXTURES / 'qa.jsonl'}")
    ex = next(e for e in task.examples("test", 50) + task.examples("train", 50) + task.examples("val", 50)
              if "spider" in e.prompt)
    grades = VerifierJudge(task).grade(ex, {"good": "A spider has 8 legs.\nAnswer: 8", "bad": "Answer: 6",
                                            "silent": ""})
    assert {m: g.label for m, g in grades.items()} == {"good": "great", "bad": "bad", "silent": "bad"}


def test_verifier_rejects_a_non_task_and_has_a_stable_fingerprint():
    with pytest.raises(ConfigError, match="score"):
        VerifierJudge(object())
    j = VerifierJudge(ScriptedTask({}), ok_at=0.4)
    assert j.mode == "isolated"
    assert j.fingerprint() == {"judge": "verifier", "task": "scripted", "ok_at": 0.4, "great_at": 1.0, "version": 1}
