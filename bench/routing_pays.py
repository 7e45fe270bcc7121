"""Does self-prediction pay? Every router and baseline, cross-fitted and priced by one cost function, per workload.

For each workload both bundled models answer every item (greedy; resumable), HumanEval is executed under the OS
sandbox, and the small model's hidden states are read at two positions: the end of the plain conversation (the
plain-prompt probe: the answer continues that prefill, so prediction costs no extra token) and after the
zero-shot instruction + "Grade:" (the instruction probe). Routers, fitted with 5-fold cross-fitting so each item is
a test item once (inner CV picks every hyperparameter on the training folds only):

- thrifty: ``plain_probe``, ``instruction_probe`` (its fixed instruction prefix cached, answer from the plain
  conversation), ``hybrid`` (plain hidden state + sentence embedding in one logistic model), ``hybrid_bow``
  (plain hidden state + the hashed bag-of-words features of the prompt);
- baselines: ``embed_knn`` (cosine kNN over all-MiniLM-L6-v2, k by CV), ``embed_logistic``, ``bow`` (hashed
  bag-of-words prompt router); ``oracle`` and ``random`` for scale.

Costs: :func:`thrifty.evals.cost.query_cost` over each query's measured calls with prices proportional to
active parameters (cached prompt tokens at ``--cached-discount``). The prompt prefix every query shares (chat
template and system message) is priced as cached in every call of every router, as any prefix cache keeps it;
the instruction probe's fixed instruction likewise. A deferral by a hidden-state router pays the small model's
prefill; embedding routers pay the encoder on every query. Writes
``bench/results/routing_pays.json`` (with its ``targets``) and prints a table.

    python bench/routing_pays.py --workloads humaneval,arith
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEMO_TASKS, go_offline

go_offline()
from _pays_data import (  # noqa: E402
    Items,
    Workload,
    answer_features,
    collect_workload,
    embeddings,
    load_items,
    probe_overhead,
    shared_prefix,
    small_features,
)
from thrifty.evals.cost import Usage, default_prices, query_cost  # noqa: E402
from thrifty.evals.routing_metrics import method_summary  # noqa: E402
from thrifty.route.decide.cascade import band_from_quantiles, cascade_costs, cascade_scores  # noqa: E402
from thrifty.route.replay.crossfit import apgr_diff_ci, oof_p_good  # noqa: E402

WORKLOADS = {
    "humaneval": Workload("humaneval", ["humaneval"], {"train": 164, "val": 164, "test": 164}, 384),
    "arith": Workload("arith", DEMO_TASKS, {"test": 40}, 256),
    "gsm": Workload("gsm", ["gym:gsm_symbolic"], {"test": 60}, 384),
}
THRIFTY = ("plain_probe", "instruction_probe", "hybrid", "hybrid_bow", "verify_chow", "verify_probe", "cascade")
CASCADE_STAGE1, CASCADE_VERIFIER, CASCADE_BAND = "hybrid_bow", "verify_probe", 0.5  # fixed before any run
BASELINES = ("embed_knn", "embed_logistic", "bow")
EMBEDDER = "all-minilm-l6-v2"


def _probe_fit_predict(X: np.ndarray, y: np.ndarray, seed: int):
    from thrifty.route.fit.probe_fit import choose_l2
    from thrifty.route.predictors.probe import ProbeClassifier

    y3 = np.where(y, 2, 0)

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        l2, _ = choose_l2(X[train], y3[train], (1e-2, 1e-1, 1.0, 10.0, 100.0), 5, random.Random(seed))
        p = ProbeClassifier(l2=l2).fit(X[train], y3[train]).predict_proba(X[test])
        return 1.0 - p[:, 0]

    return fit_predict


def router_scores(items: Items, seed: int, folds: int) -> dict[str, np.ndarray]:
    """Out-of-fold p_good of every router."""
    from thrifty.route.replay.baselines import PromptRouter
    from thrifty.route.replay.embed_router import KNNRouter, LogisticEmbedRouter

    y = items.q_small > 0.5
    E = items.feats["embedding"]
    rows = [(t, ex.messages()) for t, ex in zip(items.tasks, items.examples, strict=True)]
    hybrid = np.hstack([items.feats["plain"], E])
    hybrid_bow = np.hstack([items.feats["plain"], PromptRouter().features(rows)])
    fits = {
        "plain_probe": _probe_fit_predict(items.feats["plain"], y, seed),
        "instruction_probe": _probe_fit_predict(items.feats["instruction"], y, seed),
        "hybrid": _probe_fit_predict(hybrid, y, seed),
        "hybrid_bow": _probe_fit_predict(hybrid_bow, y, seed),
        "verify_chow": _probe_fit_predict(items.feats["answer_stats"], y, seed),
        "verify_probe": _probe_fit_predict(np.hstack([items.feats["answer_hidden"], items.feats["answer_stats"]]), y,
                                           seed),
        "embed_knn": lambda tr, te: KNNRouter().fit(E[tr], y[tr], seed=seed).p_good(E[te]),
        "embed_logistic": lambda tr, te: LogisticEmbedRouter().fit(E[tr], y[tr], seed=seed).p_good(E[te]),
        "bow": lambda tr, te: PromptRouter().fit([rows[i] for i in tr], y[tr], seed=seed).p_good(
            [rows[i] for i in te]),
    }
    return {name: oof_p_good(fn, y, folds, seed) for name, fn in fits.items()}


def cascade(scores: dict[str, np.ndarray], costs: dict[str, Any], stage1: str, verifier: str,
            frac: float) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """One cascade's score and (cost_answer, cost_defer) per item: ``stage1`` first, ``verifier`` on the middle
    ``frac`` of stage-1 scores (band edges from the scores alone)."""
    band = band_from_quantiles(scores[stage1], frac)
    return (cascade_scores(scores[stage1], scores[verifier], band),
            cascade_costs(scores[stage1], band, *costs[stage1], *costs[verifier]))


def router_costs(items: Items, small: str, large: str, prices: Any, unit: str) -> dict[str, tuple[np.ndarray, ...]]:
    """(cost_answer, cost_defer) per router and item, and always-large's cost, from measured usage. A verifier
    reads the answer it checks: its log-probs come with generation, its hidden state costs one more token on the
    answer's cached context (the measured read time); a query it defers pays both answers."""
    c = items.counts
    out: dict[str, list[list[float]]] = {}
    for i, (gs, gl) in enumerate(zip(items.small, items.large, strict=True)):
        shared = int(c["n_shared"][i])  # template + system message: kept by every backend's prefix cache
        small_plain = Usage(small, int(gs["tokens_in"]), shared, int(gs["tokens_out"]), float(gs["latency_s"]))
        small_prefill = Usage(small, int(gs["tokens_in"]), shared, 0, float(c["t_plain"][i]))
        big = Usage(large, int(gl["tokens_in"]), shared, int(gl["tokens_out"]), float(gl["latency_s"]))
        embed = Usage(EMBEDDER, int(c["n_embed"][i]), 0, 0, float(c["t_embed"][i]))
        predict = Usage(small, int(c["n_instr"][i]), int(c["n_fixed"][i]), 0, float(c["t_instr"][i]))
        read = Usage(small, 1, 0, 0, float(c["t_verify"][i]))
        after = Usage(small, int(gs["tokens_in"]), min(int(c["n_common"][i]), int(gs["tokens_in"])),
                      int(gs["tokens_out"]), float(gs["latency_s"]))
        calls = {
            "plain_probe": ([small_plain], [small_prefill, big]),
            "instruction_probe": ([predict, after], [predict, big]),
            "hybrid": ([small_plain, embed], [small_prefill, big, embed]),
            "hybrid_bow": ([small_plain], [small_prefill, big]),
            "verify_chow": ([small_plain], [small_plain, big]),
            "verify_probe": ([small_plain, read], [small_plain, read, big]),
            "embed_knn": ([small_plain, embed], [big, embed]),
            "embed_logistic": ([small_plain, embed], [big, embed]),
            "bow": ([small_plain], [big]),
            "oracle": ([small_plain], [big]),
            "always_large": ([big], [big]),
        }
        for name, (ans, dfr) in calls.items():
            out.setdefault(name, []).append([query_cost(ans, prices, unit), query_cost(dfr, prices, unit)])
    return {k: tuple(np.array(v).T) for k, v in out.items()}

