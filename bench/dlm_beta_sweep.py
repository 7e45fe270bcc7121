"""Tune the DPO β of dTRPO and VRPO on a validation split, then report them on test: self pairs, gold pairs, and
dTRPO's trajectory terms (tokens vs tokens+positions), from one under-trained SFT checkpoint.

Every arm trains a fixed number of optimiser steps (``--steps``) on one thread from the same start, on pairs built
once per seed from the start model (512 prompts × 8 rollout samples; best vs worst, or — ``gold`` — the reference
answer vs the worst, its steps in the reference's confidence order, :func:`thrifty.dlm.rl.pairs.gold_step_map`), so
arms of one seed differ only in what they vary. Validation: 256 puzzles of the held-out grids drawn from their own
seed stream and disjoint from the first 1,024 test puzzles (:func:`thrifty.dlm.sudoku.val_puzzles`); test: the
RL loop's held-out set (256 test puzzles). β is chosen per algorithm by mean validation solve rate; test numbers are
reported for every arm but never used to choose. Stages run in order — (1) dTRPO β sweep, (2) at dTRPO's chosen β:
``trajectory_terms: tokens``, gold pairs and lr 3e-5, (3) VRPO β sweep, (4) gold pairs at the other β — and the run
stops starting new ones after ``--deadline-min`` wall minutes; what did not run is listed in the JSON.

    python bench/dlm_beta_sweep.py --init-run runs/dlm_sudoku4_limited [--seeds 3] [--steps 150]
        [--betas 0.1,0.3,1,3] [--deadline-min 60] [--out runs/bench_dlm_beta] [--json bench/results/dlm_beta_sweep.json]

Finished runs (``result.json`` with the same settings) are reused.
"""

from __future__ import annotations

import os

for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_k, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from _common import mean_sd, sudoku_val_test  # noqa: E402
from thrifty.core.checkpoint import load_weights  # noqa: E402
from thrifty.dlm.rl.config import DlmRLConfig  # noqa: E402
from thrifty.dlm.rl.loop import train_rl  # noqa: E402
from thrifty.dlm.rl.pairs import build_pair_sets, decoding_block_len, pair_sampler, save_pairs  # noqa: E402
from thrifty.dlm.run import default_sampler, evaluate, load_model  # noqa: E402
from thrifty.dlm.tasks import DlmExample  # noqa: E402

LR_ALT = 3e-5


def _arm(algo: str, beta: float, chosen: str = "self", terms: str = "auto", lr: float = 1e-4) -> dict:
    return {"algo": algo, "dpo_beta": beta, "pair_chosen": chosen, "trajectory_terms": terms, "lr": lr}


def _name(a: dict) -> str:
    return f"{a['algo']}_{a['pair_chosen']}_{a['trajectory_terms'].replace('+', '_')}_b{a['dpo_beta']:g}_lr{a['lr']:g}"


def _pairs(init_run: str, seed: int, out: Path, n_prompts: int) -> dict:
    """Self and gold pairs of one seed from the start model (the loop's own recipe for self pairs)."""
    meta = out / f"pairs_seed{seed}.json"
    if meta.is_file():
        return json.loads(meta.read_text())
    torch.set_num_threads(1)
    _, task, model = load_model(init_run)
    sampler = pair_sampler(task, "rollout", 1.0)
    c0 = time.process_time()
    sets = build_pair_sets(model, task, task.examples("train", n_prompts, seed=seed + 7), 8, sampler,
                           torch.Generator().manual_seed(seed), 0.0, decoding_block_len(sampler, task), 1.0,
                           chosen=("self", "gold"))
    info = {"cpu_s": time.process_time() - c0}
    for c, (pairs, stats) in sets.items():
        info[c] = {"file": str(save_pairs(pairs, out / f"pairs_seed{seed}_{c}.safetensors")), **stats}
    meta.write_text(json.dumps(info, indent=1) + "\n")
    return info


