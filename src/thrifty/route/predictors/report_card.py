"""Report cards: a model's judged train-split record per dataset and category, rendered as in-context text.

A card is built only from graded records of the TRAIN split in a run store (as written by collection), for one
model named by its free-form spec. Per dataset (task spec) and, where known, per category it holds n, the count
of each grade, the mode grade (ties go to the worse grade) and the verifier accuracy when score records exist.
``version`` is a short sha256 of the card's canonical content, so any change in content gives a new version.

Rendered template (one line per dataset, one indented line per category; percentages of graded answers)::

    Your report card (strict judge, 20 graded past answers):
    Overall: great 40% | ok 10% | bad 50%; most often bad; correct 45%.
    gym:chain_sum (n=10): great 30% | ok 0% | bad 70%; most often bad; correct 30%.
      - category add (n=5): great 40% | ok 0% | bad 60%; most often bad; correct 40%.
    Summary: <optional prose>

With a task tag only that dataset's lines are shown (plus the overall line); about 60-150 tokens for a few tasks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.types import canonical_json, content_hash
from thrifty.judge.base import BAD, GRADE_LABELS, GREAT, OK, UNPARSED
from thrifty.route.predictors.base import DEFAULT_PREFIX, RUBRIC_TEXT, PromptPredictor

CARD_VERSION = 1  # bump when the card's content layout changes


@dataclass(frozen=True)
class CardStats:
    """Grades of one cell: ``counts`` per label (unparsed included), and correct/scored verifier counts."""

    counts: dict[str, int] = field(default_factory=dict)
    n_correct: int = 0
    n_scored: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.counts) - set(GRADE_LABELS)
        if unknown:
            raise ConfigError(f"unknown grade labels in report card counts: {sorted(unknown)}")
        canonical = {lab: int(self.counts[lab]) for lab in GRADE_LABELS if self.counts.get(lab)}
        object.__setattr__(self, "counts", canonical)  # label order, zeros dropped: equal content, equal cards

    @property
    def n(self) -> int:
        """Graded answers in this cell (unparsed grades included)."""
        return sum(self.counts.values())

    @property
    def distribution(self) -> dict[str, float]:
        """Share of each of great/ok/bad/unparsed among the graded answers (all 0 when n is 0)."""
        n = self.n
        return {lab: (self.counts.get(lab, 0) / n if n else 0.0) for lab in GRADE_LABELS}

    @property
    def mode(self) -> str | None:
        """The most frequent parsed grade; ties go to the worse grade; None without parsed grades."""
        parsed = {lab: self.counts.get(lab, 0) for lab in (BAD, OK, GREAT)}
        if not any(parsed.values()):
            return None
        return max((BAD, OK, GREAT), key=lambda lab: (parsed[lab], -(BAD, OK, GREAT).index(lab)))

    @property
    def accuracy(self) -> float | None:
        """Verifier correct rate, or None when no score was found."""
        return self.n_correct / self.n_scored if self.n_scored else None

    def to_dict(self) -> dict[str, Any]:
        return {"counts": {lab: int(self.counts.get(lab, 0)) for lab in GRADE_LABELS},
                "n_correct": self.n_correct, "n_scored": self.n_scored}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> CardStats:
        if not isinstance(data, dict) or not isinstance(data.get("counts"), dict):
            raise DataError(f"{where}: expected an object with 'counts'")
        counts = data["counts"]
        if set(counts) - set(GRADE_LABELS):
            raise DataError(f"{where}: unknown grade labels {sorted(set(counts) - set(GRADE_LABELS))}")
        vals = [counts[k] for k in counts] + [data.get("n_correct", 0), data.get("n_scored", 0)]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in vals):
            raise DataError(f"{where}: counts must be non-negative integers")
        if data.get("n_correct", 0) > data.get("n_scored", 0):
            raise DataError(f"{where}: n_correct exceeds n_scored")
        return cls({k: int(v) for k, v in counts.items()}, int(data.get("n_correct", 0)),
                   int(data.get("n_scored", 0)))

    def line(self) -> str:
        d = self.distribution
        text = f"{GREAT} {d[GREAT]:.0%} | {OK} {d[OK]:.0%} | {BAD} {d[BAD]:.0%}"
        if self.counts.get(UNPARSED):
            text += f" | unreadable {d[UNPARSED]:.0%}"
        if self.mode is not None:
            text += f"; most often {self.mode}"
        if self.accuracy is not None:
            text += f"; correct {self.accuracy:.0%}"
        return text + "."


@dataclass(frozen=True)
class ReportCard:
    """One model's card: stats per dataset and per (dataset, category), the judge and split it came from, and
    optional LLM-written ``prose``."""

    model: str
    tasks: dict[str, CardStats]
    categories: dict[str, dict[str, CardStats]] = field(default_factory=dict)
    judge: str = ""
    split: str = "train"
    prose: str = ""

    def overall(self) -> CardStats:
        """All datasets pooled."""
        counts: Counter[str] = Counter()
        for s in self.tasks.values():
            counts.update(s.counts)
        return CardStats(dict(counts), sum(s.n_correct for s in self.tasks.values()),
                         sum(s.n_scored for s in self.tasks.values()))

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-able content (what ``version`` hashes)."""
        return {
            "card_version": CARD_VERSION, "model": self.model, "judge": self.judge, "split": self.split,
            "prose": self.prose,
            "tasks": {t: s.to_dict() for t, s in sorted(self.tasks.items())},
            "categories": {t: {c: s.to_dict() for c, s in sorted(cats.items())}
                           for t, cats in sorted(self.categories.items())},
        }

    @property
    def version(self) -> str:
        """Short sha256 of the canonical content: changes iff the content changes."""
        return content_hash(canonical_json(self.to_dict()))[:12]

    def render(self, task: str | None = None) -> str:
        """The card as compact text (see the module doc); with a known ``task`` only that dataset is shown."""
        overall = self.overall()
        lines = [f"Your report card (strict judge, {overall.n} graded past answers):",
                 f"Overall: {overall.line()}"]
        shown = [task] if task is not None and task in self.tasks else sorted(self.tasks)
        for t in shown:
            lines.append(f"{t} (n={self.tasks[t].n}): {self.tasks[t].line()}")
            for cat, stats in sorted(self.categories.get(t, {}).items()):
                lines.append(f"  - category {cat} (n={stats.n}): {stats.line()}")
        if self.prose:
            lines.append(f"Summary: {self.prose}")
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        """Write the card as JSON (with its version) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_dict(), "version": self.version}, indent=2) + "\n", "utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReportCard:
        """Read a saved card; a one-line DataError names the file and the problem when it is malformed."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: report card file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict) or not data.get("model"):
            raise DataError(f"{path}: not a report card (needs 'model' and 'tasks')")
        if data.get("card_version") != CARD_VERSION:
            raise DataError(f"{path}: report card format {data.get('card_version')!r} is not {CARD_VERSION}")
        cats = data.get("categories", {})
        if not isinstance(cats, dict) or not all(isinstance(v, dict) for v in cats.values()):
            raise DataError(f"{path}: 'categories' must map datasets to objects")
        card = cls(
            model=str(data["model"]),
            tasks={t: CardStats.from_dict(s, f"{path}: task {t!r}") for t, s in data["tasks"].items()},
            categories={t: {c: CardStats.from_dict(s, f"{path}: {t!r} category {c!r}") for c, s in v.items()}
                        for t, v in cats.items()},
            judge=str(data.get("judge", "")), split=str(data.get("split", "train")),
            prose=str(data.get("prose", "")),
        )
        if "version" in data and data["version"] != card.version:
            raise DataError(f"{path}: content does not match its version {data['version']!r} (edited by hand?)")
        return card


