"""Local-file benchmark loaders (GSM8K, MATH, MMLU, MMLU-Pro, MedQA, generic QA) as Tasks.

Users bring their own copies of public benchmarks; each loader documents the format it reads. Every loader
returns a :class:`FileTask` whose items are split deterministically by the hash of their content
(``split_of``), or all put in one split with ``only="test"`` (for a file that is a test set). Exact duplicate
items (same question and options) are kept once. A malformed file raises a one-line ``DataError`` naming the
file, the 1-based line and the problem.

Formats:

- **GSM8K** (JSONL): ``question``; ``answer`` = worked solution ending in a line ``#### <number>``.
  Reference: that number (thousands commas removed). Graded with math-verify.
- **MATH** (JSONL): ``problem``; ``solution`` containing ``\\boxed{…}`` (the last one is the reference);
  optional ``level`` and ``type`` (the category). Graded with math-verify.
- **MMLU** (CSV, no header): ``question, A, B, C, D, answer`` with answer a letter A–D; the subject is the
  file name without a ``_test``/``_dev``/``_val`` suffix. ``PATH`` may be a directory (all ``*.csv`` below it).
- **MMLU-Pro** (JSONL or Parquet): ``question``; ``options`` list (up to 10); ``answer`` letter; ``category``.
- **MedQA-style** (JSONL): ``question``; ``options`` object letter→text; ``answer_idx`` letter.
- **Generic QA** (JSONL, CSV with header, or Parquet): question and answer columns, names configurable
  (``question=``, ``answer=``); an answer may be a list of acceptable answers. Normalised exact match.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.rng import py_rng
from thrifty.core.types import content_hash
from thrifty.tasks.base import SPLITS, Example, Score, check_split, split_of
from thrifty.tasks.extract import CHOICE_LETTERS, last_boxed, normalize_number
from thrifty.tasks.graders import grade_choice, grade_exact, grade_math
from thrifty.tasks.records import data_error, field, read_csv, read_jsonl, read_records

MATH_SYSTEM = (
    "Solve the problem. Reason step by step, then end your reply with a final line of the form "
    '"Answer: <answer>" giving only the final answer (a number or a LaTeX expression).'
)
CHOICE_SYSTEM = (
    "Answer the multiple-choice question. Reason briefly, then end your reply with a final line of the form "
    '"Answer: <letter>".'
)
QA_SYSTEM = 'Answer the question. End your reply with a final line of the form "Answer: <answer>".'


class FileTask:
    """Items read from a local file; ``grading`` is "math", "choice" or "exact"."""

    def __init__(
        self, name: str, dataset: str, items: list[Example], grading: str, only: str | None = None
    ) -> None:
        if grading not in ("math", "choice", "exact"):
            raise ConfigError(f"unknown grading {grading!r}; choose math, choice or exact")
        if only is not None:
            check_split(only)
        self.name = name
        self.dataset = dataset
        self.grading = grading
        self.only = only
        unique: dict[str, Example] = {}
        for ex in items:
            unique.setdefault(ex.id, ex)
        self.items = list(unique.values())

    def split_of(self, example: Example) -> str:
        """The split an item belongs to (by content hash, or ``only``)."""
        return self.only or split_of(example.meta["key"])

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """Up to ``n`` items of ``split`` in a seeded order (a smaller ``n`` is a prefix of a larger one)."""
        check_split(split)
        if n < 0:
            raise ConfigError(f"n must be >= 0, got {n}")
        chosen = sorted((ex for ex in self.items if self.split_of(ex) == split), key=lambda ex: ex.id)
        py_rng(seed, self.dataset, split).shuffle(chosen)
        return chosen[:n]

    def counts(self) -> dict[str, int]:
        """Number of items per split."""
        out = dict.fromkeys(SPLITS, 0)
        for ex in self.items:
            out[self.split_of(ex)] += 1
        return out

    def score(self, example: Example, text: str) -> Score:
        """Grade ``text`` against the example's reference with this task's grading rule."""
        ref = example.reference or ""
        if self.grading == "math":
            return grade_math(ref, text)
        if self.grading == "choice":
            options = example.meta.get("options") or {}
            return grade_choice(ref, text, "".join(options) or CHOICE_LETTERS[:4], options)
        golds = example.meta.get("answers") or ref
        return grade_exact(golds, text)


def _example(
    dataset: str, source: str, key: Any, prompt: str, reference: str, system: str, **meta: Any
) -> Example:
    digest = content_hash(key)
    return Example(
        id=f"{dataset}:{source}#{digest[:16]}",
        prompt=prompt,
        reference=reference,
        system=system,
        meta={"task": dataset, "dataset": dataset, "key": digest, **meta},
    )


def choice_prompt(question: str, options: dict[str, str]) -> str:
    """The question followed by one "X. option" line per choice."""
    lines = [question.strip(), ""] + [f"{k}. {str(v).strip()}" for k, v in options.items()]
    return "\n".join(lines)


def load_gsm8k(path: str | Path, only: str | None = None) -> FileTask:
    """GSM8K JSONL: ``question`` and ``answer`` (solution ending ``#### <number>``)."""
    p = Path(path).expanduser()
    items = []
    for line, rec in read_jsonl(p):
        q = field(p, line, rec, "question")
        sol = field(p, line, rec, "answer")
        m = re.search(r"####\s*(.+?)\s*$", sol.strip())
        if not m:
            raise data_error(p, line, "field 'answer' has no final '#### <number>' line")
        ref = normalize_number(m.group(1)) or m.group(1).strip()
        items.append(_example("gsm8k", p.stem, [q], q, ref, MATH_SYSTEM, category="math", rationale=sol))
    return FileTask(f"gsm8k:{path}", "gsm8k", items, "math", only)


def load_math(path: str | Path, only: str | None = None) -> FileTask:
    """MATH JSONL: ``problem``, ``solution`` with ``\\boxed{…}``, optional ``level`` and ``type``."""
    p = Path(path).expanduser()
    items = []
    for line, rec in read_jsonl(p):
        q = field(p, line, rec, "problem")
        sol = field(p, line, rec, "solution")
        boxed = last_boxed(sol)
        if boxed is None or not boxed.strip():
            raise data_error(p, line, "field 'solution' has no \\boxed{...} answer")
        level, typ = str(rec.get("level") or ""), str(rec.get("type") or "")
        items.append(
            _example(
                "math",
                p.stem,
                [q],
                q,
                boxed.strip(),
                MATH_SYSTEM,
                category=typ or "math",
                level=level,
                rationale=sol,
            )
        )
    return FileTask(f"math:{path}", "math", items, "math", only)


def _check_letter(p: Path, line: int, answer: Any, letters: str) -> str:
    letter = str(answer).strip().upper()
    if len(letter) != 1 or letter not in letters:
        raise data_error(
            p, line, f"unknown answer letter {str(answer)!r} (expected one of {', '.join(letters)})"
        )
    return letter


def _mc_example(
    dataset: str, p: Path, line: int, q: str, options: dict[str, str], answer: str, category: str
) -> Example:
    if not q.strip():
        raise data_error(p, line, "empty question")
    letter = _check_letter(p, line, answer, "".join(options))
    return _example(
        dataset,
        p.stem,
        [q, options],
        choice_prompt(q, options),
        letter,
        CHOICE_SYSTEM,
        category=category,
        options=options,
    )


_MMLU_COLUMNS = ("question", "A", "B", "C", "D", "answer")


def load_mmlu(path: str | Path, only: str | None = None) -> FileTask:
    """MMLU CSV without header (question, A, B, C, D, answer); a directory loads every ``*.csv`` below it."""
    root = Path(path).expanduser()
    files = sorted(root.rglob("*.csv")) if root.is_dir() else [root]
    if not files:
        raise data_error(root, None, "no .csv files in this directory")
    items = []
    for p in files:
        if p.suffix.lower() != ".csv":
            raise data_error(p, None, "MMLU files are .csv (question,A,B,C,D,answer without header)")
        subject = re.sub(r"_(test|dev|val|validation|train)$", "", p.stem)
        for line, rec in read_csv(p, _MMLU_COLUMNS):
            if [rec[c].strip() for c in _MMLU_COLUMNS] == list(_MMLU_COLUMNS):
                continue  # a header row some exports add
            options = {k: rec[k] for k in "ABCD"}
            items.append(_mc_example("mmlu", p, line, rec["question"], options, rec["answer"], subject))
    return FileTask(f"mmlu:{path}", "mmlu", items, "choice", only)


def _options_list(p: Path, line: int, rec: dict[str, Any]) -> dict[str, str]:
    opts = rec.get("options")
    if opts is None:
        raise data_error(p, line, "missing field 'options'")
    if hasattr(opts, "tolist"):
        opts = opts.tolist()
    if not isinstance(opts, list) or not opts:
        raise data_error(p, line, "field 'options' must be a non-empty list")
    if len(opts) > len(CHOICE_LETTERS):
        raise data_error(p, line, f"{len(opts)} options; at most {len(CHOICE_LETTERS)} are supported")
    return {CHOICE_LETTERS[i]: str(o) for i, o in enumerate(opts)}


def load_mmlu_pro(path: str | Path, only: str | None = None) -> FileTask:
    """MMLU-Pro JSONL/Parquet: ``question``, ``options`` (list), ``answer`` (letter), ``category``."""
    p = Path(path).expanduser()
    items = []
    for line, rec in read_records(p):
        q = field(p, line, rec, "question")
        options = _options_list(p, line, rec)
        answer = field(p, line, rec, "answer")
        category = str(rec.get("category") or "other")
        items.append(_mc_example("mmlu_pro", p, line, q, options, answer, category))
    return FileTask(f"mmlu_pro:{path}", "mmlu_pro", items, "choice", only)


def load_medqa(path: str | Path, only: str | None = None) -> FileTask:
    """MedQA-style JSONL: ``question``, ``options`` (object letter→text), ``answer_idx`` (letter)."""
    p = Path(path).expanduser()
    items = []
    for line, rec in read_jsonl(p):
        q = field(p, line, rec, "question")
        opts = field(p, line, rec, "options", kind=dict)
        if not opts:
            raise data_error(p, line, "field 'options' is empty")
        bad = [k for k in opts if not (isinstance(k, str) and len(k) == 1 and k.upper() in CHOICE_LETTERS)]
        if bad:
            raise data_error(p, line, f"option keys must be letters A-J, got {bad[0]!r}")
        options = {k.upper(): str(v) for k, v in sorted(opts.items())}
        answer = field(p, line, rec, "answer_idx")
        items.append(
            _mc_example("medqa", p, line, q, options, answer, str(rec.get("meta_info") or "medicine"))
        )
    return FileTask(f"medqa:{path}", "medqa", items, "choice", only)


def load_qa(
    path: str | Path, question: str = "question", answer: str = "answer", only: str | None = None
) -> FileTask:
    """Generic question/answer JSONL, CSV (with header) or Parquet with configurable column names."""
    p = Path(path).expanduser()
    items = []
    for line, rec in read_records(p):
        q = field(p, line, rec, question)
        raw = rec.get(answer)
        if hasattr(raw, "tolist"):
            raw = raw.tolist()
        if isinstance(raw, list):
            answers = [str(a) for a in raw if str(a).strip()]
            if not answers:
                raise data_error(p, line, f"field {answer!r} is an empty list")
        else:
            answers = [field(p, line, rec, answer)]
        items.append(_example("qa", p.stem, [q], q, answers[0], QA_SYSTEM, category="qa", answers=answers))
    return FileTask(f"qa:{path}", "qa", items, "exact", only)
