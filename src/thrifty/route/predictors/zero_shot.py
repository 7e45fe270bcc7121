"""Zero-shot self-prediction: the conversation plus the rubric, and the model's own next-token grade."""

from __future__ import annotations

from typing import Any

from thrifty.route.predictors.base import DEFAULT_PREFIX, RUBRIC_TEXT, PromptPredictor


class ZeroShotPredictor(PromptPredictor):
    """Asks ``model`` to predict the strict judge's grade of its own answer, with no past-performance context.

    ``prefix`` is prefilled at the start of the assistant turn (the label is the next token); ``rubric_text``
    tells the model what each label means (the generic rubric by default); ``placement`` puts the instruction in
    the leading system message ("start") or after the conversation ("end").
    """

    name = "zero_shot"

    def __init__(self, model: Any, prefix: str = DEFAULT_PREFIX, rubric_text: str = RUBRIC_TEXT,
                 placement: str = "start") -> None:
        super().__init__(model, prefix, rubric_text, placement)