def build_report_card(
    store: Any, model: str, split: str = "train", judge: str | None = None,
    categories: Mapping[str, str] | None = None,
) -> ReportCard:
    """Build ``model``'s card from the graded ``split`` records in ``store`` (a RunStore).

    Grades come from "grade" records (value ``{model: Grade dict}``) tagged with this split; when the store
    holds grades from several judges, ``judge`` (the judge name tag) must pick one. Accuracy is the correct
    rate over every "score" record of the model in the cell (verifier scores do not depend on the judge). Categories: ``categories`` maps example id → category (e.g. from each example's meta
    "category"); a record is placed in a category when its example id is known (score records always carry it,
    grade records when tagged with ``example``) — otherwise it counts only at the dataset level.
    Only the train split may feed a card a predictor is evaluated with; other splits are refused.
    """
    if split != "train":
        raise ConfigError(f"report cards are built only from the train split, got {split!r}")
    tag_filter = {"split": split} if judge is None else {"split": split, "judge": judge}
    grades: dict[Any, tuple[str, str | None, str]] = {}  # dedupe key → (task, example, label)
    judges: set[str] = set()
    for i, rec in enumerate(store.records("grade", **tag_filter)):
        value = rec.value if isinstance(rec.value, dict) else {}
        if model not in value or "task" not in rec.tags:
            continue
        label = value[model].get("label") if isinstance(value[model], dict) else None
        if label not in GRADE_LABELS:
            continue
        judges.add(str(rec.tags.get("judge", "")))
        example = rec.tags.get("example")
        key = (rec.tags["task"], example, rec.tags.get("judge")) if example is not None else i
        grades[key] = (rec.tags["task"], example, label)  # a later record of one example replaces the earlier
    if len(judges) > 1:
        raise ConfigError(f"grades from several judges ({', '.join(sorted(judges))}) — pick one with judge=")
    if not grades:
        raise ConfigError(f"no graded {split} records for model {model!r}; collect with a judge first")
    scores: dict[tuple[str, str], bool] = {}
    for rec in store.records("score", model=model, split=split):
        if isinstance(rec.value, dict) and "correct" in rec.value and "task" in rec.tags:
            scores[(rec.tags["task"], str(rec.tags.get("example")))] = bool(rec.value["correct"])
    cats = dict(categories or {})
    counts: dict[str, Counter[str]] = {}
    cat_counts: dict[str, dict[str, Counter[str]]] = {}
    for task, example, label in grades.values():
        counts.setdefault(task, Counter())[label] += 1
        if example is not None and example in cats:
            cat_counts.setdefault(task, {}).setdefault(cats[example], Counter())[label] += 1
    acc: dict[str, list[int]] = {}
    cat_acc: dict[tuple[str, str], list[int]] = {}
    for (task, example), correct in scores.items():
        if task not in counts:
            continue
        acc.setdefault(task, [0, 0])
        acc[task][0] += int(correct)
        acc[task][1] += 1
        if example in cats and cats[example] in cat_counts.get(task, {}):
            cell = cat_acc.setdefault((task, cats[example]), [0, 0])
            cell[0] += int(correct)
            cell[1] += 1
    tasks = {t: CardStats(dict(c), *acc.get(t, [0, 0])) for t, c in counts.items()}
    by_cat = {t: {c: CardStats(dict(cc), *cat_acc.get((t, c), [0, 0])) for c, cc in v.items()}
              for t, v in cat_counts.items()}
    return ReportCard(model=model, tasks=tasks, categories=by_cat, judge=next(iter(judges), ""), split=split)


