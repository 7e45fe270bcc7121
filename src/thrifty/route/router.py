"""`thrifty route calibrate`: fit a calibrated deferral policy on held-out judged records; write the router file.

On the ``split`` (default ``val``: neither the train split the predictor learned from nor the test split it is
judged on) the small model's predictor predicts the grade of each of its answers (stored predictions reused).
With the judge's grades of both models' answers as gold, the calibrator (temperature or isotonic) is fitted on
(predictions, small-model grades) and a threshold on calibrated p_good is chosen for the target: a defer rate,
a quality (≥ ``quality`` × the large model's mean grade quality, certified at level ``delta``) or a budget
(mean cost per query). ECE and Brier of p_good before and after calibration are reported.

Costs per query, from the stored records, through the one cost function (:func:`query_costs` →
:func:`thrifty.evals.cost.query_cost`): answering = the prediction call + the small model's answer (continuing
the prediction prompt, whose tokens are then cached; for the plain-prompt probe the prediction is the answer's
own prefill); deferring = the prediction call + the large model's prompt and answer — uncached, cached and output
tokens at each model's price (``prices`` per 1k tokens, default proportional to active parameters, cached tokens
at ``cached_discount``), or measured seconds (``cost: latency``).

The router file (JSON, versioned by content hash) holds the models, the predictor and its artefact, the policy
(calibrator + thresholds), the target and what the fit achieved; :mod:`thrifty.route.router_file` reads it back
(serving imports that module, never this one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore
from thrifty.core.types import content_hash
from thrifty.route.policy import CALIBRATIONS, SIGNALS, Calibrator, Policy
from thrifty.route.router_file import (  # noqa: F401  (re-exported: the file format lives there)
    ROUTER_VERSION,
    check_router,
    load_router,
    policy_for,
    read_json_file,
    task_policies,
)
from thrifty.tasks.base import Task, check_split

TARGETS = ("defer_rate", "quality", "budget")
COSTS = ("tokens", "latency")


@dataclass
class CalibrateConfig:
    """What to calibrate: ``small``'s predictor deciding between answering and deferring to ``large``."""

    store: str = ""  # default: <run_dir>/store.sqlite
    run_dir: str = "runs/calibrate"
    small: str = ""
    large: str = ""
    tasks: list[str] = field(default_factory=list)
    split: str = "val"
    n_per_task: int = 50
    seed: int = 0
    predictor: str = "zero_shot"  # zero_shot, report_card, probe, sft
    card: str = ""
    probe: str = ""
    adapter: str = ""
    prompt_router: str = ""  # prompt-router file (predictor prompt_router; `route probe fit --position prompt`)
    # predictors to compare on the split: the router keeps the one whose operating curve costs least at
    # select_quality × the large model's quality there (ties: higher APGR); empty: just ``predictor``
    candidates: list[str] = field(default_factory=list)
    select_quality: float = 0.95
    judge: str = "verifier"
    calibration: str = "temperature"  # none, temperature, isotonic
    signal: str = "p_good"  # p_good (p_ok + p_great) or expected_grade (0.5 p_ok + p_great)
    target: str = "quality"  # defer_rate, quality, budget
    defer_rate: float = 0.5
    quality: float = 0.95
    delta: float = 0.1
    budget: float = 0.0
    cost: str = "tokens"  # tokens (prices per 1k tokens) or latency (seconds)
    # model → price per 1k tokens; unset: proportional to active parameters for bundled models (else 1 each)
    prices: dict[str, float] = field(default_factory=dict)
    cached_discount: float = 0.1  # a cached prompt token costs this fraction of an uncached one
    per_task: bool = False  # also fit one policy per task (domain) with at least min_task_n rows
    min_task_n: int = 30
    n_threads: int = 1
    out: str = ""  # default: <run_dir>/router.json

    def __post_init__(self) -> None:
        if not self.small or not self.large or self.small == self.large:
            raise ConfigError("small and large must name two different models")
        if not self.tasks:
            raise ConfigError("tasks must name at least one task")
        check_split(self.split)
        for name, value, allowed in (("calibration", self.calibration, CALIBRATIONS), ("signal", self.signal, SIGNALS),
                                     ("target", self.target, TARGETS), ("cost", self.cost, COSTS)):
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if not 0 <= self.defer_rate <= 1 or not 0 < self.quality <= 1 or not 0 < self.delta < 1:
            raise ConfigError("defer_rate must be in [0, 1], quality in (0, 1] and delta in (0, 1)")
        if self.target == "budget" and self.budget <= 0:
            raise ConfigError("target 'budget' needs budget > 0 (mean cost per query)")
        if any(not (isinstance(v, (int, float)) and v >= 0) for v in self.prices.values()):
            raise ConfigError(f"prices must be non-negative numbers, got {self.prices}")
        if not 0.0 <= self.cached_discount <= 1.0:
            raise ConfigError(f"cached_discount must be in [0, 1], got {self.cached_discount}")
        if self.n_per_task < 1:
            raise ConfigError(f"n_per_task must be >= 1, got {self.n_per_task}")
        if self.min_task_n < 2:
            raise ConfigError(f"min_task_n must be >= 2, got {self.min_task_n}")
        from thrifty.route.predictors.build import PREDICTORS

        unknown = [p for p in self.candidates if p not in PREDICTORS]
        if unknown or len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"candidates must list distinct predictors of {', '.join(PREDICTORS)}, got "
                              f"{self.candidates}")
        if not 0 < self.select_quality <= 1:
            raise ConfigError(f"select_quality must be in (0, 1], got {self.select_quality}")

    @property
    def store_path(self) -> Path:
        return Path(self.store) if self.store else Path(self.run_dir) / "store.sqlite"

    @property
    def out_path(self) -> Path:
        return Path(self.out) if self.out else Path(self.run_dir) / "router.json"


