"""Prediction evaluation: run grade predictors on judged test examples, store every prediction, score them.

For one model and the examples of each task (rebuilt exactly as collection built them), each predictor predicts
the judge's grade of the model's answer before it is given. Predictions are stored in the run store keyed by
what produced them (predictor, model, card version, task, exact prompt, version), so a re-run makes no model
call and does not even load the model. The stored judge grades are the gold labels; the metrics, tables and
plots are built by :mod:`thrifty.route.replay.predict_report`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError
from thrifty.route.records.predictions import PredictEvalConfig, gather_predictions
from thrifty.route.replay.predict_report import build_result, format_markdown, write_outputs
from thrifty.tasks.base import Task


def predict_eval(
    cfg: PredictEvalConfig,
    load_model: Callable[[str], Any] | None = None,
    load_task: Callable[[str], Task] | None = None,
) -> dict[str, Any]:
    """Run the evaluation described by ``cfg`` and write its outputs; returns the JSON-able result."""
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.store_path.exists():
        raise ConfigError(f"{cfg.store_path}: no run store here; collect with a judge first")
    save_config(cfg, run_dir / "predict_eval_config.yaml")
    items, counts, versions = gather_predictions(cfg, load_model, load_task)
    result = build_result(cfg, items, counts, versions)
    write_outputs(result, items, run_dir, cfg.bins)
    return result


__all__ = ["format_markdown", "predict_eval"]
