"""Predictions over judged records: each predictor predicts the judge's grade of a model's stored answer.

Predictions are stored in the run store keyed by what produced them (predictor, model, artefact version, task,
exact prompt, version), so a re-run makes no model call and does not even load the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from thrifty.core.errors import ConfigError, ThriftyError
from thrifty.core.progress import Progress
from thrifty.core.store import RunStore
from thrifty.llm.factory import LazyChatModel, threaded_loader
from thrifty.route.predictors.build import PREDICTORS
from thrifty.route.records.config import ReadsStore, check_records, record_field
from thrifty.tasks.base import Example, Task

PREDICT_EVAL_VERSION = 1  # bump when the prediction record layout or key changes


@dataclass
class PredictEvalConfig(ReadsStore):
    """What to evaluate: one model's grade predictors on the judged ``split`` examples of ``tasks``."""

    store: str = record_field("store", "")  # default: <run_dir>/store.sqlite
    run_dir: str = record_field("run_dir", "runs/predict_eval")
    model: str = ""
    tasks: list[str] = record_field("tasks", [])
    split: str = record_field("split", "test")
    n_per_task: int = record_field("n_per_task", 8)
    seed: int = record_field("seed", 0)
    predictors: list[str] = field(default_factory=lambda: ["zero_shot"])
    card: str = ""  # report card JSON (needed when "report_card" is listed)
    probe: str = ""  # fitted probe file (needed when "probe" is listed; `thrifty route probe fit`)
    adapter: str = ""  # SFT adapter directory (needed when "sft" is listed; `thrifty route sft`)
    prompt_router: str = ""  # prompt-router file (needed when "prompt_router" is listed; probe fit --position prompt)
    judge: str = record_field("judge", "verifier")  # judge name tag of the grade records used as gold labels
    n_threads: int = record_field("n_threads", 1)
    n_boot: int = 1000
    bins: int = 15

    def __post_init__(self) -> None:
        check_records(self)
        if not self.model:
            raise ConfigError("model must name the model whose grades are predicted")
        if not self.predictors:
            raise ConfigError(f"predictors must list at least one of {', '.join(PREDICTORS)}")
        unknown = [p for p in self.predictors if p not in PREDICTORS]
        if unknown:
            raise ConfigError(f"unknown predictor {unknown[0]!r}; choose from {', '.join(PREDICTORS)}")
        if len(set(self.predictors)) != len(self.predictors):
            raise ConfigError(f"predictors lists one predictor twice: {self.predictors}")
        if "report_card" in self.predictors and not self.card:
            raise ConfigError("predictor 'report_card' needs card (a report card JSON built from train records)")
        for name in ("probe", "plain_probe"):
            if name in self.predictors and not self.probe:
                raise ConfigError(f"predictor {name!r} needs probe (a probe file from `thrifty route probe fit`)")
        if {"probe", "plain_probe"} <= set(self.predictors):
            raise ConfigError("list probe or plain_probe, not both: one probe file is fitted at one position")
        if "prompt_router" in self.predictors and not self.prompt_router:
            raise ConfigError("predictor 'prompt_router' needs prompt_router (a file from `thrifty route probe fit "
                              "--position prompt`)")
        if "sft" in self.predictors and not self.adapter:
            raise ConfigError("predictor 'sft' needs adapter (an adapter directory from `thrifty route sft`)")
        if not self.judge:
            raise ConfigError("judge must name the judge whose grades are the gold labels (e.g. 'verifier')")
        if self.n_boot < 1 or self.bins < 1:
            raise ConfigError("n_boot and bins must be >= 1")


@dataclass(frozen=True)
class Item:
    """One evaluated prediction: which predictor/task/example, the gold grade and the stored prediction dict."""

    predictor: str
    task: str
    example: str
    gold: str
    prediction: dict[str, Any]


def prediction_fields(predictor: Any, model: str, version: str | None, task: str,
                      messages: list[dict[str, str]]) -> dict[str, Any]:
    """What addresses a stored prediction: predictor, model, the version of the predictor's artefact (report
    card, probe or adapter; stored under "card"), task, messages and the exact prompt."""
    return {"predictor": predictor.name, "model": model, "card": version, "task": task,
            "messages": messages, "prompt": predictor.prompt(messages, task), "v": PREDICT_EVAL_VERSION}


