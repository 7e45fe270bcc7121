"""The verifier judge: grades answers of checkable tasks by the task's own Score, mapped to a label by a fixed rule.

The rule (:func:`label_for_score`), applied in this order:

1. no answer could be extracted (``score.parsed is None``) → ``bad``;
2. the answer is correct (``score.correct``) or ``score.value >= great_at`` (default 1.0) → ``great``;
3. ``score.value >= ok_at`` (partial credit, default 0.5) → ``ok``;
4. otherwise → ``bad`` (this includes the small format credit some scorers give a well-formed wrong answer).

Each answer is scored on its own (mode ``isolated``), so grades never depend on the other answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.types import canonical_json
from thrifty.judge.base import BAD, GREAT, ISOLATED, OK, Grade, as_example, check_answers
from thrifty.tasks.base import Example, Score, Task

VERIFIER_VERSION = 1


def label_for_score(score: Score, ok_at: float = 0.5, great_at: float = 1.0) -> str:
    """The grade label of a task Score by the module's documented rule."""
    if score.parsed is None:
        return BAD
    if score.correct or score.value >= great_at:
        return GREAT
    if score.value >= ok_at:
        return OK
    return BAD


class VerifierJudge:
    """Grades answers with ``task.score``; ``ok_at`` / ``great_at`` are the value thresholds of the rule.

    ``query`` should be the task's Example (some tasks score from its metadata); a plain-text query is wrapped
    in an Example carrying ``reference``, which suffices for reference-based tasks.
    """

    mode = ISOLATED

    def __init__(self, task: Task, ok_at: float = 0.5, great_at: float = 1.0, name: str = "verifier") -> None:
        if not 0.0 <= ok_at <= great_at <= 1.0:
            raise ConfigError(f"verifier thresholds need 0 <= ok_at <= great_at <= 1, got {ok_at}, {great_at}")
        if not callable(getattr(task, "score", None)):
            raise ConfigError(f"the verifier judge needs a task with a score() method, got {type(task).__name__}")
        self.task = task
        self.ok_at = float(ok_at)
        self.great_at = float(great_at)
        self.name = name

    def fingerprint(self) -> dict[str, Any]:
        """The task and the rule thresholds (used in cache keys)."""
        return {"judge": "verifier", "task": getattr(self.task, "name", type(self.task).__name__),
                "ok_at": self.ok_at, "great_at": self.great_at, "version": VERIFIER_VERSION}

    def grade(
        self, query: str | Example, answers: Mapping[str, str], reference: str | None = None
    ) -> dict[str, Grade]:
        """Score each answer with the task and map the Score to a label."""
        example = as_example(query, reference)
        out: dict[str, Grade] = {}
        for model_name, text in check_answers(answers).items():
            score = self.task.score(example, text)
            label = label_for_score(score, self.ok_at, self.great_at)
            why = score.reason or ("correct" if score.correct else "incorrect")
            out[model_name] = Grade(
                label,
                f"{why} (score {score.value:.3g})",
                canonical_json(score),
                {"judge": self.name, "score": score.value, "correct": score.correct, "parsed": score.parsed},
            )
        return out
