"""Task specs: parsing, every kind, option validation and one-line errors listing the valid forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from thrifty.core.errors import ConfigError, DataError
from thrifty.tasks.files import FileTask
from thrifty.tasks.loader import FORMS, TASK_KINDS, load_mix, load_task, parse_spec, parse_value

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("-2", -2), ("0.5", 0.5), ("1e-3", 0.001), ("true", True), ("False", False), ("abc", "abc")],
)
def test_parse_value(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_parse_spec():
    assert parse_spec("gym:basic_arithmetic?min_terms=2&max_terms=3") == (
        "gym",
        "basic_arithmetic",
        {"min_terms": 2, "max_terms": 3},
    )
    assert parse_spec("humaneval") == ("humaneval", "", {})
    assert parse_spec("qa:data/x.csv?question=q&answer=a") == (
        "qa",
        "data/x.csv",
        {"question": "q", "answer": "a"},
    )


def test_every_form_has_a_registered_kind():
    assert set(FORMS) == set(TASK_KINDS.names())


@pytest.mark.parametrize(
    ("spec", "kind", "n_items"),
    [
        (f"gsm8k:{FIX}/gsm8k.jsonl", "gsm8k", 12),
        (f"math:{FIX}/math.jsonl", "math", 8),
        (f"mmlu:{FIX}/mmlu", "mmlu", 9),
        (f"mmlu_pro:{FIX}/mmlu_pro.jsonl", "mmlu_pro", 6),
        (f"medqa:{FIX}/medqa.jsonl", "medqa", 4),
        (f"qa:{FIX}/qa.jsonl", "qa", 5),
        (f"qa:{FIX}/qa_custom.csv?question=prompt&answer=target", "qa", 3),
    ],
)
def test_file_kinds(spec, kind, n_items):
    task = load_task(spec)
    assert isinstance(task, FileTask) and task.dataset == kind and len(task.items) == n_items
    assert task.name.startswith(f"{kind}:")


def test_split_option_and_canonical_name():
    task = load_task(f"gsm8k:{FIX}/gsm8k.jsonl?split=test")
    assert task.counts()["test"] == 12 and task.name.endswith("?split=test")


def test_gym_and_humaneval_kinds():
    pytest.importorskip("reasoning_gym")
    t = load_task("gym:basic_arithmetic?min_terms=2&max_terms=3")
    assert t.name == "gym:basic_arithmetic?max_terms=3&min_terms=2" and t.config == {
        "min_terms": 2,
        "max_terms": 3,
    }
    h = load_task("humaneval?timeout_s=2.5")
    assert h.name == "humaneval" and h.timeout_s == 2.5


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "empty task spec"),
        ("foo:bar", "unknown task kind 'foo'.*gsm8k:PATH"),
        ("gsm8k", "missing PATH"),
        ("gym", "missing generator name"),
        (f"gsm8k:{FIX}/gsm8k.jsonl?bogus=1", "unknown option.*bogus.*valid: split"),
        (f"gsm8k:{FIX}/gsm8k.jsonl?split=dev", "unknown split 'dev'"),
        (f"qa:{FIX}/qa.jsonl?min_terms", "not key=value"),
        ("humaneval:extra", "takes no argument"),
        ("humaneval?timeout_s=soon", "must be a number"),
        ("humaneval?cores=2", "unknown option.*cores"),
    ],
)
def test_bad_specs_are_one_line_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_task(spec)
    assert "\n" not in str(info.value)


def test_bad_file_is_data_error():
    with pytest.raises(DataError, match="file not found"):
        load_task(f"mmlu:{FIX}/nope.csv")


def test_load_mix():
    tasks = load_mix([f"gsm8k:{FIX}/gsm8k.jsonl", f"medqa:{FIX}/medqa.jsonl"])
    assert [t.dataset for t in tasks] == ["gsm8k", "medqa"]
    with pytest.raises(ConfigError, match="listed twice"):
        load_mix([f"gsm8k:{FIX}/gsm8k.jsonl", f"gsm8k:{FIX}/gsm8k.jsonl"])
