"""The LLM rubric judge: anonymised, shuffled, fenced answers → one judge call (joint) or one per answer (isolated).

Joint mode sends every model's answer to one query in a single call, numbered ``Answer 1..k`` in an order
shuffled by a generator seeded from (seed, query, answers) — model names never reach the judge — and maps the
grades back. Isolated mode sends one answer per call. A reply that does not parse (see ``parse``) gets ONE retry
with a short corrective message; if that fails too, every answer of the call is graded ``unparsed`` with the
reason as rationale and the raw reply kept. Errors of the model itself (timeouts, connection failures) propagate:
they are not grades.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thrifty.core.errors import ConfigError, check_choice
from thrifty.core.rng import py_rng
from thrifty.core.types import content_hash, to_jsonable
from thrifty.judge.base import JOINT, MODES, UNPARSED, Grade, check_answers, query_text
from thrifty.judge.parse import SCHEMA_VERSION, GradeParseError, parse_grades
from thrifty.judge.prompts import (
    DEFAULT_MAX_CHARS,
    PROMPT_VERSION,
    correction_prompt,
    make_nonce,
    system_prompt,
    user_prompt,
)
from thrifty.judge.rubric import GENERIC, Rubric, get_rubric, rubric_hash, rubric_text
from thrifty.llm.base import ChatModel, Completion, GenParams
from thrifty.tasks.base import Example

REFERENCE_POLICIES = ("ignore", "use", "require")
"""How a judge treats a reference answer: never shown; shown when given; must be given (reference-guided)."""


class RubricJudge:
    """Grades answers with an LLM and a rubric.

    - ``model``: the judge ChatModel. ``rubric``: a Rubric or its name (``generic``, ``mischievous``).
    - ``mode``: ``joint`` (all answers in one call, graded relative to each other) or ``isolated``.
    - ``reference``: ``ignore`` (the generic judge), ``use`` (show it when one is given or the Example has one)
      or ``require`` (the reference-guided judge; a missing reference is a ConfigError).
    - ``params``: generation parameters; by default greedy with ``64 + 128·k`` new tokens for k answers.
    - ``seed``: seeds the answer order and the fence nonce; same inputs + seed → same prompt.
    - ``max_answer_chars``: longer answers (and queries) are cut in the middle in the judge's view.
    - ``echo_nonce``: the reply must repeat the fence code (a copied, forged grade block then fails to parse).
    - ``allow_prose``: tolerate text around the single JSON object of the reply.
    """

    def __init__(
        self,
        model: ChatModel,
        rubric: Rubric | str = GENERIC,
        mode: str = JOINT,
        reference: str = "ignore",
        params: GenParams | None = None,
        seed: int = 0,
        max_answer_chars: int = DEFAULT_MAX_CHARS,
        echo_nonce: bool = True,
        allow_prose: bool = False,
        name: str | None = None,
    ) -> None:
        check_choice("judge mode", mode, MODES)
        check_choice("reference policy", reference, REFERENCE_POLICIES)
        if max_answer_chars < 32:
            raise ConfigError(f"max_answer_chars must be >= 32, got {max_answer_chars}")
        self.model = model
        self.rubric = get_rubric(rubric)
        self.mode = mode
        self.reference = reference
        self.params = params
        self.seed = int(seed)
        self.max_answer_chars = max_answer_chars
        self.echo_nonce = echo_nonce
        self.allow_prose = allow_prose
        self.name = name or f"{self.rubric.name}-{mode}"

    # ---- the Judge protocol ----------------------------------------------------------------------

    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines this judge's grades (used in cache keys)."""
        return {
            "judge": "rubric",
            "model": getattr(self.model, "model_id", type(self.model).__name__),
            "rubric": self.rubric.name,
            "rubric_hash": rubric_hash(self.rubric, with_reference=self.reference != "ignore"),
            "mode": self.mode,
            "reference": self.reference,
            "params": "auto" if self.params is None else to_jsonable(self.params),
            "seed": self.seed,
            "max_answer_chars": self.max_answer_chars,
            "echo_nonce": self.echo_nonce,
            "allow_prose": self.allow_prose,
            "prompt_version": PROMPT_VERSION,
            "schema_version": SCHEMA_VERSION,
        }

    def grade(
        self, query: str | Example, answers: Mapping[str, str], reference: str | None = None
    ) -> dict[str, Grade]:
        """Grade every answer; the result has the same keys as ``answers``."""
        answers = check_answers(answers)
        if not answers:
            return {}
        qtext = query_text(query)
        ref = self.resolve_reference(query, reference)
        order = self.order(qtext, answers)
        groups = [order] if self.mode == JOINT else [[m] for m in order]
        out: dict[str, Grade] = {}
        for group in groups:
            for model_name, grade in zip(group, self._grade_group(qtext, ref, [answers[m] for m in group]),
                                         strict=True):
                out[model_name] = grade
        return {m: out[m] for m in answers}

    # ---- pieces (public for inspection and tests) -----------------------------------------------------

    def resolve_reference(self, query: str | Example, reference: str | None) -> str | None:
        """The reference shown to the judge under this judge's policy (None when not shown)."""
        if self.reference == "ignore":
            return None
        ref = reference if reference is not None else (query.reference if isinstance(query, Example) else None)
        if ref is None and self.reference == "require":
            raise ConfigError(f"judge {self.name!r} is reference-guided but no reference answer was given")
        return ref

    def order(self, qtext: str, answers: Mapping[str, str]) -> list[str]:
        """Model names in the order their answers are shown (seeded shuffle; stable for the same inputs)."""
        names = sorted(answers)
        rng = py_rng(self.seed, "judge-order", content_hash([qtext, [[m, answers[m]] for m in names]]))
        rng.shuffle(names)
        return names

    def messages(self, qtext: str, ref: str | None, texts: list[str]) -> tuple[list[dict[str, str]], str]:
        """The chat messages of one judge call over ``texts`` (in shown order) and its nonce."""
        nonce = make_nonce(self.seed, qtext, ref, texts)
        body = rubric_text(self.rubric, with_reference=ref is not None)
        return [
            {"role": "system", "content": system_prompt(body, len(texts), nonce, ref is not None, self.echo_nonce)},
            {"role": "user", "content": user_prompt(qtext, texts, nonce, ref, self.max_answer_chars)},
        ], nonce

    def gen_params(self, n: int) -> GenParams:
        """Generation parameters of a call grading ``n`` answers."""
        if self.params is not None:
            return self.params
        return GenParams(max_tokens=64 + 128 * n, temperature=0.0, seed=self.seed)

    # ---- internals ----------------------------------------------------------------------------------

    def _grade_group(self, qtext: str, ref: str | None, texts: list[str]) -> list[Grade]:
        n = len(texts)
        messages, nonce = self.messages(qtext, ref, texts)
        params = self.gen_params(n)
        expected = nonce if self.echo_nonce else None
        calls: list[Completion] = []
        errors: list[str] = []
        parsed: dict[int, tuple[str, str]] | None = None
        for attempt in range(2):
            comp = self.model.chat(messages, params)
            calls.append(comp)
            try:
                parsed = parse_grades(comp.text, n, expected, self.allow_prose)
                break
            except GradeParseError as exc:
                errors.append(exc.reason)
                if attempt == 0:
                    messages = [*messages, {"role": "assistant", "content": comp.text},
                                {"role": "user", "content": correction_prompt(exc.reason, n, nonce, self.echo_nonce)}]
        raw = calls[-1].text
        info = {
            "judge": self.name,
            "judge_model": getattr(self.model, "model_id", ""),
            "of": n,
            "attempts": len(calls),
            "tokens_in": sum(c.tokens_in for c in calls),
            "tokens_out": sum(c.tokens_out for c in calls),
            "latency_s": round(sum(c.latency_s for c in calls), 6),
        }
        if errors:
            info["errors"] = errors
            info["first_raw"] = calls[0].text
        if parsed is None:
            reason = f"judge output could not be parsed: {errors[-1]}"
            return [Grade(UNPARSED, reason, raw, {**info, "position": i}) for i in range(1, n + 1)]
        return [Grade(parsed[i][0], parsed[i][1], raw, {**info, "position": i}) for i in range(1, n + 1)]

