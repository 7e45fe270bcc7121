"""Benchmark self-prediction: zero-shot vs report card vs fine-tuned (LoRA) vs hidden-state probe.

The small model (default Qwen2.5-Coder-0.5B) answers the train and test splits of three reasoning-gym tasks (the
demo mix); the verifier judge grades every answer. From the train grades it builds a report card, fits the
probe and fine-tunes a LoRA adapter; then every predictor predicts, before answering, the grade of the model's
own test answers, and the predictions are scored against the judge's grades (3-class accuracy with 95%
bootstrap CIs beside the majority-class baseline, macro-F1, AUROC of p(bad), ECE and Brier of p(not bad), gain
over zero-shot). With ``--rubric-n N`` the first N test items per task are also graded by an LLM rubric judge
(the large model) and the same predictors — all trained on verifier labels — are scored against it too.

Every step keeps its records in one run store (and the adapter/probe in the run dir), so a re-run only prints.
Wall time and peak memory of fine-tuning and probe fitting are printed.

    python bench/rpra_predict.py [--n-train 100] [--n-test 70] [--rubric-n 0] [--run-dir runs/bench_rpra]
"""

from __future__ import annotations

from _common import DEMO_TASKS, go_offline

go_offline()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from thrifty.core.store import RunStore  # noqa: E402
from thrifty.route.fit.probe_fit import ProbeFitConfig, fit_probe_run  # noqa: E402
from thrifty.route.fit.sft import SFTConfig, train_sft  # noqa: E402
from thrifty.route.predictors import build_report_card  # noqa: E402
from thrifty.route.records.collect import CollectConfig, collect  # noqa: E402
from thrifty.route.records.predictions import PredictEvalConfig  # noqa: E402
from thrifty.route.replay.predict_eval import format_markdown, predict_eval  # noqa: E402

TASKS = DEMO_TASKS
PAPER = "report cards and fine-tuning lift small models' exact accuracy far above zero-shot (up to +55 / +52 points)"


def _collect(args: argparse.Namespace, store: Path, split: str, n: int, judge: str = "verifier",
             judge_model: str = "", models: list[str] | None = None) -> None:
    cfg = CollectConfig(models=models or [args.small], tasks=TASKS, split=split, n_per_task=n, max_tokens=256,
                        n_threads=args.threads, judge=judge, judge_model=judge_model, store=str(store),
                        run_dir=str(Path(args.run_dir) / f"collect_{split}_{judge}"))
    res = collect(cfg)
    print(f"collect {split} ({judge}): {res.new_generations} new, {res.reused_generations} stored, "
          f"{res.failures} failed", flush=True)


def _sft(args: argparse.Namespace, store: Path) -> dict:
    cfg = SFTConfig(store=str(store), run_dir=str(Path(args.run_dir) / "sft"), model=args.small, tasks=TASKS,
                    n_per_task=args.n_train, learning_rate=args.sft_lr, epochs=1.0, max_steps=args.sft_steps,
                    batch_size=8, n_threads=args.threads)
    meta_path = cfg.out_dir / "thrifty_sft.json"
    if meta_path.is_file():  # reuse an adapter trained with these very settings
        meta = json.loads(meta_path.read_text())
        same = meta.get("hyperparameters", {}).get("learning_rate") == cfg.learning_rate and \
            meta.get("hyperparameters", {}).get("max_steps") == cfg.max_steps and \
            meta.get("tasks") == TASKS and meta.get("n_items", 0) > 0
        if same:
            print(f"sft: reusing adapter {meta['version']} (trained in {meta['wall_s']:.0f} s)", flush=True)
            return meta
    return train_sft(cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", default="qwen2.5-coder-0.5b-instruct", help="the model that predicts its own grade")
    ap.add_argument("--large", default="qwen2.5-coder-1.5b-instruct", help="the rubric judge for --rubric-n")
    ap.add_argument("--n-train", type=int, default=100, help="train examples per task (3 tasks)")
    ap.add_argument("--n-test", type=int, default=70, help="test examples per task (3 tasks)")
    ap.add_argument("--rubric-n", type=int, default=0, help="test examples per task also graded by the rubric judge")
    ap.add_argument("--sft-lr", type=float, default=5e-4)
    ap.add_argument("--sft-steps", type=int, default=0, help="0 = one epoch of the class-balanced train set")
    ap.add_argument("--predictors", default="zero_shot,report_card,probe,sft", help="comma-separated subset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-dir", default="runs/bench_rpra")
    args = ap.parse_args(argv)
    run = Path(args.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    store = run / "store.sqlite"
    t0 = time.perf_counter()
    _collect(args, store, "train", args.n_train)
    _collect(args, store, "test", args.n_test)
    with RunStore(store) as st:
        card = build_report_card(st, args.small, split="train", judge="verifier")
    card_path = card.save(run / "card.json")
    predictors = [p for p in args.predictors.split(",") if p]
    probe = sft = None
    if "probe" in predictors:
        probe = fit_probe_run(ProbeFitConfig(store=str(store), run_dir=str(run / "probe"), model=args.small,
                                             tasks=TASKS, n_per_task=args.n_train, n_threads=args.threads))
    if "sft" in predictors:
        sft = _sft(args, store)
    adapter = str(run / "sft" / "adapter")
    common = {"store": str(store), "model": args.small, "tasks": TASKS, "split": "test", "predictors": predictors,
              "card": str(card_path), "probe": probe["probe"] if probe else "", "adapter": adapter, "n_threads": args.threads}
    results = {"verifier": predict_eval(PredictEvalConfig(run_dir=str(run / "eval_verifier"),
                                                          n_per_task=args.n_test, **common))}
    if args.rubric_n > 0:
        _collect(args, store, "test", args.rubric_n, judge="rubric", judge_model=args.large)
        results["rubric"] = predict_eval(PredictEvalConfig(run_dir=str(run / "eval_rubric"), judge="rubric",
                                                           n_per_task=args.rubric_n, **common))
    for res in results.values():
        print()
        print(format_markdown(res))
    print(f"\nPaper: {PAPER}.")
    if sft:
        print(f"Fine-tuning: {sft['n_items']} items ({sft['labels']}), {sft['n_trained']} trained, "
              f"{len(sft['losses'])} steps, loss {sft['losses'][0]:.3f} -> {sft['losses'][-1]:.3f}, "
              f"wall {sft['wall_s']:.0f} s, peak RSS {sft['peak_rss_mb']:.0f} MB (CPU, {args.threads} thread(s))")
    if probe:
        print(f"Probe: {probe['n']} items, dim {probe['dim']}, l2 {probe['l2']:g}, features "
              f"{probe['features_s']:.0f} s{' (cached)' if probe['features_cached'] else ''}, fit "
              f"{probe['fit_s']:.2f} s, peak RSS {probe['peak_rss_mb']:.0f} MB (process peak)")
    summary = {"results": results, "sft": sft, "probe": probe, "card": card.version,
               "wall_s": round(time.perf_counter() - t0, 1)}
    (run / "bench.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"written: {run / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
