"""RubricJudge with scripted fake judges: joint vs isolated calls, anonymised shuffled answers, retry, unparsed."""

from __future__ import annotations

import json

import pytest
from _judge_scripts import keyword_rule, read_fences, reply, scripted_judge

from thrifty.core.errors import ConfigError
from thrifty.judge import GENERIC, MISCHIEVOUS, UNPARSED, Grade, RubricJudge, rubric_hash
from thrifty.judge.rubric import REFERENCE_NOTE, Rubric, rubric_text
from thrifty.llm.base import GenParams
from thrifty.llm.fake import FakeChatModel
from thrifty.tasks.base import Example

ANSWERS = {"alpha-model": "GREAT work", "beta-model": "this is OK", "gamma-model": "BAD idea", "delta": "OK fine"}
EXPECTED = {"alpha-model": "great", "beta-model": "ok", "gamma-model": "bad", "delta": "ok"}


def test_joint_mode_grades_all_answers_in_one_call_and_maps_back():
    model = scripted_judge(keyword_rule)
    grades = RubricJudge(model, mode="joint").grade("Q?", ANSWERS)
    assert model.n_calls == 1
    assert list(grades) == list(ANSWERS)  # same keys, same order as given
    assert {m: g.label for m, g in grades.items()} == EXPECTED
    assert sorted(g.info["position"] for g in grades.values()) == [1, 2, 3, 4]
    assert all(isinstance(g, Grade) and g.info["of"] == 4 and g.info["attempts"] == 1 for g in grades.values())
    assert all(g.raw == model.calls[0].result.text for g in grades.values())


def test_isolated_mode_makes_one_call_per_answer():
    model = scripted_judge(keyword_rule)
    grades = RubricJudge(model, mode="isolated").grade("Q?", ANSWERS)
    assert model.n_calls == 4
    assert {m: g.label for m, g in grades.items()} == EXPECTED
    for call in model.calls:
        assert len(read_fences(call.messages[-1]["content"]).answers) == 1
        assert "There is one answer" in call.messages[0]["content"]


def test_model_names_never_reach_the_judge():
    model = scripted_judge(keyword_rule)
    RubricJudge(model, mode="joint").grade("Q?", ANSWERS)
    RubricJudge(model, mode="isolated").grade("Q?", ANSWERS)
    for call in model.calls:
        sent = json.dumps(call.messages)
        assert not any(name in sent for name in ANSWERS)


def test_order_is_a_seeded_shuffle():
    model = scripted_judge(keyword_rule)
    shown = {}
    for seed in range(8):
        j = RubricJudge(model, seed=seed)
        j.grade("Q?", ANSWERS)
        shown[seed] = read_fences(model.calls[-1].messages[-1]["content"]).answers
        assert sorted(shown[seed]) == sorted(ANSWERS.values())
    assert len({tuple(v) for v in shown.values()}) > 1  # different seeds, different orders
    again = RubricJudge(model, seed=3)
    again.grade("Q?", ANSWERS)
    assert model.calls[-1].messages == model.calls[3].messages  # same seed → byte-identical request
    assert again.order("Q?", ANSWERS) == RubricJudge(model, seed=3).order("Q?", dict(reversed(ANSWERS.items())))


def test_grades_follow_answers_not_positions_for_every_seed():
    model = scripted_judge(keyword_rule)
    for seed in range(5):
        grades = RubricJudge(model, seed=seed).grade("Q?", ANSWERS)
        assert {m: g.label for m, g in grades.items()} == EXPECTED


def _valid_after_correction(text: str) -> str:
    nonce = text.split('"nonce": "')[1][:16]
    n = int(text.split("1 to ")[1][0]) if "1 to " in text else 1
    return reply(nonce, ["ok"] * n)


def test_one_retry_with_a_corrective_message():
    model = FakeChatModel(default="The first answer is great and the second is bad.",
                          rules=[("Your reply could not be used", _valid_after_correction)])
    grades = RubricJudge(model).grade("Q?", {"a": "x", "b": "y"})
    assert model.n_calls == 2
    assert {g.label for g in grades.values()} == {"ok"}
    retry = model.calls[1].messages
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == "The first answer is great and the second is bad."
    assert "start with the JSON object" in retry[3]["content"]
    info = grades["a"].info
    assert info["attempts"] == 2 and len(info["errors"]) == 1 and info["first_raw"].startswith("The first")
    assert info["tokens_in"] == sum(c.result.tokens_in for c in model.calls)


def test_two_failures_give_unparsed_with_the_raw_text_kept():
    model = FakeChatModel(default='{"grades": [{"answer": 1, "label": "great"}]}')
    grades = RubricJudge(model).grade("Q?", {"a": "x", "b": "y"})
    assert model.n_calls == 2  # exactly one retry, then stop
    for g in grades.values():
        assert g.label == UNPARSED and not g.parsed and g.value is None
        assert g.raw == '{"grades": [{"answer": 1, "label": "great"}]}'
        assert "could not be parsed" in g.rationale and len(g.info["errors"]) == 2


def test_isolated_failure_only_affects_its_own_answer():
    def rule(text: str) -> str:
        f = read_fences(text)
        return "garbage" if "BROKEN" in f.answers[0] else reply(f.nonce, ["great"])

    model = FakeChatModel(default="garbage", rules=[(lambda t: t.startswith("Fence code: "), rule)])
    grades = RubricJudge(model, mode="isolated").grade("Q?", {"a": "fine", "b": "BROKEN"})
    assert grades["a"].label == "great" and grades["b"].label == UNPARSED
    assert model.n_calls == 3