def stored_generations(store: RunStore, model: str, split: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(task, example) → the latest stored generation of ``model`` on ``split``."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in store.records("generation", model=model, split=split):
        if isinstance(rec.value, dict):
            out[(str(rec.tags.get("task")), str(rec.tags.get("example")))] = rec.value
    return out


def _fit_calibrator(kind: str, probs: np.ndarray, y: np.ndarray) -> Calibrator:
    from thrifty.route.calibrate import fit_isotonic, fit_temperature

    if kind == "temperature":
        return Calibrator("temperature", temperature=fit_temperature(probs, y))
    if kind == "isotonic":
        iso = fit_isotonic(probs[:, 1] + probs[:, 2], (y > 0).astype(float))
        return Calibrator("isotonic", iso_x=iso.x, iso_y=iso.y)
    return Calibrator()


def _prob_quality(p_good: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from thrifty.evals import brier_binary, ece_binary

    return {"ece": float(ece_binary(p_good, y, 15)), "brier": float(brier_binary(p_good, y))}


def _gather(cfg: CalibrateConfig, name: str, load_model: Callable[[str], Any] | None,
            load_task: Callable[[str], Task] | None) -> dict[str, Any]:
    """Predictor ``name``'s predictions on the split joined with both models' records, grades and costs."""
    from thrifty.evals.routing_metrics import grade_quality
    from thrifty.judge.base import LABEL_INDEX
    from thrifty.route.predict_eval import PredictEvalConfig, gather_predictions
    from thrifty.route.predictors.build import ARTEFACT_FIELD, artefact_of

    key = ARTEFACT_FIELD.get(name)
    pe = PredictEvalConfig(store=str(cfg.store_path), run_dir=str(cfg.run_dir), model=cfg.small, tasks=cfg.tasks,
                           split=cfg.split, n_per_task=cfg.n_per_task, seed=cfg.seed, predictors=[name],
                           judge=cfg.judge, n_threads=cfg.n_threads,
                           **({key: artefact_of(cfg, name)} if key else {}))
    items, counts, versions = gather_predictions(pe, load_model, load_task)
    with RunStore(cfg.store_path) as store:
        rows, large, gens = joined_rows(store, items, cfg.small, cfg.large, cfg.tasks, cfg.split, cfg.judge)
    require_rows(rows, cfg.split)
    probs, parsed = prediction_arrays(rows)
    cost_answer, cost_defer = query_costs(rows, gens, cfg.small, cfg.large, cfg.cost, cfg.prices, predictor=name,
                                          cached_discount=cfg.cached_discount)
    _, cost_large = query_costs(rows, gens, cfg.small, cfg.large, cfg.cost, cfg.prices, with_prediction=False,
                                cached_discount=cfg.cached_discount)
    # the policy's own signal, uncalibrated (calibration is monotone, so a candidate's curve does not depend on it)
    score = calibrated_p_good(Policy(0.0, signal=cfg.signal), probs, parsed)
    return {"rows": rows, "probs": probs, "parsed": parsed, "score": score,
            "y": np.array([LABEL_INDEX[r.gold] for r in rows]),
            "q_small": grade_quality([r.gold for r in rows]),
            "q_large": grade_quality([large[(r.task, r.example)] for r in rows]),
            "cost_answer": cost_answer, "cost_defer": cost_defer, "cost_large": cost_large, "counts": counts,
            "version": versions.get(name)}


def calibrate_router(cfg: CalibrateConfig, load_model: Callable[[str], Any] | None = None,
                     load_task: Callable[[str], Task] | None = None) -> dict[str, Any]:
    """Fit the policy ``cfg`` describes on stored records (choosing the predictor among ``cfg.candidates`` when
    it lists any); write and return the router."""
    from thrifty.route.predictors.build import artefact_of
    from thrifty.route.selection import choose_predictor

    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "calibrate_config.yaml")
    names = list(cfg.candidates) or [cfg.predictor]
    data = {name: _gather(cfg, name, load_model, load_task) for name in names}
    chosen, selection = choose_predictor(data, cfg.select_quality) if len(names) > 1 else (names[0], None)
    d = data[chosen]
    rows, probs, parsed, y = d["rows"], d["probs"], d["parsed"], d["y"]
    q_small, q_large, cost_answer, cost_defer = d["q_small"], d["q_large"], d["cost_answer"], d["cost_defer"]
    policy, fit = _fit_policy(cfg, probs, parsed, y, q_small, q_large, cost_answer, cost_defer)
    fit["counts"] = d["counts"]
    if selection is not None:
        fit["selection"] = selection
    by_task: dict[str, Any] = {}
    if cfg.per_task:
        tasks_of = np.array([r.task for r in rows])
        for t in cfg.tasks:
            sel = tasks_of == t
            if sel.sum() >= cfg.min_task_n:
                pol_t, fit_t = _fit_policy(cfg, probs[sel], parsed[sel], y[sel], q_small[sel], q_large[sel],
                                           cost_answer[sel], cost_defer[sel])
                by_task[t] = {"policy": pol_t.to_dict(), "fit": fit_t}
        fit["per_task_skipped"] = sorted(set(cfg.tasks) - set(by_task))
    router = {
        "v": ROUTER_VERSION, "small": cfg.small, "large": cfg.large, "judge": cfg.judge,
        "predictor": {"name": chosen, "version": d["version"], "artefact": artefact_of(cfg, chosen)},
        "policy": policy.to_dict(),
        **({"task_policies": {t: v["policy"] for t, v in by_task.items()}} if by_task else {}),
        "target": {"kind": cfg.target, "defer_rate": cfg.defer_rate, "quality": cfg.quality, "delta": cfg.delta,
                   "budget": cfg.budget, "cost": cfg.cost, "prices": dict(cfg.prices),
                   "cached_discount": cfg.cached_discount,
                   "price_source": price_source([cfg.small, cfg.large], cfg.prices)},
        "fitted_on": {"split": cfg.split, "tasks": list(cfg.tasks), "n_per_task": cfg.n_per_task},
        "fit": fit,
        **({"task_fit": {t: v["fit"] for t, v in by_task.items()}} if by_task else {}),
    }
    router["version"] = content_hash({k: v for k, v in router.items() if k not in ("fit", "task_fit")})[:12]
    cfg.out_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.out_path.write_text(json.dumps(router, indent=2, default=float) + "\n")
    return router


def _fit_policy(cfg: CalibrateConfig, probs: np.ndarray, parsed: np.ndarray, y: np.ndarray, q_small: np.ndarray,
                q_large: np.ndarray, cost_answer: np.ndarray, cost_defer: np.ndarray) -> tuple[Policy, dict[str, Any]]:
    """Calibrator and threshold for ``cfg``'s target on these rows, and what the fit achieved on them."""
    from thrifty.route import calibrate as cal

    calibrator = _fit_calibrator(cfg.calibration, probs[parsed], y[parsed]) if parsed.sum() >= 2 else Calibrator()
    p_good_raw = probs[:, 1] + probs[:, 2]
    p_good = calibrated_p_good(Policy(0.0, calibrator=calibrator, signal=cfg.signal), probs, parsed)
    fit: dict[str, Any] = {}
    if cfg.target == "defer_rate":
        tau = cal.threshold_for_defer_rate(p_good, cfg.defer_rate)
    elif cfg.target == "quality":
        res = cal.threshold_for_quality(p_good, q_small, q_large, cfg.quality, cfg.delta)
        tau = res.tau
        fit["certified"] = res.certified
    else:
        tau = cal.threshold_for_budget(p_good, cost_answer, cost_defer, cfg.budget, q_small, q_large)
    tau = max(float(tau), 0.0)  # below 0 only unreadable rows (score -1) would change: the policy defers them
    answered = p_good >= tau
    if cfg.target == "quality":
        fit["bound"] = cal.bernstein_upper(cfg.quality * q_large - np.where(answered, q_small, q_large),
                                           cfg.delta, 2.0)
    fit.update({
        "n": len(y), "parse_failures": int((~parsed).sum()), "defer_rate": float(np.mean(~answered)),
        "quality": float(np.where(answered, q_small, q_large).mean()), "quality_small": float(q_small.mean()),
        "quality_large": float(q_large.mean()), "mean_cost": float(np.where(answered, cost_answer, cost_defer).mean()),
        "cost_small_always": float(cost_answer.mean()), "cost_large_always": float(cost_defer.mean()),
        "before": _prob_quality(p_good_raw, y), "after": _prob_quality(np.clip(p_good, 0, 1), y),
    })
    return Policy(tau_good=tau, calibrator=calibrator, signal=cfg.signal), fit






def routed_p_good(router: dict[str, Any], probs: np.ndarray, parsed: np.ndarray,
                  tasks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: calibrated p_good (each row by its task's calibrator when it has one; -1 when unreadable) and
    the threshold that applies to it."""
    p_good, tau = np.empty(len(tasks)), np.empty(len(tasks))
    for t in set(tasks):
        sel = np.array([x == t for x in tasks])
        pol = policy_for(router, t)
        p_good[sel] = calibrated_p_good(pol, probs[sel], parsed[sel])
        tau[sel] = pol.tau_good
    return p_good, tau


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


def router_predictions(router: dict[str, Any], where: str, store: str | Path, run_dir: str | Path,
                       tasks: list[str], split: str, n_per_task: int, seed: int, n_threads: int,
                       load_model: Callable[[str], Any] | None = None,
                       load_task: Callable[[str], Task] | None = None) -> tuple[list[Any], dict[str, Any]]:
    """(items, counts): a router record's predictor predicting its small model's grades on ``split`` (stored
    predictions reused); refuses, in one line, an artefact whose version changed since the router was fitted."""
    from thrifty.route.predict_eval import PredictEvalConfig, gather_predictions
    from thrifty.route.predictors.build import ARTEFACT_FIELD

    pred = router["predictor"]
    key = ARTEFACT_FIELD.get(pred["name"])
    pe = PredictEvalConfig(store=str(store), run_dir=str(run_dir), model=router["small"], tasks=tasks, split=split,
                           n_per_task=n_per_task, seed=seed, predictors=[pred["name"]],
                           judge=router.get("judge", "verifier"), n_threads=n_threads,
                           **({key: pred.get("artefact", "")} if key else {}))
    items, counts, versions = gather_predictions(pe, load_model, load_task)
    if pred.get("version") and versions.get(pred["name"]) != pred["version"]:
        raise ConfigError(f"{where}: fitted with {pred['name']} version {pred['version']}, but the artefact now has "
                          f"version {versions.get(pred['name'])}; calibrate again")
    return items, counts


def calibrated_p_good(policy: Policy, probs: np.ndarray, parsed: np.ndarray) -> np.ndarray:
    """The policy's calibrated signal per row (p_good, or the expected grade); unreadable rows get -1, below any
    threshold (the policy defers them)."""
    return np.where(parsed, policy.score(probs), -1.0)


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
    from thrifty.route.predict_eval import gold_grades

    large_labels = {(t, ex): lab for t in tasks for ex, lab in gold_grades(store, large, t, split, judge).items()}
    gens = {m: stored_generations(store, m, split) for m in (small, large)}
    rows = [it for it in items if large_labels.get((it.task, it.example)) in LABEL_INDEX
            and (it.task, it.example) in gens[small] and (it.task, it.example) in gens[large]]
    return rows, large_labels, gens
