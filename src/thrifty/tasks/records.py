"""Reading local benchmark files (JSONL, CSV, Parquet) into (line, record) pairs with one-line DataErrors.

Line numbers are 1-based: the physical line for JSONL, the item number for a .json array, the CSV reader's line for CSV (the header is line 1
when there is one), and the row number for Parquet (its "line" is row index + 1).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from thrifty.core.errors import DataError

Record = tuple[int, dict[str, Any]]


def data_error(path: Path | str, line: int | None, problem: str) -> DataError:
    """A DataError whose one-line message names the file, the line (when known) and the problem."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return DataError(f"{where}: {' '.join(problem.split())}")


def check_file(path: Path | str) -> Path:
    """``path`` as a Path, or a DataError when it is missing or not a regular file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise data_error(p, None, "file not found")
    if not p.is_file():
        raise data_error(p, None, "not a regular file")
    return p


def text_file(path: Path | str) -> Path:
    """``check_file``, then the whole file checked to be UTF-8: invalid bytes raise a DataError naming the line."""
    p = check_file(path)
    data = p.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise data_error(p, line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                                  "save the file as UTF-8") from None
    return p


def read_jsonl(path: Path | str) -> list[Record]:
    """Records of a JSON Lines file (blank lines skipped); bad JSON or a non-object line raises DataError."""
    p = text_file(path)
    out: list[Record] = []
    with p.open("r", encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                raise data_error(p, lineno, f"bad JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise data_error(p, lineno, f"expected a JSON object, got {type(obj).__name__}")
            out.append((lineno, obj))
    if not out:
        raise data_error(p, None, "empty file (no records)")
    return out


def _starts_with_bracket(p: Path) -> bool:
    with text_file(p).open("r", encoding="utf-8-sig") as fh:
        head = fh.read(4096).lstrip()
    return head.startswith("[")


def read_json_array(path: Path | str) -> list[Record]:
    """Records of a .json file holding one array of objects; item k is reported as line k (1-based)."""
    p = text_file(path)
    try:
        items = json.loads(p.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise data_error(p, exc.lineno, f"bad JSON ({exc.msg} at column {exc.colno})") from None
    out: list[Record] = []
    for i, obj in enumerate(items, start=1):
        if not isinstance(obj, dict):
            raise data_error(p, i, f"item {i}: expected a JSON object, got {type(obj).__name__}")
        out.append((i, obj))
    if not out:
        raise data_error(p, None, "empty file (no records)")
    return out


def _csv_rows(p: Path) -> Iterator[tuple[int, list[str]]]:
    with p.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    yield reader.line_num, row
        except csv.Error as exc:
            raise data_error(p, reader.line_num, f"bad CSV ({exc})") from None


def read_csv(path: Path | str, columns: Sequence[str] | None = None) -> list[Record]:
    """Records of a CSV file: with ``columns`` the file has no header and rows map onto those names;
    without, the first row is the header. A row with the wrong number of cells raises DataError."""
    p = text_file(path)
    rows = iter(_csv_rows(p))
    if columns is None:
        first = next(rows, None)
        if first is None:
            raise data_error(p, None, "empty file (no header)")
        names = [c.strip() for c in first[1]]
    else:
        names = list(columns)
    out: list[Record] = []
    for lineno, row in rows:
        if len(row) != len(names):
            raise data_error(p, lineno, f"expected {len(names)} columns ({', '.join(names)}), got {len(row)}")
        out.append((lineno, dict(zip(names, row, strict=True))))
    if not out:
        raise data_error(p, None, "empty file (no records)")
    return out


def read_parquet(path: Path | str) -> list[Record]:
    """Records of a Parquet file (pyarrow imported here); row k is reported as line k + 1."""
    p = check_file(path)
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DataError(f"{p}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
    try:
        rows = pq.read_table(p).to_pylist()
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise data_error(p, None, f"unreadable Parquet ({type(exc).__name__}: {exc})") from None
    if not rows:
        raise data_error(p, None, "empty file (no records)")
    return [(i + 1, row) for i, row in enumerate(rows)]


def read_records(path: Path | str, csv_columns: Sequence[str] | None = None) -> list[Record]:
    """Dispatch on the suffix: .jsonl/.json/.ndjson, .csv, .parquet/.pq; anything else raises DataError."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix == ".json" and _starts_with_bracket(p):
        return read_json_array(p)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return read_jsonl(p)
    if suffix == ".csv":
        return read_csv(p, csv_columns)
    if suffix in (".parquet", ".pq"):
        return read_parquet(p)
    check_file(p)
    raise data_error(p, None, f"unsupported file type {suffix or '(none)'!r}; use .jsonl, .csv or .parquet")


def field(path: Path | str, line: int, record: dict[str, Any], name: str, kind: type | None = str) -> Any:
    """``record[name]``, checked: a missing/empty field or a value of the wrong type raises DataError."""
    if name not in record or record[name] is None:
        raise data_error(path, line, f"missing field {name!r}")
    value = record[name]
    if kind is str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise data_error(path, line, f"field {name!r} must be text, got {type(value).__name__}")
        value = str(value)
        if not value.strip():
            raise data_error(path, line, f"field {name!r} is empty")
    elif kind is not None and not isinstance(value, kind):
        raise data_error(path, line, f"field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    return value
