"""The Prediction record, the Predictor protocol and the shared "predict your grade, then answer" prompt.

A predictor asks the answering model itself, before it answers, how a strict judge would grade its answer. The
whole conversation is kept; the instruction goes into the leading system message (``placement="start"``, the
default: merged with the conversation's own system message, or a new one) or is appended as a final system
message (``"end"``). On Qwen2.5-Coder-0.5B the answers that follow the grade were clearly better with "start"
(with "end" the model often answered the instruction instead of the user). The assistant turn is prefilled with
``prefix`` (default ``"Grade:"``): the label is then the very next token. The backend reads the label
distribution there (it sums leading-space and casing variants), and the answer, when the model answers,
continues from ``prefix + " " + label + "\\n"`` — the same prompt plus two tokens, so the KV cache is reused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from thrifty.core.errors import ConfigError, check_choice
from thrifty.core.types import Messages, content_hash
from thrifty.judge.base import BAD, GREAT, LABEL_INDEX, LABELS, OK

DEFAULT_PREFIX = "Grade:"
"""Text prefilled at the start of the assistant turn; the grade label is the next token after it."""

RUBRIC_TEXT = (
    "The judge checks accuracy (facts, reasoning and final answer are correct), relevance, completeness, "
    "clarity, instruction following and formatting, and gives one label:\n"
    f"- {GREAT}: every criterion is met\n"
    f"- {OK}: most criteria are met and there is no serious flaw\n"
    f"- {BAD}: one or more criteria are clearly not met (a serious flaw, e.g. a wrong final answer)"
)
"""The generic rubric's meaning of each label, as told to the predicting model."""

_WORST_FIRST = (BAD, OK, GREAT)


def grade_first_format(prefix: str = DEFAULT_PREFIX) -> str:
    """PA's reply format: the grade line first, then the reply."""
    return (f'Reply in this format: first a line "{prefix} <label>" where <label> is one of {", ".join(LABELS)}, '
            "then a new line, then your reply to the user.")


def prediction_instruction(prefix: str = DEFAULT_PREFIX, rubric_text: str = RUBRIC_TEXT, extra: str = "",
                           reply_format: str | None = None) -> str:
    """The system instruction asking for the grade before the reply: rubric, optional extra context (a report
    card), and the reply format (default :func:`grade_first_format`)."""
    parts = [
        "Before each reply, predict how a strict judge will grade that reply.",
        rubric_text,
    ]
    if extra:
        parts.append(extra)
    parts.append(reply_format or grade_first_format(prefix))
    return "\n\n".join(parts)


PLACEMENTS = ("start", "end")


def with_instruction(messages: Messages, instruction: str, placement: str = "start") -> Messages:
    """A copy of the whole conversation carrying ``instruction`` as system text: "start" merges it into the
    leading system message (after its own text) or prepends one; "end" appends a final system message."""
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise ConfigError("messages must be a non-empty list of {role, content} dicts")
    check_choice("instruction placement", placement, PLACEMENTS)
    out = [dict(m) for m in messages]
    if placement == "end":
        return [*out, {"role": "system", "content": instruction}]
    if out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content', '')}\n\n{instruction}"
        return out
    return [{"role": "system", "content": instruction}, *out]


@dataclass(frozen=True)
class Prediction:
    """A predicted grade distribution and what reading it cost.

    ``method``: how it was read ("logprobs", "text", ...); ``parsed`` False means the prediction could not be
    read and the probabilities are uniform — a policy should defer on it and count it as a parse failure.
    ``reasoning`` holds any reasoning text produced before the prediction (RPRA), else "".
    """

    p_great: float
    p_ok: float
    p_bad: float
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    method: str = "logprobs"
    parsed: bool = True
    reasoning: str = ""

    def __post_init__(self) -> None:
        probs = (self.p_great, self.p_ok, self.p_bad)
        if not all(isinstance(p, (int, float)) and math.isfinite(p) and -1e-9 <= p <= 1 + 1e-9 for p in probs):
            raise ConfigError(f"prediction probabilities must be in [0, 1], got {probs}")
        if abs(sum(probs) - 1.0) > 1e-6:
            raise ConfigError(f"prediction probabilities must sum to 1, got {sum(probs):.9f}")

    @property
    def probs(self) -> dict[str, float]:
        """The distribution as {label: probability}, best label first."""
        return {GREAT: self.p_great, OK: self.p_ok, BAD: self.p_bad}

    @property
    def p_good(self) -> float:
        """Probability the answer is acceptable: p_great + p_ok."""
        return self.p_great + self.p_ok

    @property
    def label(self) -> str:
        """The most probable label; a tie goes to the worse grade (bad over ok over great)."""
        probs = self.probs
        return max(_WORST_FIRST, key=lambda lab: (probs[lab], -_WORST_FIRST.index(lab)))

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, with the derived ``p_good`` and ``label``."""
        return {**asdict(self), "p_good": self.p_good, "label": self.label}

    @classmethod
    def from_class_probs(cls, p: Any, **accounting: Any) -> Prediction:
        """A classifier's class probabilities (indexed by ``LABEL_INDEX``: bad, ok, great), renormalised, with the
        call's accounting (tokens, latency, method)."""
        p_bad, p_ok, p_great = (float(p[LABEL_INDEX[lab]]) for lab in (BAD, OK, GREAT))
        total = p_bad + p_ok + p_great
        return cls(p_great / total, p_ok / total, max(0.0, 1.0 - (p_great + p_ok) / total), **accounting)

    @classmethod
    def uniform(cls, **accounting: Any) -> Prediction:
        """The unreadable prediction: uniform probabilities, ``parsed=False``."""
        third = 1.0 / 3.0
        return cls(third, third, 1.0 - 2 * third, parsed=False, **accounting)


