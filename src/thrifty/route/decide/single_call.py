"""PA in one backend call: a tier's grade prediction read from the first token of its streamed answer, the policy's
decision taken right there, and the stream closed (defer) or streamed on without its grade line (answer).

The two-call form reads the label (one token with log-probs), then asks for the answer continuing the same prefix.
Here one streamed request carries both: the model's reply opens with the predictor's prefix and the label (the
zero-shot or report-card prompt asks for exactly that), the label distribution comes from that token's
``top_logprobs``, and the policy decides before the second token is read. On defer the stream is closed at once,
so the backend stops: a deferral costs the small model's prefill and about one token. On answer the rest of the
reply goes on to the caller as it is generated. The routing engine (:func:`thrifty.route.decide.engine.climb`) takes this
path for a lower tier when :func:`single_call_fits` says it fits:

- the model declares ``label_stream`` (:mod:`thrifty.llm.capabilities`; OpenAI-compatible backends do);
- the predictor reads the next-token label after its own prompt (a :class:`PromptPredictor` that keeps its
  ``predict``: zero-shot, report card) and wraps that very model;
- no stop string could end the grade line, and the caller wants no token log-probs of the answer.

Fallback, per call and never for the process: a label token that came without log-probs (or with none on a
label) is read from the grade line's text instead — one-hot, or uniform and unparsed (so the policy defers) when
the line names no label — and counted in the backend's ``logprob_fallbacks`` (the server exports it as
``thrifty_logprob_fallbacks_total``); a backend that answers "logprobs unsupported" is asked without them for a
while, as its ``label_probs`` is (see :meth:`OpenAICompatModel.label_then_chat`).

Accounting: the prediction's ``tokens_in`` is the prompt (the backend's count once it reported usage; an estimate
on defer, as the stream is cut before usage comes), ``tokens_out`` the label token, ``latency_s`` the time to the
label; the answer's ``cached_tokens`` counts its whole prompt (evaluated once, for the label), and its latency is
the rest of the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from thrifty.core.types import Messages
from thrifty.judge.base import LABELS
from thrifty.llm.base import Completion, GenParams, LabelProbs
from thrifty.llm.capabilities import LABEL_STREAM, supports
from thrifty.route.decide.policy import DEFER
from thrifty.route.predictors.base import Prediction, PromptPredictor, read_prediction

Sink = Callable[[Prediction, str], Callable[[str], None] | None]
"""Where a deciding tier's answer streams to: ``(prediction, action) -> on_text or None`` (called once, after the
decision, only when the tier answers or repairs)."""


def single_call_fits(model: Any, predictor: Any, params: GenParams | None) -> bool:
    """Whether ``model``/``predictor`` can predict and answer in one call (see the module notes)."""
    try:
        if not supports(model, LABEL_STREAM):
            return False
    except Exception:  # a tier that fails to load declares nothing; its two-call path reports why
        return False
    if not isinstance(predictor, PromptPredictor) or type(predictor).predict is not PromptPredictor.predict:
        return False
    if predictor.model is not model:
        return False
    params = params or GenParams()
    if params.logprobs:
        return False
    line = {predictor.continuation(label) for label in LABELS}
    return not any(stop and any(stop in text for text in line) for stop in params.stop)


class _Read:
    """A label read already made, in the shape :func:`read_prediction` takes (its conversion is used as it is)."""

    def __init__(self, read: LabelProbs) -> None:
        self.read = read

    def label_probs(self, messages: Messages, labels: Any, assistant_prefix: str = "") -> LabelProbs:
        return self.read


@dataclass
class SingleCall:
    """One tier's prediction and answer in one call. ``prediction`` and ``action`` are set the moment the label is
    read, so a caller whose call failed can tell whether the tier had decided (and what)."""

    model: Any
    predictor: PromptPredictor
    policy: Any
    prediction: Prediction | None = None
    action: str | None = None

    def run(self, messages: Messages, params: GenParams | None = None, task: str | None = None,
            sink: Sink | None = None) -> Completion | None:
        """Predict, decide, then answer (the completion) or stop (None); ``sink`` receives the answer's text."""
        prompt = self.predictor.prompt(messages, task)
        emit: list[Callable[[str], None] | None] = [None]

        def on_label(read: LabelProbs) -> bool:
            self.prediction = read_prediction(_Read(read), prompt, self.predictor.prefix)
            self.action = self.policy.decide(self.prediction)
            if self.action == DEFER:
                return False
            emit[0] = sink(self.prediction, self.action) if sink is not None else None
            return True

        def on_text(piece: str) -> None:
            if emit[0] is not None:
                emit[0](piece)

        reply = self.model.label_then_chat(prompt, LABELS, on_label, params, self.predictor.prefix, on_text)
        if reply.completion is None:
            return None
        self.prediction = replace(self.prediction, tokens_in=int(reply.label.tokens_in))
        return reply.completion


__all__ = ["SingleCall", "Sink", "single_call_fits"]
