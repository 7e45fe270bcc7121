"""Plain-prompt probe (P(IK) on the question): a probe on the hidden state of the conversation exactly as the
answer will see it — no instruction, no ``Grade:`` — read from the same prefill the answer then continues.

The feature is the small model's hidden state at the last token of the rendered conversation (chat template and
generation prompt included). The answer, when the policy answers, is the plain conversation with no assistant
prefix, so a backend with a KV cache (llama.cpp, ``hf``) evaluates no prompt token twice: an answered query pays
no extra token for its prediction and a deferred one pays the small model's prefill only. The
:class:`~thrifty.route.predictors.probe.ProbeClassifier` and its fitting are shared with the instruction probe;
only the position differs, recorded in the probe file as its prompt version (:func:`plain_prompt_version`), so
a probe fitted at one position is refused at the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.types import Messages, content_hash
from thrifty.route.predictors.base import PlainConversation, Prediction
from thrifty.route.predictors.probe import (
    PROBE_VERSION,
    ProbeClassifier,
    ProbeData,
    collect_features,
    probe_prediction,
)

POSITIONS = ("instruction", "plain", "prompt")  # "prompt": the query text alone (predictors.prompt_router)


def plain_prompt_version() -> str:
    """The prompt version a plain-position probe records (no instruction, no prefix)."""
    return content_hash({"position": "plain", "v": PROBE_VERSION})[:16]


def plain_features(model: Any, labelled: Sequence[tuple[str, Any, str]], layer: int | None = None) -> ProbeData:
    """Features and labels for ``labelled`` (task, example, label) rows: each example's plain conversation."""
    return collect_features(model, labelled, layer=layer, plain=True)


def fit_plain_probe(data: ProbeData, model_id: str, layer: int | None = None, l2: float = 1e-2) -> ProbeClassifier:
    """A probe fitted on plain-position features, with its provenance (model, layer, plain prompt version)."""
    return ProbeClassifier(l2=l2).fit(data.X, data.y, model=model_id, layer=layer,
                                      prompt_version=plain_prompt_version())


class PlainProbePredictor(PlainConversation):
    """Predicts the grade from ``model``'s hidden state at the end of the plain conversation (see module notes).

    ``prompt`` is the conversation itself and ``continuation`` is empty: the answer continues the prediction's
    prefill. ``tokens_in`` of a prediction counts the prompt tokens it evaluated; the answer that follows reports
    them as cached, so a cost computed from both calls' usage counts them once."""

    name = "plain_probe"

    def __init__(self, model: Any, probe: ProbeClassifier, layer: int | None = None) -> None:
        if not probe.fitted:
            raise ConfigError("probe is not fitted; call fit() or load() first")
        probe.check_compatible(getattr(model, "model_id", None), plain_prompt_version(), layer)
        self.model, self.probe, self.layer = model, probe, layer

    def predict(self, messages: Messages, task: str | None = None) -> Prediction:
        return probe_prediction(self.probe, self.model, self.prompt(messages, task), "", self.layer, "plain_probe")


__all__ = ["POSITIONS", "PlainProbePredictor", "fit_plain_probe", "plain_features", "plain_prompt_version"]
