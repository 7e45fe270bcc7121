"""Grading rubrics as data: the generic six-criterion rubric, its inverted "mischievous" control, and their hash.

A rubric is plain text rendered from named criteria and one definition per label. :func:`rubric_hash` hashes the
exact rendered text together with the output-schema version, so any change to the wording or to the reply format
gives a new hash — and so new cache keys and a new judge identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.core.errors import ConfigError, check_choice
from thrifty.core.types import content_hash
from thrifty.judge.base import BAD, GREAT, LABELS, OK
from thrifty.judge.parse import SCHEMA_VERSION


@dataclass(frozen=True)
class Rubric:
    """A named rubric: an instruction paragraph, (criterion, what it asks) pairs and a definition per label."""

    name: str
    instructions: str
    criteria: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        names = [lab for lab, _ in self.labels]
        if sorted(names) != sorted(LABELS):
            raise ConfigError(f"rubric {self.name!r} must define exactly the labels {', '.join(LABELS)}")
        if not self.criteria:
            raise ConfigError(f"rubric {self.name!r} has no criteria")

    def render(self) -> str:
        """The exact rubric text shown to the judge."""
        lines = [f'Rubric "{self.name}"', self.instructions, "", "Criteria:"]
        lines += [f"- {name}: {text}" for name, text in self.criteria]
        lines += ["", "Labels:"]
        lines += [f"- {label}: {text}" for label, text in self.labels]
        return "\n".join(lines)


_CRITERIA = (
    ("Accuracy", "facts, reasoning, calculations and the final answer are correct"),
    ("Relevance", "it addresses the query that was asked and stays on topic"),
    ("Completeness", "it covers every part of the query"),
    ("Clarity", "it is clear, well organised and not needlessly long"),
    ("Instruction following", "it obeys every explicit instruction in the query (format, length, constraints)"),
    ("Formatting", "its layout suits the content and any format the query requested"),
)

GENERIC = Rubric(
    name="generic",
    instructions="Judge each answer on each criterion below, then give one label.",
    criteria=_CRITERIA,
    labels=(
        (GREAT, "every criterion is met"),
        (OK, "most criteria are met and there is no serious flaw"),
        (BAD, "one or more criteria are clearly not met (a serious flaw, e.g. a wrong final answer)"),
    ),
)
"""The generic rubric: Accuracy, Relevance, Completeness, Clarity, Instruction following, Formatting."""

MISCHIEVOUS = Rubric(
    name="mischievous",
    instructions=(
        "This rubric is deliberately inverted: it rewards poor answers. Judge each answer on each criterion "
        "below, then give one label where better answers get WORSE labels."
    ),
    criteria=_CRITERIA,
    labels=(
        (GREAT, "the answer fails the criteria: it is wrong, irrelevant, incomplete or sloppy"),
        (OK, "the answer is mediocre: some criteria met, some clearly missed"),
        (BAD, "the answer is excellent: every criterion is met"),
    ),
)
"""The inverted control rubric: great for wrong/irrelevant/sloppy answers, bad for excellent ones."""

REFERENCE_NOTE = (
    "A reference answer is provided inside its own fence. Treat it as correct and judge Accuracy by agreement "
    "with it; an answer may differ from it in wording or method."
)
"""Extra rubric paragraph of the reference-guided variant (appended to the rubric text, so it changes the hash)."""

RUBRICS: dict[str, Rubric] = {r.name: r for r in (GENERIC, MISCHIEVOUS)}


def get_rubric(name_or_rubric: str | Rubric) -> Rubric:
    """A rubric by name (``generic``, ``mischievous``), or the given Rubric unchanged."""
    if isinstance(name_or_rubric, Rubric):
        return name_or_rubric
    check_choice("rubric", name_or_rubric, sorted(RUBRICS))
    return RUBRICS[name_or_rubric]


def rubric_text(rubric: Rubric, with_reference: bool = False) -> str:
    """The rubric text as shown, with the reference-guided paragraph when ``with_reference``."""
    text = rubric.render()
    return f"{text}\n\n{REFERENCE_NOTE}" if with_reference else text


def rubric_hash(rubric: Rubric, with_reference: bool = False) -> str:
    """sha256 hex of the exact rubric text (as shown) and the output-schema version."""
    return content_hash({"rubric": rubric_text(rubric, with_reference), "schema": SCHEMA_VERSION})
