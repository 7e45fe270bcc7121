"""Routing quality: every self-prediction router against every baseline, APGR and CPT(80 %) with bootstrap CIs.

Small = Qwen2.5-Coder-0.5B, large = Qwen2.5-Coder-1.5B, verifier judge. The small model answers the train split
(report card and probe learn from it); both models answer the val split (calibration) and the test split
(replay). For each predictor — zero-shot, report card, probe, and the fine-tuned adapter when ``--adapter`` is
given — a router is calibrated on val (temperature, defer rate 50 %) and replayed on test with the baselines
(random, oracle, prompt-only router, P(True), Chow). APGR and CPT(80 %) get 95 % paired bootstrap CIs over test
queries, and the best self-prediction router's APGR is compared with the prompt-only router's (goal: +0.10).

Everything is stored in one run store, so a re-run only reads it. Choose tasks that were not used to tune
prompts with ``--tasks`` (the default is the demo mix, which was).

    python bench/routing_quality.py [--tasks SPEC,...] [--n-train 60] [--n-val 40] [--n-test 60] [--max-tokens 256]
"""

from __future__ import annotations

from _common import DEMO_TASKS, go_offline

go_offline()

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from thrifty.core.store import RunStore  # noqa: E402
from thrifty.evals.bootstrap import bootstrap_ci  # noqa: E402
from thrifty.evals.routing_metrics import apgr, cpt, operating_curve, oracle_curve  # noqa: E402
from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router  # noqa: E402
from thrifty.route.fit.probe_fit import ProbeFitConfig, fit_probe_run  # noqa: E402
from thrifty.route.predictors import build_report_card  # noqa: E402
from thrifty.route.records.collect import CollectConfig, collect  # noqa: E402
from thrifty.route.replay.evaluate import EvalConfig, evaluate_router  # noqa: E402

SMALL, LARGE = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"


def _apgr(qs: np.ndarray, ql: np.ndarray, score: np.ndarray | None) -> float:
    return apgr(oracle_curve(qs, ql) if score is None else operating_curve(qs, ql, score))


def _cpt80(qs: np.ndarray, ql: np.ndarray, score: np.ndarray | None) -> float:
    return cpt(oracle_curve(qs, ql) if score is None else operating_curve(qs, ql, score), 0.8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(DEMO_TASKS), help="comma-separated task specs")
    ap.add_argument("--n-train", type=int, default=60)
    ap.add_argument("--n-val", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=60)
    ap.add_argument("--adapter", help="a fine-tuned adapter of the small model (adds the sft router)")
    ap.add_argument("--max-tokens", type=int, default=256, help="answer budget of both models")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-dir", default="runs/bench_routing")
    args = ap.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    run = Path(args.run_dir)
    store = run / "store.sqlite"
    for split, n, models in (("train", args.n_train, [SMALL]), ("val", args.n_val, [SMALL, LARGE]),
                             ("test", args.n_test, [SMALL, LARGE])):
        collect(CollectConfig(models=models, tasks=tasks, split=split, n_per_task=n, max_tokens=args.max_tokens,
                              n_threads=args.threads, store=str(store), run_dir=str(run / f"collect_{split}")))
    with RunStore(store) as st:
        card_path = build_report_card(st, SMALL, split="train", judge="verifier").save(run / "card.json")
    probe = fit_probe_run(ProbeFitConfig(store=str(store), run_dir=str(run / "probe"), model=SMALL, tasks=tasks,
                                         n_per_task=args.n_train, n_threads=args.threads))
    routers = {"zero_shot": {}, "report_card": {"card": str(card_path)}, "probe": {"probe": probe["probe"]}}
    if args.adapter:
        routers["sft"] = {"adapter": args.adapter}
    results = {}
    for name, artefact in routers.items():
        cal = CalibrateConfig(store=str(store), run_dir=str(run / f"router_{name}"), small=SMALL, large=LARGE,
                              tasks=tasks, n_per_task=args.n_val, predictor=name, target="defer_rate",
                              defer_rate=0.5, n_threads=args.threads, **artefact)
        calibrate_router(cal)
        results[name] = evaluate_router(EvalConfig(router=str(cal.out_path), store=str(store), n_per_task=args.n_test,
                                                   train_n_per_task=args.n_train, n_threads=args.threads,
                                                   run_dir=str(run / f"eval_{name}")))
    first = next(iter(results.values()))
    qs, ql = (np.asarray(first["queries"][k]) for k in ("q_small", "q_large"))
    scores = {f"router:{k}": np.asarray(v["methods"]["router"]["score"]) for k, v in results.items()}
    for base in ("prompt_router", "p_true", "chow"):
        if base in first["methods"]:
            scores[base] = np.asarray(first["methods"][base]["score"])
    scores["oracle"] = None
    rng = np.random.default_rng(0)
    rows = {}
    for name, sc in scores.items():
        arrays = (qs, ql) if sc is None else (qs, ql, sc)
        fn_a = (lambda a, b: _apgr(a, b, None)) if sc is None else _apgr
        fn_c = (lambda a, b: _cpt80(a, b, None)) if sc is None else _cpt80
        rows[name] = {"apgr": tuple(bootstrap_ci(fn_a, *arrays, n_boot=args.n_boot, rng=rng)),
                      "cpt80": tuple(bootstrap_ci(fn_c, *arrays, n_boot=args.n_boot, rng=rng))}
    print(f"\nRouting quality on {len(qs)} test queries ({', '.join(tasks)}); mean quality small {qs.mean():.3f}, "
          f"large {ql.mean():.3f}\n")
    print("| method | APGR [95 % CI] | CPT(80 %) [95 % CI] |\n|---|---|---|")
    print("| random | 0.500 | 80.0 % |")
    for name, r in rows.items():
        a, c = r["apgr"], r["cpt80"]
        print(f"| {name} | {a[0]:.3f} [{a[1]:.3f}, {a[2]:.3f}] | {100 * c[0]:.1f} % [{100 * c[1]:.1f}, "
              f"{100 * c[2]:.1f}] |")
    best = max((k for k in rows if k.startswith("router:")), key=lambda k: rows[k]["apgr"][0])
    if "prompt_router" in scores:
        diff = bootstrap_ci(lambda a, b, x, y: _apgr(a, b, x) - _apgr(a, b, y), qs, ql, scores[best],
                            scores["prompt_router"], n_boot=args.n_boot, rng=rng)
        verdict = "met" if diff.point >= 0.10 else "not met"
        print(f"\nbest self-prediction router {best}: APGR − prompt-only router = {diff.point:+.3f} "
              f"[{diff.lo:+.3f}, {diff.hi:+.3f}] (goal +0.10: {verdict})")
        rows["best_minus_prompt_router"] = {"router": best, "apgr_diff": tuple(diff)}
    rows["config"] = {"tasks": tasks, "n_train_per_task": args.n_train, "n_val_per_task": args.n_val,
                      "n_test_per_task": args.n_test, "max_tokens": args.max_tokens, "n_boot": args.n_boot}
    (run / "routing_quality.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    print(f"written: {run / 'routing_quality.json'} and one report.html per router under {run}/eval_*")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
