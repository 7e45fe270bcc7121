"""Prompt rows for `dlm rl --hf-model` from whichever format the user keeps them in, chosen by the path:

- ``.jsonl`` — one object per line (:func:`thrifty.dlm.data.read_jsonl`);
- ``.csv`` — a header row naming the columns, then one prompt per row; every cell is text (a CSV has no types, so
  an ``answer`` column arrives as the string ``"3"``), and a prompt is a plain string (chat messages need JSONL,
  Parquet or a dataset folder);
- ``.parquet`` / ``.pq`` — one row per prompt, read with pyarrow; list-of-struct columns hold chat messages;
- a folder written by ``datasets``' ``save_to_disk`` — a ``Dataset``, or a ``DatasetDict`` with a ``train`` split
  (or a single split).

Every format keeps the JSONL contract: a ``prompt`` column (a string, or a list of ``{"role", "content"}``
messages) and any other columns, handed to the reward functions by name. A bad row is a one-line
:class:`~thrifty.core.errors.ConfigError` naming the file and its line (CSV: the physical line, the header being
line 1; Parquet and dataset folders: the row, counted from 1). pyarrow and datasets are imported only when such a
file is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError, DataError
from thrifty.dlm.data import check_prompt, read_jsonl

SUFFIXES = (".jsonl", ".csv", ".parquet", ".pq")


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    from thrifty.tasks.records import read_csv, read_parquet

    try:
        return read_csv(path) if path.suffix.lower() == ".csv" else read_parquet(path)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


def _dataset_rows(folder: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        from datasets import Dataset, DatasetDict, load_from_disk
    except ImportError:
        raise ConfigError(f"{folder}: reading a dataset folder needs the datasets package (pip install "
                          "'thrifty[train]')") from None
    try:
        data = load_from_disk(str(folder))
    except Exception as exc:  # datasets raises FileNotFoundError or its own types for foreign folders
        raise ConfigError(f"{folder}: not a folder written by datasets' save_to_disk ({type(exc).__name__})") from None
    if isinstance(data, DatasetDict):
        splits = list(data)
        if "train" not in data and len(splits) != 1:
            raise ConfigError(f"{folder}: a dataset with splits {', '.join(splits)} and no 'train' split; save the "
                              "split to use on its own")
        data = data["train" if "train" in data else splits[0]]
    if not isinstance(data, Dataset):
        raise ConfigError(f"{folder}: expected a datasets Dataset, got {type(data).__name__}")
    return [(i + 1, row) for i, row in enumerate(data.to_list())]


def read_prompts(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a prompt source (:data:`SUFFIXES`, or a ``save_to_disk`` folder), each checked like a JSONL row."""
    path = Path(path).expanduser()
    if path.is_dir():
        records, where = _dataset_rows(path), f"{path}: row "
    elif path.suffix.lower() == ".jsonl":
        return read_jsonl(path)
    elif path.suffix.lower() in SUFFIXES:
        if not path.is_file():
            raise ConfigError(f"{path}: no prompt file here")
        records, where = _records(path), f"{path}:"
    else:
        raise ConfigError(f"{path}: not a prompt source; give a .jsonl, .csv or .parquet file or a folder written "
                          "by datasets' save_to_disk")
    rows = [check_prompt(row, f"{where}{n}") for n, row in records]
    if not rows:
        raise ConfigError(f"{path}: no prompts in it")
    return rows


__all__ = ["SUFFIXES", "read_prompts"]