@runtime_checkable
class Predictor(Protocol):
    """Predicts the judge's grade of ``model``'s answer before it is produced.

    ``prompt(messages, task)`` is the conversation as the model sees it when predicting, and
    ``continuation(label)`` the assistant prefix an answer continues from after predicting ``label``; PA uses
    both so the answer shares the prediction's prompt. ``task`` is the request's task/dataset tag, if any.
    """

    model: Any
    prefix: str

    def prompt(self, messages: Messages, task: str | None = None, reply_format: str | None = None) -> Messages: ...

    def predict(self, messages: Messages, task: str | None = None) -> Prediction: ...

    def continuation(self, label: str) -> str: ...


class PlainConversation:
    """A predictor whose answer is the plain conversation: ``prompt`` is the messages as given (no instruction, no
    reply format) and ``continuation`` is empty, so an answer continues the prediction's prefill (a hidden-state
    read) or starts afresh (a read of no model). Subclasses set ``name`` and ``predict``."""

    name = "plain"
    prefix = ""

    def prompt(self, messages: Messages, task: str | None = None, reply_format: str | None = None) -> Messages:
        if reply_format is not None:
            raise ConfigError(f"predictor {self.name} reads no reply format (RPRA needs an instruction predictor)")
        return [dict(m) for m in messages]

    def continuation(self, label: str) -> str:
        return ""


class PromptPredictor:
    """A predictor that reads the label distribution after ``prefix`` under an instruction; subclasses choose
    the instruction (zero-shot, with a report card, ...) through :meth:`instruction`."""

    def __init__(self, model: Any, prefix: str = DEFAULT_PREFIX, rubric_text: str = RUBRIC_TEXT,
                 placement: str = "start") -> None:
        if not prefix:
            raise ConfigError("prediction prefix must be a non-empty string (e.g. 'Grade:')")
        check_choice("instruction placement", placement, PLACEMENTS)
        self.placement = placement
        self.model = model
        self.prefix = prefix
        self.rubric_text = rubric_text

    def context(self, task: str | None = None) -> str:
        """Extra context shown with the rubric (none for zero-shot; the report card for card predictors)."""
        return ""

    def instruction(self, task: str | None = None, reply_format: str | None = None) -> str:
        """The system instruction added to the conversation."""
        return prediction_instruction(self.prefix, self.rubric_text, self.context(task), reply_format)

    def prompt(self, messages: Messages, task: str | None = None, reply_format: str | None = None) -> Messages:
        """The conversation as seen when predicting; ``reply_format`` overrides the grade-first format (RPRA)."""
        return with_instruction(messages, self.instruction(task, reply_format), self.placement)

    def continuation(self, label: str) -> str:
        check_choice("grade label", label, LABELS)
        return f"{self.prefix} {label}\n"

    def predict(self, messages: Messages, task: str | None = None) -> Prediction:
        return read_prediction(self.model, self.prompt(messages, task), self.prefix)


def prompt_version(predictor: PromptPredictor, salt: Any = 1) -> str:
    """A short hash of what fixes the prediction position: instruction text, prefix, placement and ``salt`` (a
    version of whatever depends on it: a probe, an adapter). Artefacts trained at one position record it."""
    return content_hash({"instruction": predictor.instruction(), "prefix": predictor.prefix,
                         "placement": predictor.placement, "v": salt})[:16]


def read_prediction(model: Any, messages: Messages, prefix: str = DEFAULT_PREFIX) -> Prediction:
    """One ``label_probs`` call after ``prefix``; unreadable (backend says unparsed, or no mass at all on the
    labels) gives the uniform ``parsed=False`` prediction."""
    lp = model.label_probs(messages, LABELS, assistant_prefix=prefix)
    acct = {"tokens_in": int(lp.tokens_in), "tokens_out": int(getattr(lp, "tokens_out", 0)),
            "latency_s": float(lp.latency_s), "method": str(lp.method)}
    if not lp.parsed or lp.mass <= 0:
        return Prediction.uniform(**acct)
    total = sum(float(lp.probs.get(lab, 0.0)) for lab in LABELS)
    if not math.isfinite(total) or total <= 0:
        return Prediction.uniform(**acct)
    p = {lab: float(lp.probs.get(lab, 0.0)) / total for lab in LABELS}
    return Prediction(p[GREAT], p[OK], max(0.0, 1.0 - p[GREAT] - p[OK]), **acct)
