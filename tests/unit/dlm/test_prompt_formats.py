"""Prompt rows for `dlm rl --hf-model` from CSV, Parquet and a `datasets` save_to_disk folder give the same rows as
the JSONL file (CSV cells as text); bad rows are one-line errors naming the file and the line or row."""

from __future__ import annotations

import csv
import json

import pytest

from thrifty.core.errors import ConfigError
from thrifty.dlm.prompt_files import read_prompts

ROWS = [{"prompt": "What is 2 + 3?", "answer": "5", "source": "toy"},
        {"prompt": "Name the capital of France.", "answer": "Paris", "source": "geo"},
        {"prompt": "a, b and \"c\"", "answer": "c", "source": "quote"}]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _csv(path, rows):
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_csv_parquet_and_dataset_folders_give_the_jsonl_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    expected = read_prompts(_jsonl(tmp_path / "p.jsonl", ROWS))
    assert expected == ROWS
    assert read_prompts(_csv(tmp_path / "p.csv", ROWS)) == expected
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "p.parquet")
    assert read_prompts(tmp_path / "p.parquet") == expected
    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    assert read_prompts(tmp_path / "ds") == expected
    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(
        str(tmp_path / "dd"))
    assert read_prompts(tmp_path / "dd") == expected  # the train split


def test_chat_messages_survive_parquet_and_dataset_folders(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    rows = [{"prompt": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}],
             "answer": "4"},
            {"prompt": [{"role": "user", "content": "3+3?"}], "answer": "6"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "chat.parquet")
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "chat"))
    assert read_prompts(tmp_path / "chat.parquet") == rows
    assert read_prompts(tmp_path / "chat") == rows


def test_bad_prompt_sources_are_one_line_errors_naming_the_place(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    _csv(tmp_path / "q.csv", [{"question": "x", "answer": "1"}])
    with pytest.raises(ConfigError, match=r"q\.csv:2: no \"prompt\" column \(the row has question, answer\)"):
        read_prompts(tmp_path / "q.csv")
    (tmp_path / "ragged.csv").write_text("prompt,answer\nhello,1\nworld\n")
    with pytest.raises(ConfigError, match=r"ragged\.csv:3: expected 2 columns"):
        read_prompts(tmp_path / "ragged.csv")
    pq.write_table(pa.Table.from_pylist([{"prompt": "ok"}, {"prompt": None}]), tmp_path / "n.parquet")
    with pytest.raises(ConfigError, match=r"n\.parquet:2: \"prompt\" must be a string"):
        read_prompts(tmp_path / "n.parquet")
    Dataset.from_list([{"prompt": "ok"}, {"prompt": "ok"}, {"prompt": ""}]).save_to_disk(str(tmp_path / "ok"))
    assert len(read_prompts(tmp_path / "ok")) == 3  # an empty prompt is still a prompt
    Dataset.from_list([{"text": "a"}]).save_to_disk(str(tmp_path / "bad_ds"))
    with pytest.raises(ConfigError, match=r"bad_ds: row 1: no \"prompt\" column"):
        read_prompts(tmp_path / "bad_ds")
    DatasetDict({"a": Dataset.from_list(ROWS), "b": Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "two"))
    with pytest.raises(ConfigError, match="splits a, b and no 'train' split"):
        read_prompts(tmp_path / "two")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="not a folder written by datasets"):
        read_prompts(tmp_path / "plain")
    with pytest.raises(ConfigError, match="not a prompt source"):
        read_prompts(tmp_path / "p.txt")
    with pytest.raises(ConfigError, match="no prompt file here"):
        read_prompts(tmp_path / "absent.parquet")
    (tmp_path / "empty.csv").write_text("prompt,answer\n")
    with pytest.raises(ConfigError, match="empty file"):
        read_prompts(tmp_path / "empty.csv")
