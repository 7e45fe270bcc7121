"""predictors: ways a model predicts the judge's grade of its own answer before answering (zero-shot, report card,
hidden-state probe).

Public API::

    from thrifty.route.predictors import ZeroShotPredictor, ReportCardPredictor, build_report_card
    pred = ZeroShotPredictor(chat_model).predict(messages)      # Prediction(p_great, p_ok, p_bad, ...)
    card = build_report_card(store, "qwen2.5-coder-0.5b-instruct", split="train")
    pred = ReportCardPredictor(chat_model, card).predict(messages, task="gym:chain_sum")
"""

from thrifty.route.predictors.base import (
    DEFAULT_PREFIX,
    RUBRIC_TEXT,
    Prediction,
    Predictor,
    PromptPredictor,
    prediction_instruction,
    read_prediction,
    with_instruction,
)
from thrifty.route.predictors.probe import (
    ProbeClassifier,
    ProbePredictor,
    collect_features,
    fit_probe,
    labelled_examples,
)
from thrifty.route.predictors.report_card import (
    CardStats,
    ReportCard,
    ReportCardPredictor,
    build_report_card,
    categories_of,
    summarise,
)
from thrifty.route.predictors.zero_shot import ZeroShotPredictor

__all__ = [
    "DEFAULT_PREFIX",
    "RUBRIC_TEXT",
    "CardStats",
    "Prediction",
    "Predictor",
    "ProbeClassifier",
    "ProbePredictor",
    "PromptPredictor",
    "ReportCard",
    "ReportCardPredictor",
    "ZeroShotPredictor",
    "build_report_card",
    "categories_of",
    "collect_features",
    "fit_probe",
    "labelled_examples",
    "prediction_instruction",
    "read_prediction",
    "summarise",
    "with_instruction",
]