def categories_of(examples: Any) -> dict[str, str]:
    """example id → category for examples whose meta names a "category" (others are left out)."""
    return {ex.id: str(ex.meta["category"]) for ex in examples if ex.meta.get("category") is not None}


SUMMARY_PROMPT = (
    "Below is a report card: how a strict judge graded a language model's past answers, per dataset. "
    "Write a 2-3 sentence summary for the model itself saying where it tends to do well and where it tends "
    "to fail. Plain text only, no lists.\n\n{card}"
)


def summarise(card: ReportCard, model: Any, params: Any = None) -> ReportCard:
    """A copy of ``card`` with ``prose`` written by ``model`` (any ChatModel); the version changes with it."""
    from thrifty.llm.base import GenParams

    text = model.chat([{"role": "user", "content": SUMMARY_PROMPT.format(card=replace(card, prose="").render())}],
                      params or GenParams(max_tokens=120)).text
    prose = " ".join(text.split())
    if not prose:
        raise ConfigError(f"{getattr(model, 'model_id', 'model')} wrote an empty report-card summary")
    return replace(card, prose=prose)


class ReportCardPredictor(PromptPredictor):
    """Zero-shot prediction with the model's report card in the instruction; the card section shown is the
    request's task when the card knows it, else the whole (global) card."""

    name = "report_card"

    def __init__(self, model: Any, card: ReportCard, prefix: str = DEFAULT_PREFIX,
                 rubric_text: str = RUBRIC_TEXT, placement: str = "start") -> None:
        super().__init__(model, prefix, rubric_text, placement)
        if not isinstance(card, ReportCard):
            raise ConfigError(f"card must be a ReportCard, got {type(card).__name__}")
        self.card = card

    def context(self, task: str | None = None) -> str:
        return "How the same judge graded your past answers to similar requests:\n" + self.card.render(task)
