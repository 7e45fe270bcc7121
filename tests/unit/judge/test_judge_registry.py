"""Labels and their values, the Grade record, and the JUDGES registry / make_judge."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.judge import (
    GRADE_LABELS,
    JUDGES,
    LABEL_INDEX,
    LABEL_VALUE,
    LABELS,
    UNPARSED,
    Grade,
    Judge,
    RubricJudge,
    VerifierJudge,
    label_value,
    make_judge,
)
from thrifty.judge.base import as_example, query_text
from thrifty.llm.fake import FakeChatModel
from thrifty.tasks.base import Example, Score


def test_labels_and_values():
    assert LABELS == ("great", "ok", "bad")
    assert GRADE_LABELS == ("great", "ok", "bad", "unparsed")
    assert LABEL_VALUE == {"bad": 0.0, "ok": 0.5, "great": 1.0}
    assert LABEL_INDEX == {"bad": 0, "ok": 1, "great": 2}
    assert label_value("ok") == 0.5 and label_value(UNPARSED) is None
    with pytest.raises(ConfigError, match="unknown grade label"):
        label_value("good")


def test_grade_record():
    g = Grade("great", "fine", "{}", {"position": 1})
    assert g.parsed and g.value == 1.0
    assert Grade.from_dict({"label": "bad", "rationale": "r", "raw": "x", "info": {"a": 1}}) == \
        Grade("bad", "r", "x", {"a": 1})
    with pytest.raises(ConfigError):
        Grade("excellent")


def test_query_helpers():
    ex = Example("id1", "p", "r", system="s")
    assert query_text(ex) == "s\n\np" and query_text("q") == "q"
    assert as_example(ex) is ex and as_example(ex, "r2").reference == "r2"
    made = as_example("q", "ref")
    assert made.prompt == "q" and made.reference == "ref" and made.id == as_example("q").id
    with pytest.raises(ConfigError):
        query_text(3)


class _Task:
    name = "t"

    def score(self, example, text):
        return Score(1.0, True, text)


def test_registry_names_and_builders():
    assert JUDGES.names() == ["mischievous", "reference", "rubric", "rubric_isolated", "verifier"]
    model = FakeChatModel(model_id="j")
    built = {name: make_judge(name, model=model, task=_Task()) for name in JUDGES.names()}
    assert all(isinstance(j, Judge) for j in built.values())
    assert isinstance(built["verifier"], VerifierJudge)
    for name in ("rubric", "rubric_isolated", "reference", "mischievous"):
        assert isinstance(built[name], RubricJudge) and built[name].name == name
    assert (built["rubric"].mode, built["rubric_isolated"].mode) == ("joint", "isolated")
    assert built["reference"].reference == "require" and built["rubric"].reference == "ignore"
    assert built["mischievous"].rubric.name == "mischievous"
    assert make_judge("rubric", model=model, seed=4, mode="isolated").fingerprint()["seed"] == 4
    assert make_judge("verifier", task=_Task(), ok_at=0.2).ok_at == 0.2


def test_make_judge_loads_a_model_spec():
    j = make_judge("rubric", model="fake")
    assert isinstance(j.model, FakeChatModel)


def test_make_judge_errors_are_one_line():
    for call, match in [
        (lambda: make_judge("nope", model=FakeChatModel()), "unknown judge 'nope'"),
        (lambda: make_judge("rubric"), "needs a judge model"),
        (lambda: make_judge("verifier"), "needs a task"),
        (lambda: make_judge("rubric", model=FakeChatModel(), temperature=0.3), "bad options"),
        (lambda: make_judge("verifier", task=_Task(), model_id="x"), "bad options"),
    ]:
        with pytest.raises(ConfigError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
