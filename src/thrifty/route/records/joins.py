"""Joins of stored records: predictions with both models' answers and grades, and the prices of each query.

Fitting (`route calibrate`) and replay (`route eval`, `route ladder eval`) read records through these functions,
so every router and baseline is priced by the same :func:`query_costs`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore
from thrifty.route.decide.files import RouterFile
from thrifty.tasks.base import Task


def stored_generations(store: RunStore, model: str, split: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(task, example) → the latest stored generation of ``model`` on ``split``."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in store.records("generation", model=model, split=split):
        if isinstance(rec.value, dict):
            out[(str(rec.tags.get("task")), str(rec.tags.get("example")))] = rec.value
    return out


def require_rows(rows: list[Any], split: str) -> None:
    """Refuse, in one line, to fit or replay a router on fewer than two joined examples."""
    if len(rows) < 2:
        raise DataError(f"only {len(rows)} {split}-split examples have predictions, both models' answers and "
                        f"both grades; collect both models on the {split} split with a judge first")


def prediction_arrays(rows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """The stored predictions of ``rows`` as (n, 3) raw (bad, ok, great) probabilities and a readable mask."""
    return prediction_dict_arrays([r.prediction for r in rows])


def prediction_dict_arrays(predictions: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Stored prediction dicts as (n, 3) raw (bad, ok, great) probabilities and a readable mask."""
    probs = np.array([[d["p_bad"], d["p_ok"], d["p_great"]] for d in predictions], dtype=float)
    return probs, np.array([bool(d.get("parsed", True)) for d in predictions])


def router_predictions(router: RouterFile, where: str, store: str | Path, run_dir: str | Path,
                       tasks: list[str], split: str, n_per_task: int, seed: int, n_threads: int,
                       load_model: Callable[[str], Any] | None = None,
                       load_task: Callable[[str], Task] | None = None) -> tuple[list[Any], dict[str, Any]]:
    """(items, counts): a router record's predictor predicting its small model's grades on ``split`` (stored
    predictions reused); refuses, in one line, an artefact whose version changed since the router was fitted."""
    from thrifty.route.predictors.build import ARTEFACT_FIELD
    from thrifty.route.records.predictions import PredictEvalConfig, gather_predictions

    pred = router.predictor
    key = ARTEFACT_FIELD.get(pred.name)
    pe = PredictEvalConfig(store=str(store), run_dir=str(run_dir), model=router.small, tasks=tasks, split=split,
                           n_per_task=n_per_task, seed=seed, predictors=[pred.name], judge=router.judge,
                           n_threads=n_threads, **({key: pred.artefact} if key else {}))
    items, counts, versions = gather_predictions(pe, load_model, load_task)
    if pred.version and versions.get(pred.name) != pred.version:
        raise ConfigError(f"{where}: fitted with {pred.name} version {pred.version}, but the artefact now has "
                          f"version {versions.get(pred.name)}; calibrate again")
    return items, counts


def price_table(models: list[str], prices: dict[str, float] | None = None,
                cached_discount: float = 0.1) -> dict[str, Any]:
    """Per-token prices for ``models``: ``prices`` (per 1k tokens) where given, else prices proportional to active
    parameters for bundled models (:func:`thrifty.evals.cost.default_prices`), else 1 per 1k tokens — the one
    case where two models cost alike without being asked, reported as ``uniform`` by :func:`price_source`."""
    from thrifty.evals.cost import ACTIVE_PARAMS_B, Price, default_prices

    prices = prices or {}
    out = {}
    for m in models:
        if m in prices:
            p = float(prices[m]) / 1000.0
            out[m] = Price(p, p * cached_discount, p)
        elif m in ACTIVE_PARAMS_B:
            out[m] = default_prices([m], cached_discount)[m]
        else:
            out[m] = Price(1e-3, 1e-3 * cached_discount, 1e-3)
    return out