def test_truncated_reply_counts_as_a_parse_failure():
    model = scripted_judge(keyword_rule)
    grades = RubricJudge(model, params=GenParams(max_tokens=5)).grade("Q?", {"a": "GREAT"})
    assert grades["a"].label == UNPARSED and model.n_calls == 2


def test_model_errors_propagate_and_are_not_grades():
    from thrifty.core.errors import TransientError

    with pytest.raises(TransientError):
        RubricJudge(FakeChatModel(fail_first=5)).grade("Q?", {"a": "x"})


def test_empty_answers_make_no_call():
    model = scripted_judge(keyword_rule)
    assert RubricJudge(model).grade("Q?", {}) == {} and model.n_calls == 0


def test_default_params_scale_with_the_number_of_answers():
    j = RubricJudge(FakeChatModel(), seed=7)
    assert j.gen_params(1).max_tokens < j.gen_params(4).max_tokens
    assert j.gen_params(2).temperature == 0.0 and j.gen_params(2).seed == 7
    fixed = GenParams(max_tokens=99)
    assert RubricJudge(FakeChatModel(), params=fixed).gen_params(4) is fixed


def test_reference_policies():
    model = scripted_judge(keyword_rule)
    ex = Example(id="e1", prompt="What is 2+2?", reference="4", system="Be brief.")
    RubricJudge(model, reference="ignore").grade(ex, {"a": "OK"}, reference="5")
    f = read_fences(model.calls[-1].messages[-1]["content"])
    assert f.reference is None and f.query == "Be brief.\n\nWhat is 2+2?"
    assert REFERENCE_NOTE not in model.calls[-1].messages[0]["content"]

    RubricJudge(model, reference="use").grade(ex, {"a": "OK"})
    assert read_fences(model.calls[-1].messages[-1]["content"]).reference == "4"
    RubricJudge(model, reference="require").grade(ex, {"a": "OK"}, reference="four")
    assert read_fences(model.calls[-1].messages[-1]["content"]).reference == "four"
    assert REFERENCE_NOTE in model.calls[-1].messages[0]["content"]
    RubricJudge(model, reference="use").grade("plain?", {"a": "OK"})
    assert read_fences(model.calls[-1].messages[-1]["content"]).reference is None
    with pytest.raises(ConfigError, match="reference-guided"):
        RubricJudge(model, reference="require").grade("plain?", {"a": "OK"})


def test_mischievous_rubric_is_inverted_and_reaches_the_prompt():
    model = scripted_judge(keyword_rule)
    RubricJudge(model, rubric="mischievous").grade("Q?", {"a": "OK"})
    system = model.calls[-1].messages[0]["content"]
    assert 'Rubric "mischievous"' in system and "inverted" in system
    labels = dict(MISCHIEVOUS.labels)
    assert "excellent" in labels["bad"] and "wrong" in labels["great"]
    assert [c for c, _ in MISCHIEVOUS.criteria] == [c for c, _ in GENERIC.criteria]


def test_generic_rubric_names_the_six_criteria():
    text = rubric_text(GENERIC)
    for name in ("Accuracy", "Relevance", "Completeness", "Clarity", "Instruction following", "Formatting"):
        assert f"- {name}:" in text
    assert "every criterion is met" in text and "most criteria are met and there is no serious flaw" in text


def test_rubric_hash_tracks_the_exact_text():
    h = rubric_hash(GENERIC)
    assert h == rubric_hash(GENERIC) and len(h) == 64
    assert len({h, rubric_hash(MISCHIEVOUS), rubric_hash(GENERIC, with_reference=True)}) == 3
    tweaked = Rubric(GENERIC.name, GENERIC.instructions, (*GENERIC.criteria[:-1], ("Formatting", "tidy")),
                     GENERIC.labels)
    assert rubric_hash(tweaked) != h


def test_rubric_validation_and_bad_settings():
    with pytest.raises(ConfigError, match="labels"):
        Rubric("r", "x", (("A", "a"),), (("great", "g"), ("ok", "o")))
    with pytest.raises(ConfigError, match="no criteria"):
        Rubric("r", "x", (), GENERIC.labels)
    with pytest.raises(ConfigError, match="unknown rubric"):
        RubricJudge(FakeChatModel(), rubric="nice")
    with pytest.raises(ConfigError, match="mode"):
        RubricJudge(FakeChatModel(), mode="pairwise")
    with pytest.raises(ConfigError, match="reference policy"):
        RubricJudge(FakeChatModel(), reference="maybe")
    with pytest.raises(ConfigError, match="must be a string"):
        RubricJudge(FakeChatModel()).grade("Q?", {"a": None})


def test_fingerprint_changes_with_what_changes_grades():
    base = RubricJudge(FakeChatModel(model_id="judge-a")).fingerprint()
    assert base["model"] == "judge-a" and base["mode"] == "joint" and base["rubric_hash"] == rubric_hash(GENERIC)
    variants = [RubricJudge(FakeChatModel(model_id="judge-b")), RubricJudge(FakeChatModel(model_id="judge-a"),
                mode="isolated"), RubricJudge(FakeChatModel(model_id="judge-a"), seed=1),
                RubricJudge(FakeChatModel(model_id="judge-a"), rubric=MISCHIEVOUS),
                RubricJudge(FakeChatModel(model_id="judge-a"), params=GenParams(max_tokens=9))]
    assert all(v.fingerprint() != base for v in variants)