def _run(arm: dict, seed: int, args: argparse.Namespace, pairs: dict, val: list[DlmExample]) -> dict:
    run_dir = Path(args.out) / _name(arm) / f"seed{seed}"
    done = run_dir / "result.json"
    if done.is_file():
        old = json.loads(done.read_text())
        if old.get("steps_asked") == args.steps and old.get("n_eval") == args.n_eval:
            return old
    cfg = DlmRLConfig(init_run=args.init_run, run_dir=str(run_dir), seed=seed, steps=args.steps, eval_every=10**6,
                      checkpoint_every=10**6, n_eval=args.n_eval, pairs_file=pairs[arm["pair_chosen"]]["file"], **arm)
    res = train_rl(cfg, progress=False)
    _, task, model = load_model(args.init_run)
    load_weights(run_dir, {"model": model})
    v = evaluate(model, task, val, default_sampler(task))
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    row = {**arm, "seed": seed, "steps_asked": args.steps, "n_eval": args.n_eval, "step": res["step"],
           "cpu_s": res.get("cpu_s", last.get("cpu_s")), "test_solved": res["eval_solved"],
           "test_reward": res["eval_reward"], "val_solved": v["solved"], "val_reward": v["reward"],
           "fit_loss": last.get("loss"), "fit_pref_acc": last.get("pref_acc"), "fit_margin": last.get("margin")}
    done.write_text(json.dumps(row) + "\n")
    return row


def _summary(rows: list[dict]) -> list[dict]:
    arms: dict[str, list[dict]] = {}
    for r in rows:
        arms.setdefault(_name(r), []).append(r)
    out = []
    for name, rs in arms.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        out.append({"arm": name, **{k: rs[0][k] for k in ("algo", "pair_chosen", "trajectory_terms", "dpo_beta", "lr")},
                    "seeds": [r["seed"] for r in rs], "steps": statistics.mean(r["step"] for r in rs),
                    "cpu_s_per_run": statistics.mean(r["cpu_s"] for r in rs),
                    **{k: mean_sd([r[k] for r in rs]) for k in ("val_solved", "val_reward", "test_solved", "test_reward")},
                    "test_solved_per_seed": [r["test_solved"] for r in rs],
                    "val_solved_per_seed": [r["val_solved"] for r in rs],
                    "fit_pref_acc": statistics.mean(r["fit_pref_acc"] or 0 for r in rs)})
    return out


def _choose(summary: list[dict], algo: str, seeds: int) -> float | None:
    """β with the best mean validation solve rate among the algorithm's self-pair, default-terms arms with >= 2
    seeds, compared on the seeds they all have."""
    cand = [s for s in summary if s["algo"] == algo and s["pair_chosen"] == "self" and s["trajectory_terms"] == "auto"
            and s["lr"] == 1e-4 and len(s["seeds"]) >= min(2, seeds)]
    if not cand:
        return None
    common = set.intersection(*(set(s["seeds"]) for s in cand))

    def val(s: dict) -> float:
        return statistics.mean(v for sd, v in zip(s["seeds"], s["val_solved_per_seed"], strict=True) if sd in common)

    return max(cand, key=val)["dpo_beta"] if common else None