def evaluate(items: Items, scores: dict[str, np.ndarray], costs: dict[str, Any], n_boot: int,
             seed: int) -> dict[str, Any]:
    large_cost = costs["always_large"][0]
    methods = {"oracle": method_summary(items.q_small, items.q_large, None, *costs["oracle"], large_cost,
                                        curve_points=True)}
    for name, p in scores.items():
        methods[name] = method_summary(items.q_small, items.q_large, p, *costs[name], large_cost, curve_points=True)
    rank = lambda names: max(names, key=lambda n: (np.nan_to_num(methods[n]["saving_at_target"], nan=-9),  # noqa: E731
                                                   methods[n]["apgr"]))
    best, base = rank(THRIFTY), rank(BASELINES)
    ci = apgr_diff_ci(items.q_small, items.q_large, scores[best], scores["embed_knn"], n_boot, seed)
    s_best, s_base = methods[best]["saving_at_target"], methods[base]["saving_at_target"]
    oracle = methods["oracle"]["saving_at_target"]
    sweep = cascade_sweep(items, scores, costs, large_cost)
    return {"n": len(items.examples), "quality_small": float(items.q_small.mean()), "cascade_sweep": sweep,
            "quality_large": float(items.q_large.mean()), "oracle_saving": oracle, "best_router": best,
            "best_router_saving": s_best, "best_baseline": base, "best_baseline_saving": s_base,
            "apgr": {k: v["apgr"] for k, v in methods.items()},
            "apgr_diff_vs_knn": {"router": best, "mean": ci.point, "ci_low": ci.lo, "ci_high": ci.hi},
            "methods": methods}


