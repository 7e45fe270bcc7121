"""Local-file loaders: each format on hand-written fixtures, malformed variants, splits and grading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from thrifty.core.errors import ConfigError, DataError
from thrifty.tasks.base import SPLITS, Task
from thrifty.tasks.files import (
    FileTask,
    load_gsm8k,
    load_math,
    load_medqa,
    load_mmlu,
    load_mmlu_pro,
    load_qa,
)

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"


def _all(task: FileTask):
    return {s: task.examples(s, 1000, seed=0) for s in SPLITS}


def test_gsm8k_reference_is_the_final_number():
    task = load_gsm8k(FIX / "gsm8k.jsonl")
    assert isinstance(task, Task) and len(task.items) == 12
    refs = {e.prompt.split(" ")[0]: e.reference for e in task.items}
    assert refs["Mira"] == "25" and refs["Priya"] == "1400"  # "#### 1,400" → 1400
    ex = next(e for e in task.items if e.reference == "25")
    assert "#### 25" in ex.meta["rationale"] and ex.meta["category"] == "math"
    assert task.score(ex, "She keeps 36 - 11 = 25 rolls.\nAnswer: 25").correct
    assert task.score(ex, "#### 25.0").correct
    assert not task.score(ex, "Answer: 26").correct
    assert task.score(ex, "no idea").reason == "no answer found"


def test_math_reference_and_math_verify_equivalence():
    task = load_math(FIX / "math.jsonl")
    by_ref = {e.reference: e for e in task.items}
    assert set(by_ref) >= {"\\frac{3}{4}", "4", "2\\sqrt{3}", "x^2 + 2x + 1", "\\frac{5}{6}"}
    assert by_ref["4"].meta["category"] == "Algebra" and by_ref["4"].meta["level"] == "Level 1"
    pytest.importorskip("math_verify")
    assert task.score(by_ref["\\frac{3}{4}"], "So it is 0.75.\nAnswer: 0.75").correct
    assert task.score(by_ref["\\frac{3}{4}"], "\\boxed{\\dfrac{3}{4}}").correct
    assert task.score(by_ref["x^2 + 2x + 1"], "Answer: $1 + 2x + x^2$").correct
    assert task.score(by_ref["2\\sqrt{3}"], "Answer: \\sqrt{12}").correct
    assert not task.score(by_ref["\\frac{5}{6}"], "Answer: 5/7").correct


def test_mmlu_directory_subjects_and_choice_grading():
    task = load_mmlu(FIX / "mmlu")
    assert len(task.items) == 9
    subjects = {e.meta["category"] for e in task.items}
    assert subjects == {"astronomy", "cooking"}
    ex = next(e for e in task.items if e.prompt.startswith("Which planet in our"))
    assert ex.reference == "B" and ex.prompt.endswith("D. Mars") and "B. Mercury" in ex.prompt
    assert task.score(ex, "Mercury orbits closest.\nAnswer: B").correct
    assert task.score(ex, "Answer: Mercury").correct  # option text maps to its letter
    assert not task.score(ex, "Answer: (A)").correct
    single = load_mmlu(FIX / "mmlu" / "cooking_dev.csv")
    assert len(single.items) == 4 and single.items[0].meta["category"] == "cooking"


def test_mmlu_header_row_is_skipped(tmp_path):
    p = tmp_path / "history_test.csv"
    p.write_text("question,A,B,C,D,answer\nWhich came first?,Bronze Age,Iron Age,Space Age,Jet Age,A\n")
    task = load_mmlu(p)
    assert len(task.items) == 1 and task.items[0].meta["category"] == "history"


def test_mmlu_pro_jsonl_and_parquet_agree(tmp_path):
    task = load_mmlu_pro(FIX / "mmlu_pro.jsonl")
    ex = next(e for e in task.items if "15%" in e.prompt)
    assert ex.reference == "D" and "J. 300" in ex.prompt and ex.meta["category"] == "math"
    assert task.score(ex, "15% of 200 is 30.\nAnswer: D").correct
    assert task.score(ex, "<answer>d</answer>").correct
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (FIX / "mmlu_pro.jsonl").read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "mmlu_pro.parquet")
    from_parquet = load_mmlu_pro(tmp_path / "mmlu_pro.parquet")
    assert [e.id for e in from_parquet.items] == [e.id for e in task.items]
    assert _all(from_parquet) == _all(task)


def test_medqa_options_dict():
    task = load_medqa(FIX / "medqa.jsonl")
    ex = next(e for e in task.items if "vitamin" in e.prompt)
    assert ex.reference == "D" and "E. Vitamin K" in ex.prompt
    assert (
        task.score(
            ex,
            "Answer: E",
        ).correct
        is False
    )
    assert task.score(ex, "The answer is D.").correct


def test_qa_jsonl_list_answers_and_csv_custom_columns():
    task = load_qa(FIX / "qa.jsonl")
    ex = next(e for e in task.items if "spider" in e.prompt)
    assert task.score(ex, "Spiders have eight... no wait.\nAnswer: 8").correct
    green = next(e for e in task.items if "mixing" in e.prompt)
    assert task.score(green, "Answer: **Green.**").correct
    capital = next(e for e in task.items if "Veloria" in e.prompt)
    assert task.score(capital, "port amsel").correct  # last line used when there is no answer line
    assert not task.score(capital, "Answer: Amsel").correct
    csv_task = load_qa(FIX / "qa_custom.csv", question="prompt", answer="target")
    tri = next(e for e in csv_task.items if "three sides" in e.prompt)
    assert csv_task.score(tri, "Answer: Triangle").correct  # article and case normalised
    zero = next(e for e in csv_task.items if "freezing" in e.prompt)
    assert csv_task.score(zero, "Answer: 0").correct and not csv_task.score(zero, "Answer: 10").correct


@pytest.mark.parametrize(
    ("loader", "name", "line", "problem"),
    [
        (load_gsm8k, "gsm8k_bad_json.jsonl", 2, "bad JSON"),
        (load_gsm8k, "gsm8k_missing_field.jsonl", 3, "missing field 'answer'"),
        (load_gsm8k, "gsm8k_no_hash.jsonl", 1, "no final '#### <number>'"),
        (load_gsm8k, "gsm8k_not_object.jsonl", 1, "expected a JSON object"),
        (load_gsm8k, "empty.jsonl", None, "empty file"),
        (load_gsm8k, "blank_lines.jsonl", None, "empty file"),
        (load_gsm8k, "does_not_exist.jsonl", None, "file not found"),
        (load_math, "math_no_boxed.jsonl", 2, "no \\boxed"),
        (load_mmlu, "mmlu_bad_letter.csv", 2, "unknown answer letter 'E'"),
        (load_mmlu, "mmlu_wrong_columns.csv", 2, "expected 6 columns"),
        (
            load_mmlu_pro,
            "mmlu_pro_bad_letter.jsonl",
            1,
            "unknown answer letter 'D' (expected one of A, B, C)",
        ),
        (load_mmlu_pro, "mmlu_pro_bad_options.jsonl", 1, "'options' must be a non-empty list"),
        (load_medqa, "medqa_bad_idx.jsonl", 1, "unknown answer letter 'C'"),
        (load_qa, "unsupported.txt", None, "unsupported file type"),
    ],
)
def test_malformed_files_give_one_line_data_error(loader, name, line, problem):
    with pytest.raises(DataError) as info:
        loader(FIX / name)
    msg = str(info.value)
    assert "\n" not in msg and problem in msg
    where = f"{FIX / name}:{line}:" if line else f"{FIX / name}:"
    assert msg.startswith(where)


def test_qa_missing_custom_column_names_line():
    with pytest.raises(DataError, match=r"qa_missing_col\.csv:2: missing field 'target'"):
        load_qa(FIX / "qa_missing_col.csv", question="prompt", answer="target")


def test_json_array_file(tmp_path):
    p = tmp_path / "qa.json"
    p.write_text(json.dumps([{"question": "2+2?", "answer": "4"}, {"question": "3+3?"}]))
    with pytest.raises(DataError, match=r"qa\.json:2: missing field 'answer'"):
        load_qa(p)


@pytest.mark.parametrize(
    "loader,name", [(load_gsm8k, "gsm8k.jsonl"), (load_mmlu, "mmlu"), (load_qa, "qa.jsonl")]
)
def test_splits_partition_items_deterministically(loader, name):
    task = loader(FIX / name)
    parts = _all(task)
    ids = [e.id for s in SPLITS for e in parts[s]]
    assert len(ids) == len(set(ids)) == len(task.items)  # disjoint and complete
    again = loader(FIX / name)
    for s in SPLITS:
        assert again.examples(s, 3, seed=7) == task.examples(s, 3, seed=7)
        assert task.examples(s, 2, seed=7) == task.examples(s, 3, seed=7)[:2]


def test_split_follows_content_not_position(tmp_path):
    lines = (FIX / "gsm8k.jsonl").read_text().splitlines()
    shuffled = tmp_path / "gsm8k.jsonl"
    shuffled.write_text("\n".join(reversed([ln for ln in lines if ln.strip()])) + "\n")
    a, b = load_gsm8k(FIX / "gsm8k.jsonl"), load_gsm8k(shuffled)
    for s in SPLITS:
        assert {e.id for e in a.examples(s, 100)} == {e.id for e in b.examples(s, 100)}


def test_only_puts_everything_in_one_split_and_duplicates_are_dropped(tmp_path):
    task = load_gsm8k(FIX / "gsm8k.jsonl", only="test")
    assert task.counts() == {"train": 0, "val": 0, "test": 12}
    doubled = tmp_path / "twice.jsonl"
    shutil.copy(FIX / "gsm8k.jsonl", doubled)
    with doubled.open("a") as fh:
        fh.write((FIX / "gsm8k.jsonl").read_text())
    assert len(load_gsm8k(doubled).items) == 12
    with pytest.raises(ConfigError):
        load_gsm8k(FIX / "gsm8k.jsonl", only="holdout")


@pytest.mark.parametrize("name, body, line", [("bad.jsonl", b'{"q": "a"}\n{"q": "caf\xe9"}\n', 2),
                                              ("bad.csv", b"question,answer\nok,1\nna\xefve,2\n", 3),
                                              ("bad.json", b'[{"q": "a"},\n {"q": "\xff"}]', 2)])
def test_invalid_utf8_names_the_file_and_line(tmp_path, name, body, line):
    from thrifty.tasks.records import read_records

    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(DataError, match=rf"{name}:{line}: not valid UTF-8"):
        read_records(path)
