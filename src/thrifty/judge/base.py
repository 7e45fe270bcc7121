"""The Judge contract: the grade labels and their numeric values, the Grade record and the Judge protocol.

Every judge answers ``grade(query, answers, reference=None) -> {model: Grade}``. ``query`` is the question as
text or a task ``Example`` (whose system instruction, reference and metadata a judge may use); ``answers`` maps a
model name to the text it produced. Labels come from :data:`LABELS` only; a judge whose output could not be read
says so with :data:`UNPARSED` rather than guessing a label.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from thrifty.core.errors import ConfigError, check_choice
from thrifty.core.types import content_hash
from thrifty.tasks.base import Example

GREAT, OK, BAD = "great", "ok", "bad"
LABELS: tuple[str, ...] = (GREAT, OK, BAD)
"""The three grades, best first (the paper's categorical grade)."""

UNPARSED = "unparsed"
"""Label of a grade whose judge output could not be parsed even after the one retry (never a silent default)."""

GRADE_LABELS: tuple[str, ...] = (*LABELS, UNPARSED)
"""Every label a :class:`Grade` may carry."""

LABEL_VALUE: dict[str, float] = {BAD: 0.0, OK: 0.5, GREAT: 1.0}
"""Quality of a routed answer from its grade (bad=0, ok=0.5, great=1) — our choice, used by the routing metrics."""

LABEL_INDEX: dict[str, int] = {BAD: 0, OK: 1, GREAT: 2}
"""Ordinal class index of each label (bad=0, ok=1, great=2), the order the label metrics use."""

JOINT, ISOLATED = "joint", "isolated"
MODES: tuple[str, ...] = (JOINT, ISOLATED)
"""Judging modes: all answers to one query in one call, or one call per answer."""


def check_label(label: str, allow_unparsed: bool = True) -> str:
    """Return ``label`` or raise a one-line ConfigError naming the valid labels."""
    valid = GRADE_LABELS if allow_unparsed else LABELS
    check_choice("grade label", label, valid)
    return label


def label_value(label: str) -> float | None:
    """Numeric quality of ``label`` (bad=0, ok=0.5, great=1); None for ``unparsed``, which has no value."""
    check_label(label)
    return LABEL_VALUE.get(label)


@dataclass(frozen=True)
class Grade:
    """One judge verdict on one answer.

    ``label`` is one of :data:`GRADE_LABELS`; ``rationale`` is the judge's reason (for ``unparsed``: why the
    output could not be read); ``raw`` is the judge's output text the grade came from, kept verbatim. ``info``
    holds accounting such as the anonymised position, attempts, tokens and latency of the judge call(s).
    """

    label: str
    rationale: str = ""
    raw: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_label(self.label)

    @property
    def parsed(self) -> bool:
        """False when the judge output could not be read."""
        return self.label != UNPARSED

    @property
    def value(self) -> float | None:
        """Numeric quality (see :data:`LABEL_VALUE`); None when unparsed."""
        return LABEL_VALUE.get(self.label)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grade:
        """Rebuild a grade from its JSON form (as stored in the run store)."""
        return cls(str(data["label"]), str(data.get("rationale", "")), str(data.get("raw", "")),
                   dict(data.get("info") or {}))


@runtime_checkable
class Judge(Protocol):
    """A grader of answers. ``mode`` is "joint" (answers graded together, so one grade depends on the others)
    or "isolated" (each answer graded on its own). ``fingerprint()`` is a JSON-able description of everything
    that determines the grades (model id, rubric hash, mode, params, version), used as part of cache keys."""

    name: str
    mode: str

    def grade(
        self, query: str | Example, answers: Mapping[str, str], reference: str | None = None
    ) -> dict[str, Grade]: ...

    def fingerprint(self) -> dict[str, Any]: ...


def as_example(query: str | Example, reference: str | None = None) -> Example:
    """``query`` as an Example; a text query gets a content-derived id. A given ``reference`` overrides the
    example's own."""
    if isinstance(query, Example):
        return query if reference is None else replace(query, reference=reference)
    if not isinstance(query, str):
        raise ConfigError(f"query must be a string or an Example, got {type(query).__name__}")
    return Example(id=content_hash(["judge-query", query])[:16], prompt=query, reference=reference)


def query_text(query: str | Example) -> str:
    """The query as the answering models saw it: the system instruction (if any), a blank line, the prompt."""
    if isinstance(query, Example):
        return f"{query.system}\n\n{query.prompt}" if query.system else query.prompt
    if not isinstance(query, str):
        raise ConfigError(f"query must be a string or an Example, got {type(query).__name__}")
    return query


def check_answers(answers: Mapping[str, str]) -> dict[str, str]:
    """``answers`` as a plain dict, or a one-line ConfigError when a name or text is not a string."""
    if not isinstance(answers, Mapping):
        raise ConfigError(f"answers must map model names to texts, got {type(answers).__name__}")
    out: dict[str, str] = {}
    for model, text in answers.items():
        if not isinstance(model, str) or not model:
            raise ConfigError(f"answer keys must be non-empty model names, got {model!r}")
        if not isinstance(text, str):
            raise ConfigError(f"answer of {model!r} must be a string, got {type(text).__name__}")
        out[model] = text
    return out