def cascade_sweep(items: Items, scores: dict[str, np.ndarray], costs: dict[str, Any],
                  large_cost: np.ndarray) -> list[dict[str, Any]]:
    """Diagnostic, read after the fact (never used to pick ``best_router``): the cascade over other stage-1 routers,
    verifiers and band widths, to show how much the pre-registered choice leaves on the table."""
    out = []
    for s1 in ("bow", "hybrid_bow"):
        for s2 in ("plain_probe", "verify_probe", "verify_chow"):
            for frac in (0.25, 0.5, 0.75):
                score, (ans, dfr) = cascade(scores, costs, s1, s2, frac)
                m = method_summary(items.q_small, items.q_large, score, ans, dfr, large_cost)
                out.append({"stage1": s1, "verifier": s2, "band": frac, "apgr": m["apgr"],
                            "saving_at_target": m["saving_at_target"]})
    return out


def _machine() -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cores": os.cpu_count(), "platform": platform.platform(), "load_avg_1m": load}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    ov = result["prediction_overhead"]
    out = [{"id": "overhead_wall_frac", "value": ov["wall_frac"], "goal": 0.02, "direction": "<=",
            "note": f"plain-prompt probe, {ov['n']} answered queries, interleaved with cold answers"},
           {"id": "overhead_extra_uncached_tokens", "value": ov["extra_uncached_prompt_tokens"], "goal": 0,
            "direction": "<=", "note": "summed over the measured answered queries"}]
    for w, r in result["workloads"].items():
        frac = r["best_router_saving"] / r["oracle_saving"] if r["oracle_saving"] > 0 else float("nan")
        out += [{"id": f"saving_vs_oracle_frac.{w}", "value": frac, "goal": 0.5, "direction": ">=",
                 "note": f"{r['best_router']} at 95 % of large quality"},
                {"id": f"saving_minus_best_baseline.{w}", "value": r["best_router_saving"] - r["best_baseline_saving"],
                 "goal": 0.10, "direction": ">=", "note": f"best baseline {r['best_baseline']}"},
                {"id": f"apgr_minus_knn_ci_low.{w}", "value": r["apgr_diff_vs_knn"]["ci_low"], "goal": 0,
                 "direction": ">", "note": f"paired bootstrap, {r['best_router']} vs embed_knn"}]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workloads", default="humaneval,arith")
    ap.add_argument("--small", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--large", default="qwen2.5-coder-1.5b-instruct")
    ap.add_argument("--run-dir", default="runs/pays")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overhead-n", type=int, default=6, help="answered queries timed with and without the probe")
    ap.add_argument("--cached-discount", type=float, default=0.1)
    ap.add_argument("--output-ratio", type=float, default=1.0)
    ap.add_argument("--unit", choices=["tokens", "latency"], default="tokens")
    ap.add_argument("--skip-collect", action="store_true", help="use only what the store holds")
    ap.add_argument("--out", default="bench/results/routing_pays.json")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    prices = default_prices([args.small, args.large, EMBEDDER], args.cached_discount, args.output_ratio)
    result: dict[str, Any] = {"workloads": {}}
    first_items = None
    t0 = time.time()
    for name in args.workloads.split(","):
        w = WORKLOADS[name]
        if not args.skip_collect:
            collect_workload(w, args.small, args.large, run_dir, args.threads)
        items = load_items(w, args.small, args.large, run_dir)
        small_features(items, args.small, run_dir, name, args.threads)
        answer_features(items, args.small, run_dir, name, args.threads)
        shared_prefix(items, args.small, args.threads)
        embeddings(items, run_dir, name, args.threads)
        scores = router_scores(items, args.seed, args.folds)
        costs = router_costs(items, args.small, args.large, prices, args.unit)
        scores["cascade"], costs["cascade"] = cascade(scores, costs, CASCADE_STAGE1, CASCADE_VERIFIER, CASCADE_BAND)
        result["workloads"][name] = evaluate(items, scores, costs, args.n_boot, args.seed)
        plot_workload(name, result["workloads"][name], Path(args.out).with_name(f"routing_pays_{name}.png"))
        first_items = first_items or (items, w)
        print(format_workload(name, result["workloads"][name]), flush=True)
    items, w = first_items
    result["prediction_overhead"] = probe_overhead(items, args.small, args.overhead_n, w.max_tokens, args.threads)
    result.update({"command": " ".join(["python", *sys.argv]), "commit": _commit(), "machine": _machine(),
                   "date": datetime.date.today().isoformat(), "wall_s": round(time.time() - t0, 1),
                   "prices": {k: vars(v) for k, v in prices.items()}, "unit": args.unit,
                   "cached_discount": args.cached_discount, "output_ratio": args.output_ratio})
    result["targets"] = targets(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    ov = result["prediction_overhead"]
    print(f"prediction overhead (plain probe, {ov['n']} answered queries): wall {100 * ov['wall_frac']:+.2f} %, "
          f"extra uncached prompt tokens {ov['extra_uncached_prompt_tokens']}, same answer {ov['same_text']}/{ov['n']}")
    for t in result["targets"]:
        print(f"target {t['id']}: {t['value']:.4g} (goal {t['direction']} {t['goal']})")
    print(f"written to {args.out}")
    return 0


def plot_workload(name: str, r: dict[str, Any], path: Path) -> None:
    """Quality against cost (a fraction of always-large's) for every router; the curves leave the JSON."""
    from thrifty.evals.plots import curve_plot

    large = r["methods"]["oracle"]["cost_large"]
    curves = [(m, np.asarray(v["curve"]["cost"]) / large, v["curve"]["quality"]) for m, v in r["methods"].items()]
    for v in r["methods"].values():
        v.pop("curve")
    curve_plot(curves, path, f"{name}: quality vs cost ({r['n']} items, cross-fitted)",
               "mean cost per query / always-large", "mean quality (pass rate)",
               points=[("small model alone", r["methods"]["oracle"]["cost_small"] / large, r["quality_small"]),
                       ("large model alone", 1.0, r["quality_large"])])


def format_workload(name: str, r: dict[str, Any]) -> str:
    lines = [f"\n## {name}: {r['n']} items; quality small {r['quality_small']:.3f}, large {r['quality_large']:.3f}",
             "| router | APGR | saving at 95 % of large | deferred there | AUROC (bad) |", "|---|---|---|---|---|"]
    for m, v in r["methods"].items():
        lines.append(f"| {m} | {v['apgr']:.3f} | {100 * v['saving_at_target']:.1f} % | "
                     f"{100 * v['defer_at_target']:.0f} % | {v['auroc_bad']:.3f} |")
    d = r["apgr_diff_vs_knn"]
    lines.append(f"best thrifty router {r['best_router']} ({100 * r['best_router_saving']:.1f} %), best baseline "
                 f"{r['best_baseline']} ({100 * r['best_baseline_saving']:.1f} %), oracle {100 * r['oracle_saving']:.1f} %;"
                 f" APGR − kNN {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