def price_source(models: list[str], prices: dict[str, float] | None = None) -> str:
    """How ``price_table`` priced ``models``: given, active_parameters, uniform, or mixed."""
    from thrifty.evals.cost import ACTIVE_PARAMS_B

    kinds = {"given" if m in (prices or {}) else "active_parameters" if m in ACTIVE_PARAMS_B else "uniform"
             for m in models}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def query_costs(rows: list[Any], gens: dict[str, Any], small: str, large: str, cost: str = "tokens",
                prices: dict[str, float] | None = None, with_prediction: bool = True, predictor: str = "",
                cached_discount: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Per-query cost of answering with ``small`` and of deferring to ``large``, each the sum over the query's
    backend calls of :func:`thrifty.evals.cost.query_cost` (prices from :func:`price_table`; ``cost="latency"``:
    seconds). The prediction is paid on every query: an instruction predictor's answer is decoded in the same
    context right after its prompt and label (prompt once, label + answer as output); the plain-prompt probe's
    prediction *is* the answer's prefill, so an answered query costs exactly the plain answer and a deferred one
    pays the small model's discarded prefill; the prompt router reads no model, so a deferred query pays the
    large model only. (The stored plain answer's latency stands for an answered query's;
    the probe's own read overhead is measured apart, in ``bench/routing_pays.py``.) Stored predictions carry no
    cached-token counts, so no prefix-cache discount is credited to instruction predictors here.
    ``with_prediction`` False: routers that do not ask the small model (plain answers only)."""
    from thrifty.evals.cost import Usage, query_cost

    table = price_table([small, large], prices, cached_discount)
    unit = "latency" if cost == "latency" else "tokens"
    answer, defer = [], []
    for r in rows:
        gs, gl = gens[small][(r.task, r.example)], gens[large][(r.task, r.example)]
        s_in, s_out = int(gs.get("tokens_in", 0)), int(gs.get("tokens_out", 0))
        plain = Usage(small, s_in, 0, s_out, float(gs.get("latency_s", 0.0)))
        big = Usage(large, int(gl.get("tokens_in", 0)), 0, int(gl.get("tokens_out", 0)),
                    float(gl.get("latency_s", 0.0)))
        if not with_prediction:
            calls_answer, calls_defer = [plain], [big]
        else:
            p_in, p_out = int(r.prediction.get("tokens_in", 0)), int(r.prediction.get("tokens_out", 0))
            pred = Usage(small, p_in, 0, p_out, float(r.prediction.get("latency_s", 0.0)))
            if predictor == "prompt_router":  # the query text alone: no small-model call before the decision
                calls_answer, calls_defer = [plain], [big]
            elif predictor == "plain_probe":  # the prediction is the answer's own prefill: one call when answering
                calls_answer, calls_defer = [plain], [pred, big]
            else:  # one context: the prediction prompt, its label, then the answer decoded after it
                calls_answer = [Usage(small, p_in, 0, p_out + s_out, pred.latency_s + plain.latency_s)]
                calls_defer = [pred, big]
        answer.append(query_cost(calls_answer, table, unit))
        defer.append(query_cost(calls_defer, table, unit))
    return np.array(answer), np.array(defer)


def joined_rows(store: RunStore, items: list[Any], small: str, large: str, tasks: list[str], split: str,
                judge: str) -> tuple[list[Any], dict[tuple[str, str], str], dict[str, Any]]:
    """The predictions whose example has both models' stored answers and a readable grade of the large one;
    with the large model's labels and both models' generations."""
    from thrifty.judge.base import LABEL_INDEX
    from thrifty.route.records.predictions import gold_grades

    large_labels = {(t, ex): lab for t in tasks for ex, lab in gold_grades(store, large, t, split, judge).items()}
    gens = {m: stored_generations(store, m, split) for m in (small, large)}
    rows = [it for it in items if large_labels.get((it.task, it.example)) in LABEL_INDEX
            and (it.task, it.example) in gens[small] and (it.task, it.example) in gens[large]]
    return rows, large_labels, gens

