"""`thrifty route ladder eval`: replay a ladder over stored test records (no new answers needed).

Every tier's model must have answered the split with the judge's grades in the store (``thrifty route collect``
with all the tiers). Each lower tier's predictor predicts its own grade on every example (stored predictions
reused). Reported: the fitted ladder's quality, cost and share of queries per tier; every always-tier-i policy;
the ladder's curve in normalised cost with its APGR and CPT(50 %/80 %) between always-cheapest and always-top;
and the two-tier router from the cheapest tier straight to the top on the same records, for comparison.

Costs are tokens × each model's price per 1k tokens (the prices recorded in the steps' router files, 1 when
absent): a lower tier pays its prediction prompt whenever consulted and, when it answers, its answer tokens
(the answer continues the prediction's prefix); the top tier pays its whole prompt and answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore
from thrifty.route.decide.files import RouterFile
from thrifty.route.records.config import ReadsStore, check_records, record_field
from thrifty.tasks.base import Task


@dataclass
class LadderEvalConfig(ReadsStore):
    ladder: str = ""
    store: str = record_field("store", "")  # default: <run_dir>/store.sqlite
    run_dir: str = record_field("run_dir", "runs/ladder_eval")
    tasks: list[str] = record_field("tasks", [])  # default: the tasks the first step was fitted on
    split: str = record_field("split", "test")
    n_per_task: int = record_field("n_per_task", 50)
    seed: int = record_field("seed", 0)
    n_threads: int = record_field("n_threads", 1)

    def __post_init__(self) -> None:
        check_records(self, tasks_required=False)
        if not self.ladder:
            raise ConfigError("ladder must name a ladder file (from `thrifty route ladder build`)")


def _step_predictions(cfg: LadderEvalConfig, step: RouterFile, tasks: list[str], load_model: Any,
                      load_task: Any) -> dict[tuple[str, str], dict[str, Any]]:
    from thrifty.route.records.joins import router_predictions

    items, _ = router_predictions(step, f"{cfg.ladder} ({step.small})", cfg.store_path, cfg.run_dir, tasks,
                                  cfg.split, cfg.n_per_task, cfg.seed, cfg.n_threads, load_model, load_task)
    return {(it.task, it.example): it.prediction for it in items}


def evaluate_ladder(cfg: LadderEvalConfig, load_model: Callable[[str], Any] | None = None,
                    load_task: Callable[[str], Task] | None = None) -> dict[str, Any]:
    """Run the replay ``cfg`` describes; writes ladder_eval.{json,md}; returns the result."""
    from thrifty.evals.routing_metrics import cpt, grade_quality, routing_summary
    from thrifty.judge.cache import stored_labels
    from thrifty.route.decide.files import load_ladder
    from thrifty.route.fit.calibrate import routed_p_good
    from thrifty.route.records.joins import prediction_dict_arrays, stored_generations

    ladder = load_ladder(cfg.ladder)
    tiers, steps = list(ladder.tiers), ladder.steps
    tasks = list(cfg.tasks or steps[0].fitted_on.get("tasks", []))
    if not tasks:
        raise ConfigError("no tasks: give tasks, or use routers that record the tasks they were fitted on")
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "ladder_eval_config.yaml")
    preds = [_step_predictions(cfg, s, tasks, load_model, load_task) for s in steps]
    judge = steps[0].judge
    with RunStore(cfg.store_path) as store:
        labels = [stored_labels(store, m, cfg.split, judge) for m in tiers]
        gens = [stored_generations(store, m, cfg.split) for m in tiers]
    keys = sorted(k for k in preds[0] if all(k in p for p in preds) and all(k in g for g in gens)
                  and all(k in lab for lab in labels))
    if len(keys) < 2:
        raise DataError(f"only {len(keys)} {cfg.split}-split examples have every tier's answer, grade and "
                        f"prediction; collect all of {', '.join(tiers)} on the {cfg.split} split with a judge first")
    prices: dict[str, float] = {}
    for s in steps:
        prices.update(s.target.get("prices", {}))
    price = np.array([float(prices.get(m, 1.0)) for m in tiers]) / 1000.0
    quality = np.stack([grade_quality([lab[k] for k in keys]) for lab in labels], axis=1)
    tok = {f: np.array([[float(g[k].get(f, 0)) for g in gens] for k in keys]) for f in ("tokens_in", "tokens_out")}
    always = (tok["tokens_in"] + tok["tokens_out"]) * price
    pred_in = np.array([[float(p[k].get("tokens_in", 0)) for p in preds] for k in keys])
    predict_cost = pred_in * price[:-1]
    answer_cost = np.concatenate([tok["tokens_out"][:, :-1] * price[:-1], always[:, -1:]], axis=1)
    task_of = [k[0] for k in keys]
    fitted = [routed_p_good(s, *prediction_dict_arrays([p[k] for k in keys]), task_of) for s, p in zip(steps, preds, strict=True)]
    p_good = np.stack([pg for pg, _ in fitted], axis=1)
    taus = np.stack([tau for _, tau in fitted], axis=1)
    tier, q, cost = ladder_outcomes(p_good, taus, quality, answer_cost, predict_cost, ladder.max_tries)
    curve = ladder_curve(p_good, quality, answer_cost, predict_cost, always, ladder.max_tries)
    two = ladder_curve(p_good[:, :1], quality[:, [0, -1]], answer_cost[:, [0, -1]], predict_cost[:, :1],
                       always[:, [0, -1]])
    result = {
        "ladder": cfg.ladder, "version": ladder.version, "tiers": tiers, "split": cfg.split, "tasks": tasks,
        "n": len(keys), "prices_per_1k": dict(zip(tiers, (1000 * price).tolist(), strict=True)),
        "fitted": {"quality": float(q.mean()), "cost": float(cost.mean()),
                   "c": float((cost.mean() - curve.cost_weak) / (curve.cost_strong - curve.cost_weak)),
                   "share": {m: float(np.mean(tier == i)) for i, m in enumerate(tiers)},
                   "thresholds": [s.policy.tau_good for s in steps], "max_tries": ladder.max_tries},
        "always": {m: {"quality": float(quality[:, i].mean()), "cost": float(always[:, i].mean())}
                   for i, m in enumerate(tiers)},
        "ladder_curve": {**routing_summary(curve, (0.5, 0.8)), "c": curve.c.tolist(), "r": curve.r.tolist(),
                         "points_in_range": int(len(curve.c) - 2)},
        "two_tier_curve": {"apgr": routing_summary(two, (0.5, 0.8))["apgr"], "cpt_80": cpt(two, 0.8),
                           "note": f"{tiers[0]} → {tiers[-1]} with tier 0's predictor, on the same records"},
    }
    (run_dir / "ladder_eval.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (run_dir / "ladder_eval.md").write_text(format_ladder(result))
    return result


def format_ladder(result: dict[str, Any]) -> str:
    """The replay as markdown: fitted operating point, always-X rows, curve metrics."""
    f, lc, tt = result["fitted"], result["ladder_curve"], result["two_tier_curve"]
    lines = [f"# Ladder replay: {' → '.join(result['tiers'])}", "",
             f"{result['n']} {result['split']}-split queries ({', '.join(result['tasks'])}); ladder version "
             f"{result['version']}.", "", "| policy | quality | cost per query |", "|---|---|---|"]
    lines += [f"| always {m} | {a['quality']:.3f} | {a['cost']:.4f} |" for m, a in result["always"].items()]
    share = ", ".join(f"{m} {100 * s:.0f} %" for m, s in f["share"].items())
    lines += [f"| ladder (fitted thresholds) | {f['quality']:.3f} | {f['cost']:.4f} |", "",
              f"Answered by: {share}.", "",
              f"Fitted ladder at normalised cost {f['c']:.3f} (0 = always {result['tiers'][0]}, 1 = always "
              f"{result['tiers'][-1]}).", "",
              f"Normalised-cost curve (shared defer rate swept; {lc['points_in_range']} of its points cost between "
              f"the two always-X policies, the rest cost more than always-top and are left out): APGR "
              f"{lc['apgr']:.3f}, CPT(50 %) {_pct(lc['cpt_50'])}, CPT(80 %) {_pct(lc['cpt_80'])}.",
              f"Two tiers only ({tt['note']}): APGR {tt['apgr']:.3f}, CPT(80 %) {_pct(tt['cpt_80'])}.", ""]
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "never" if x != x else f"{100 * x:.1f} %"


__all__ = ["LadderEvalConfig", "evaluate_ladder", "format_ladder", "ladder_curve", "ladder_outcomes"]


def ladder_outcomes(p_good: Any, taus: Any, quality: Any, answer_cost: Any, predict_cost: Any,
                    max_tries: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(answering tier, quality, cost) per query.

    ``p_good`` (n, T−1): calibrated p_good of each lower tier (−1 for an unreadable prediction: it defers);
    ``taus`` (T−1,) thresholds, or (n, T−1) when each query has its own (per-task policies); ``quality`` and ``answer_cost`` (n, T): each tier's answer quality and cost
    (for a lower tier, the cost beyond its prediction, whose prefix the answer continues); ``predict_cost``
    (n, T−1): each lower tier's prediction cost, paid whenever that tier is consulted.
    """
    pg, q = np.asarray(p_good, dtype=float), np.asarray(quality, dtype=float)
    ac, pc = np.asarray(answer_cost, dtype=float), np.asarray(predict_cost, dtype=float)
    taus = np.asarray(taus, dtype=float)
    n, lower = pg.shape
    if q.shape != (n, lower + 1) or ac.shape != q.shape or pc.shape != pg.shape or taus.shape not in ((lower,),
                                                                                                     pg.shape):
        raise ConfigError("p_good/predict_cost must be (n, T-1), quality/answer_cost (n, T) and taus (T-1,) or "
                          "(n, T-1)")
    taus = np.broadcast_to(taus, pg.shape)
    tries = lower if max_tries is None else min(lower, max_tries)
    tier = np.full(n, lower)
    for i in reversed(range(tries)):  # the lowest tier that answers wins
        tier = np.where(pg[:, i] >= taus[:, i], i, tier)
    rows = np.arange(n)
    consulted = np.minimum(tier + 1, tries)  # lower tiers whose prediction was paid
    paid = np.where(np.arange(lower)[None, :] < consulted[:, None], pc, 0.0).sum(axis=1)
    return tier, q[rows, tier], ac[rows, tier] + paid