def _make_predictors(cfg: PredictEvalConfig, model: Any) -> tuple[dict[str, Any], dict[str, str | None]]:
    """The predictors ``cfg`` lists, and the version of each one's artefact (None for zero-shot)."""
    from thrifty.route.predictors.build import artefact_of, build_predictor

    out: dict[str, Any] = {}
    versions: dict[str, str | None] = {}
    for name in cfg.predictors:
        out[name], versions[name] = build_predictor(name, cfg.model, model, artefact_of(cfg, name), lazy=True)
    return out, versions


def gold_grades(store: RunStore, model: str, task: str, split: str, judge: str) -> dict[str, str]:
    """example id → the judge's label of ``model``'s answer (a later record of one example replaces an earlier)."""
    from thrifty.judge.cache import stored_labels

    return {ex: label for (_, ex), label in stored_labels(store, model, split, judge, task).items()}


def gather_predictions(
    cfg: PredictEvalConfig,
    load_model: Callable[[str], Any] | None = None,
    load_task: Callable[[str], Task] | None = None,
) -> tuple[list[Item], dict[str, Any], dict[str, str | None]]:
    """Every predictor's prediction for every judged example of ``cfg`` (stored ones reused, new ones stored),
    with the counts of what was skipped and each predictor's artefact version."""
    from thrifty.judge.base import LABELS

    if load_model is None:
        load_model = threaded_loader(cfg.n_threads)
    if load_task is None:
        from thrifty.tasks.loader import load_task
    if not cfg.store_path.exists():
        raise ConfigError(f"{cfg.store_path}: no run store here; collect with a judge first")
    predictors, versions = _make_predictors(cfg, LazyChatModel(cfg.model, loader=load_model))
    examples: dict[str, list[Example]] = {
        spec: load_task(spec).examples(cfg.split, cfg.n_per_task, cfg.seed) for spec in cfg.tasks}
    counts: dict[str, Any] = {"ungraded": 0, "unparsed_grades": 0, "failures": 0, "new_predictions": 0,
                              "reused_predictions": 0, "failure_examples": []}
    items: list[Item] = []
    with RunStore(cfg.store_path) as store:
        todo: list[tuple[str, Example, str]] = []
        for spec, exs in examples.items():
            gold = gold_grades(store, cfg.model, spec, cfg.split, cfg.judge)
            for ex in exs:
                label = gold.get(ex.id)
                if label is None:
                    counts["ungraded"] += 1
                elif label not in LABELS:
                    counts["unparsed_grades"] += 1
                else:
                    todo.append((spec, ex, label))
        total = len(todo) * len(predictors)
        with Progress(total, f"predict {cfg.model}") as bar:
            for name, predictor in predictors.items():
                for spec, ex, label in todo:
                    pred = _predict_one(store, cfg, predictor, versions[name], spec, ex, counts)
                    if pred is not None:
                        items.append(Item(name, spec, ex.id, label, pred))
                    bar.advance(note=name)
    return items, counts, versions


def _predict_one(store: RunStore, cfg: PredictEvalConfig, predictor: Any, version: str | None, task: str,
                 ex: Example, counts: dict[str, Any]) -> dict[str, Any] | None:
    messages = ex.messages()
    tags = {"model": cfg.model, "task": task, "example": ex.id, "split": cfg.split, "predictor": predictor.name}
    try:
        value, hit = store.get_or_compute(
            "prediction", prediction_fields(predictor, cfg.model, version, task, messages),
            lambda: predictor.predict(messages, task=task).as_dict(), tags)
    except (ThriftyError, TimeoutError) as exc:  # not stored: retried on the next run
        counts["failures"] += 1
        if len(counts["failure_examples"]) < 3:
            counts["failure_examples"].append(f"{task}/{ex.id}: {(str(exc).splitlines() or [''])[0][:200]}")
        return None
    counts["reused_predictions" if hit else "new_predictions"] += 1
    return value