def _write(args: argparse.Namespace, rows: list[dict], start: dict, pairs: dict, skipped: list[str], t0: float) -> dict:
    summary = _summary(rows)
    chosen = {a: _choose(summary, a, args.seeds) for a in ("dtrpo", "vrpo")}
    tuned = next((s for s in summary if chosen["dtrpo"] is not None and s["arm"] == _name(_arm("dtrpo", chosen["dtrpo"]))), None)
    value = tuned["test_solved"]["mean"] - start["test_solved"] if tuned else None
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    data = {"command": " ".join(sys.argv), "commit": commit, "date": datetime.date.today().isoformat(),
            "machine": {"cores": os.cpu_count(), "threads_per_run": 1, "other_jobs": "yes (shared 2-core machine)",
                        "load_avg_at_end": os.getloadavg()[0]},
            "wall_s": time.perf_counter() - t0, "steps_per_run": args.steps, "n_val": args.n_val, "n_test": args.n_eval,
            "validation": "256 puzzles of the held-out grids (8 blanks), own seed stream, disjoint from the first "
                          "1,024 test puzzles; β chosen on it, never on test",
            "start": start, "pairs": pairs, "chosen_beta": chosen,
            "choice_rule": "best mean validation solve rate over the seeds every self-pair β arm (>= 2 seeds) has", "arms": summary, "runs": rows,
            "not_run": skipped,
            "targets": [{"id": "dtrpo_minus_start", "value": value, "goal": 0.05, "direction": ">=",
                         "note": f"dTRPO self pairs at the validation-chosen β {chosen['dtrpo']}, test solve rate "
                                 f"(mean of {tuned['val_solved']['n'] if tuned else 0} seeds) minus the start's, {args.steps} steps"}]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    return data


def _table(data: dict) -> None:
    s0 = data["start"]
    print("\n| arm | β | lr | val solved | val reward | test solved | test reward | steps | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| SFT start | — | — | {s0['val_solved']:.3f} | {s0['val_reward']:.3f} | {s0['test_solved']:.3f} | "
          f"{s0['test_reward']:.3f} | — | — |")
    for s in data["arms"]:
        f = {k: f"{s[k]['mean']:.3f} ± {s[k]['sd']:.3f}" for k in ("val_solved", "val_reward", "test_solved",
                                                                   "test_reward")}
        print(f"| {s['algo']} {s['pair_chosen']} {s['trajectory_terms']} | {s['dpo_beta']:g} | {s['lr']:g} | "
              f"{f['val_solved']} | {f['val_reward']} | {f['test_solved']} | {f['test_reward']} | {s['steps']:.0f} | "
              f"{s['cpu_s_per_run']:.0f} |")
    print(f"\nchosen β (validation): {data['chosen_beta']}")
    for t in data["targets"]:
        print(f"target {t['id']}: {t['value']} (goal {t['direction']} {t['goal']})")
    if data["not_run"]:
        print(f"not run: {', '.join(data['not_run'])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init-run", default="runs/dlm_sudoku4_limited")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--betas", default="0.1,0.3,1,3")
    ap.add_argument("--n-eval", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=256)
    ap.add_argument("--pair-prompts", type=int, default=512)
    ap.add_argument("--deadline-min", type=float, default=60.0, help="start no run after this many wall minutes")
    ap.add_argument("--skip-vrpo", action="store_true")
    ap.add_argument("--drop", action="append", default=[], help="ARM/seedN to leave out (listed in not_run)")
    ap.add_argument("--out", default="runs/bench_dlm_beta")
    ap.add_argument("--json", default="bench/results/dlm_beta_sweep.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, out = time.perf_counter(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    betas = [float(b) for b in args.betas.split(",")]
    seeds = range(args.seeds)
    val, test = sudoku_val_test(args.init_run, args.n_eval, args.n_val)
    start_file = out / f"start_{args.n_val}_{args.n_eval}.json"
    if not start_file.is_file():
        _, task, model = load_model(args.init_run)
        sv, st = evaluate(model, task, val, default_sampler(task)), evaluate(model, task, test, default_sampler(task))
        start_file.write_text(json.dumps({"val_solved": sv["solved"], "val_reward": sv["reward"],
                                          "test_solved": st["solved"], "test_reward": st["reward"]}) + "\n")
    start = json.loads(start_file.read_text())
    print(f"start: val solved {start['val_solved']:.3f}, test solved {start['test_solved']:.3f}", flush=True)
    pairs = {s: _pairs(args.init_run, s, out, args.pair_prompts) for s in seeds}
    for s, p in pairs.items():
        print(f"seed {s} pairs: self {p['self']['pairs']:.0f} (chosen {p['self']['chosen_reward']:.2f} / rejected "
              f"{p['self']['rejected_reward']:.2f}), gold {p['gold']['pairs']:.0f}; {p['cpu_s']:.0f} CPU-s", flush=True)
    rows: list[dict] = []
    skipped: list[str] = []

    def do(arms: list[dict]) -> None:
        for seed in seeds:
            for a in arms:
                if f"{_name(a)}/seed{seed}" in args.drop:
                    skipped.append(f"{_name(a)}/seed{seed} (dropped to save time)")
                    continue
                if (time.perf_counter() - t0) / 60 > args.deadline_min:
                    skipped.append(f"{_name(a)}/seed{seed} (deadline)")
                    continue
                r = _run(a, seed, args, pairs[seed], val)
                rows.append(r)
                print(f"  {_name(a)} seed {seed}: val {r['val_solved']:.3f} test {r['test_solved']:.3f} "
                      f"({r['step']} steps, {r['cpu_s']:.0f} CPU-s, {time.perf_counter() - t0:.0f} s wall)", flush=True)
                _write(args, rows, start, pairs, skipped, t0)

    do([_arm("dtrpo", b) for b in betas])
    bd = _choose(_summary(rows), "dtrpo", args.seeds) or 1.0
    do([_arm("dtrpo", bd, terms="tokens"), _arm("dtrpo", bd, chosen="gold")])
    if not args.skip_vrpo:
        do([_arm("vrpo", b) for b in betas])
    do([_arm("dtrpo", bd, lr=LR_ALT)] + [_arm("dtrpo", b, chosen="gold") for b in betas if b != bd])
    _table(_write(args, rows, start, pairs, skipped, t0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