def ladder_curve(p_good: Any, quality: Any, answer_cost: Any, predict_cost: Any, always_cost: Any,
                 max_tries: int | None = None, rates: Sequence[float] | None = None) -> Any:
    """Operating points of the ladder when every lower tier defers the same fraction d of queries (d swept over
    ``rates``), as a RoutingCurve in normalised cost: c = (cost − cost of always-cheapest) / (cost of always-top −
    cost of always-cheapest), with ``always_cost`` (n, T) each tier's plain answer cost. Points outside c ∈ [0, 1]
    are dropped; the always-cheapest and always-top endpoints are added."""
    from thrifty.evals.routing_metrics import RoutingCurve
    from thrifty.route.decide.calibrators import threshold_for_defer_rate

    pg, q, k = np.asarray(p_good, dtype=float), np.asarray(quality, dtype=float), np.asarray(always_cost, float)
    rates = np.linspace(0.0, 1.0, 21) if rates is None else np.asarray(rates, dtype=float)
    lo, hi = float(k[:, 0].mean()), float(k[:, -1].mean())
    if hi <= lo:
        raise ConfigError("the top tier must cost more than the cheapest for a normalised-cost curve")
    pts = []
    for d in rates:
        # never below 0: an unreadable prediction (-1) defers at every operating point, as the policy does
        taus = [max(threshold_for_defer_rate(pg[:, i], float(d)), 0.0) for i in range(pg.shape[1])]
        _, qq, cc = ladder_outcomes(pg, taus, q, answer_cost, predict_cost, max_tries)
        c = (cc.mean() - lo) / (hi - lo)
        if 0.0 <= c <= 1.0:
            pts.append((c, qq.mean(), cc.mean(), d))
    r_w, r_s = float(q[:, 0].mean()), float(q[:, -1].mean())
    pts = sorted([(0.0, r_w, lo, np.nan), *pts, (1.0, r_s, hi, np.nan)])
    c, r, cost, d = (np.array(v) for v in zip(*pts, strict=True))
    return RoutingCurve(d, c, r, cost, r_w, r_s, lo, hi)

