"""Grade caching in the run store: a re-run of the same judging makes no judge call.

A record of kind "grade" holds the grades of one judge call group — all answers of a query for a joint judge,
one answer for an isolated judge or a verifier — keyed by :func:`grade_fields`: the judge's fingerprint (judge
model id, rubric hash, mode, params, seed, prompt and schema versions), the query, the example id and metadata
hash, the answers graded together, the reference and :data:`CACHE_VERSION`. Unparsed grades are cached too (the
judge is deterministic, so asking again would give the same reply); changing the prompt, the schema or the
parser version changes the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.core.store import RunStore
from thrifty.core.types import content_hash, to_jsonable
from thrifty.judge.base import JOINT, Grade, Judge, check_answers, query_text
from thrifty.tasks.base import Example

CACHE_VERSION = 1


def grade_fields(
    judge: Judge, query: str | Example, answers: Mapping[str, str], reference: str | None = None
) -> dict[str, Any]:
    """What addresses the cached grades of ``answers`` (graded together) to ``query`` by ``judge``."""
    example = None
    if isinstance(query, Example):
        example = {"id": query.id, "meta": content_hash(to_jsonable(query.meta))}
        if reference is None:
            reference = query.reference
    return {
        "judge": judge.fingerprint(),
        "query": query_text(query),
        "example": example,
        "answers": [[m, answers[m]] for m in sorted(answers)],
        "reference": reference,
        "v": CACHE_VERSION,
    }


class CachedJudge:
    """Wraps a judge so its grades are read from / written to ``store``; same ``grade`` contract.

    ``hits`` and ``misses`` count call groups served from the store and computed. ``tags`` are added to every
    record written (e.g. ``{"task": "gym:chain_sum", "split": "test"}``) next to the judge name and model.
    """

    def __init__(self, judge: Judge, store: RunStore, tags: Mapping[str, Any] | None = None) -> None:
        self.judge = judge
        self.store = store
        self.tags = dict(tags or {})
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.judge.name

    @property
    def mode(self) -> str:
        return self.judge.mode

    def fingerprint(self) -> dict[str, Any]:
        return self.judge.fingerprint()

    def grade(
        self, query: str | Example, answers: Mapping[str, str], reference: str | None = None
    ) -> dict[str, Grade]:
        """Grades of every answer, computing only the call groups not yet stored."""
        answers = check_answers(answers)
        if not answers:
            return {}
        groups = [answers] if self.judge.mode == JOINT else [{m: t} for m, t in answers.items()]
        fp = self.judge.fingerprint()
        tags = {"judge": self.judge.name, "judge_model": fp.get("model", ""), "mode": self.judge.mode,
                **self.tags}
        out: dict[str, Grade] = {}
        for group in groups:
            stored, hit = self.store.get_or_compute(
                "grade",
                grade_fields(self.judge, query, group, reference),
                lambda group=group: self.judge.grade(query, group, reference),
                tags,
            )
            if hit:
                self.hits += 1
            else:
                self.misses += 1
            for model_name in group:
                g = Grade.from_dict(stored[model_name])
                out[model_name] = Grade(g.label, g.rationale, g.raw, {**g.info, "cached": hit})
        return {m: out[m] for m in answers}


def stored_labels(store: RunStore, model: str, split: str, judge: str,
                  task: str | None = None) -> dict[tuple[str, str], str]:
    """(task, example id) → the label ``judge`` gave ``model``'s answer on ``split`` (optionally one task), read
    from the grade records (any label string, ``unparsed`` included; a later record of one example replaces an
    earlier one). Records without task or example tags are left out."""
    where = {"split": split, "judge": judge, **({} if task is None else {"task": task})}
    out: dict[tuple[str, str], str] = {}
    for rec in store.records("grade", **where):
        grade = rec.value.get(model) if isinstance(rec.value, dict) else None
        label = grade.get("label") if isinstance(grade, dict) else None
        if isinstance(label, str) and rec.tags.get("task") is not None and rec.tags.get("example") is not None:
            out[(str(rec.tags["task"]), str(rec.tags["example"]))] = label
    return out

