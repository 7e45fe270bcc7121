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
(calibrator + thresholds), the target and what the fit achieved; :mod:`thrifty.route.decide.files` reads it back
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
from thrifty.core.errors import ConfigError
from thrifty.core.store import RunStore
from thrifty.core.types import content_hash
from thrifty.route.decide.files import ROUTER_VERSION, RouterFile
from thrifty.route.decide.policy import CALIBRATIONS, SIGNALS, Calibrator, Policy
from thrifty.route.records.config import ReadsStore, check_records, record_field
from thrifty.route.records.joins import (
    joined_rows,
    prediction_arrays,
    price_source,
    query_costs,
    require_rows,
)
from thrifty.tasks.base import Task

TARGETS = ("defer_rate", "quality", "budget")
COSTS = ("tokens", "latency")


@dataclass
class CalibrateConfig(ReadsStore):
    """What to calibrate: ``small``'s predictor deciding between answering and deferring to ``large``."""

    store: str = record_field("store", "")  # default: <run_dir>/store.sqlite
    run_dir: str = record_field("run_dir", "runs/calibrate")
    small: str = ""
    large: str = ""
    tasks: list[str] = record_field("tasks", [])
    split: str = record_field("split", "val")
    n_per_task: int = record_field("n_per_task", 50)
    seed: int = record_field("seed", 0)
    predictor: str = "zero_shot"  # zero_shot, report_card, probe, sft
    card: str = ""
    probe: str = ""
    adapter: str = ""
    prompt_router: str = ""  # prompt-router file (predictor prompt_router; `route probe fit --position prompt`)
    # predictors to compare on the split: the router keeps the one whose operating curve costs least at
    # select_quality × the large model's quality there (ties: higher APGR); empty: just ``predictor``
    candidates: list[str] = field(default_factory=list)
    select_quality: float = 0.95
    judge: str = record_field("judge", "verifier")
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
    n_threads: int = record_field("n_threads", 1)
    out: str = ""  # default: <run_dir>/router.json

    def __post_init__(self) -> None:
        check_records(self)
        if not self.small or not self.large or self.small == self.large:
            raise ConfigError("small and large must name two different models")
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
    def out_path(self) -> Path:
        return Path(self.out) if self.out else Path(self.run_dir) / "router.json"


def _fit_calibrator(kind: str, probs: np.ndarray, y: np.ndarray) -> Calibrator:
    from thrifty.route.decide.calibrators import fit_isotonic, fit_temperature

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
    from thrifty.route.predictors.build import ARTEFACT_FIELD, artefact_of
    from thrifty.route.records.predictions import PredictEvalConfig, gather_predictions

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
    from thrifty.route.fit.selection import choose_predictor
    from thrifty.route.predictors.build import artefact_of

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
    from thrifty.route.decide import calibrators as cal

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


def routed_p_good(router: RouterFile, probs: np.ndarray, parsed: np.ndarray,
                  tasks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: calibrated p_good (each row by its task's calibrator when it has one; -1 when unreadable) and
    the threshold that applies to it."""
    p_good, tau = np.empty(len(tasks)), np.empty(len(tasks))
    for t in set(tasks):
        sel = np.array([x == t for x in tasks])
        pol = router.policy_for(t)
        p_good[sel] = calibrated_p_good(pol, probs[sel], parsed[sel])
        tau[sel] = pol.tau_good
    return p_good, tau


def calibrated_p_good(policy: Policy, probs: np.ndarray, parsed: np.ndarray) -> np.ndarray:
    """The policy's calibrated signal per row (p_good, or the expected grade); unreadable rows get -1, below any
    threshold (the policy defers them)."""
    return np.where(parsed, policy.score(probs), -1.0)


