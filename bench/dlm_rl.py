"""Policy optimisation for masked diffusion LMs against an equal-compute SFT control, at tiny scale on CPU.

From one SFT checkpoint per task, every method trains for the same compute — ``--budget-s`` seconds of process CPU
time on one thread (equal wall time on an idle machine, and still fair when other jobs share it; evaluation
excluded) — with each of ``--seeds`` seeds: diffu-GRPO, DiFFPO (fixed sampler), DiFFPO with the joint sampler head
(NFE priced), dTRPO, VRPO, and continued SFT (the control). Opt-in with ``--methods`` (:data:`OPT_IN`): dTRPO and
VRPO on pairs decoded the way evaluation decodes (``pair_decoding: eval``: one token a step, most confident first,
tokens drawn at temperature 1) instead of like rollouts (4 blocks, 2 tokens a step); dTRPO on those pairs with the
exact trajectory ratio (in one block of 16 one-token steps dTRPO's estimate scores one token per answer); and the
exact ratio on the rollout pairs, its control. Printed per task and method: held-out solve rate and reward (mean ±
sd over seeds), mean NFE of the evaluation sampler, optimiser steps, CPU seconds and forward passes (sequence rows)
per step, and the pairs' rewards; then the goals: each RL method ≥ control + 10 points on some task; DiFFPO's joint
sampler at ≥ the fixed-sampler accuracy with ≥ 30 % fewer NFEs; dTRPO ≥ 5× cheaper per preference pair than
trajectory replay (measured on the same pairs, forward and backward).

    python bench/dlm_rl.py --task sudoku4=runs/dlm_sudoku4_limited [--task NAME=RUN ...] [--seeds 3]
        [--budget-s 90] [--jobs 2] [--out runs/bench_dlm_rl]

A run that finished with the same budget, evaluation size and pair prompts is reused (its ``result.json``), so tasks
and methods can be added later.
"""

from __future__ import annotations

import os

for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_k, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

METHODS = {
    "diffu-GRPO": {"algo": "diffu_grpo"},
    "DiFFPO": {"algo": "diffpo"},
    "DiFFPO + joint sampler": {"algo": "diffpo", "joint_sampler": True, "nfe_price": 0.2},
    "dTRPO": {"algo": "dtrpo"},
    "VRPO": {"algo": "vrpo", "dpo_beta": 0.1},  # the paper's β, as these results were run (validation later chose 3)
    "dTRPO eval-decoded pairs": {"algo": "dtrpo", "pair_decoding": "eval"},
    "VRPO eval-decoded pairs": {"algo": "vrpo", "pair_decoding": "eval", "dpo_beta": 0.1},
    "dTRPO eval-decoded pairs replay": {"algo": "dtrpo", "pair_decoding": "eval", "pref_estimator": "replay"},
    "dTRPO replay": {"algo": "dtrpo", "pref_estimator": "replay"},
    "SFT control": {"algo": "sft", "lr": 1e-3, "grad_clip": 1.0},
}

OPT_IN = ("dTRPO eval-decoded pairs", "VRPO eval-decoded pairs", "dTRPO eval-decoded pairs replay", "dTRPO replay")


def _run(job: tuple[str, str, str, int, float, int, str, int]) -> dict:
    import torch

    from thrifty.dlm.rl.config import DlmRLConfig
    from thrifty.dlm.rl.loop import train_rl

    task, init_run, method, seed, budget, n_eval, out, pair_prompts = job
    torch.set_num_threads(1)
    cfg = DlmRLConfig(init_run=init_run, run_dir=f"{out}/{task}/{method.replace(' ', '_')}/seed{seed}", seed=seed,
                      steps=10**6, max_cpu_s=budget, eval_every=10**6, checkpoint_every=10**6, n_eval=n_eval,
                      pair_prompts=pair_prompts, **METHODS[method])
    done = Path(cfg.run_dir) / "result.json"
    if done.is_file():  # finished by an earlier invocation with the same budget: reuse it
        old = json.loads(done.read_text())
        if old.get("budget_s") == budget and old.get("n_eval") == n_eval and \
                old.get("pair_prompts", pair_prompts) == pair_prompts:
            return old
    res = train_rl(cfg, progress=False)
    first = json.loads((Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()[0])
    out_row = {"task": task, "method": method, "seed": seed, "start_solved": first["eval_solved"],
               "start_reward": first["eval_reward"], "budget_s": budget, "n_eval": n_eval, "pair_prompts": pair_prompts,
               **{k: first[k] for k in ("pairs", "sample_reward", "chosen_reward", "rejected_reward") if k in first},
               **{k: v for k, v in res.items() if k != "config"}}
    done.write_text(json.dumps(out_row) + "\n")
    return out_row


def _pair_cost(init_run: str, pairs_file: str, n: int = 32, repeat: int = 3) -> dict[str, float]:
    """Seconds and forward rows per preference pair (forward + backward) for dTRPO's block scores and replay."""
    import copy

    import torch

    from dlm_pair_cost import pair_cost
    from thrifty.dlm.rl.pairs import load_pairs
    from thrifty.dlm.rl.rollout import rollout_shape
    from thrifty.dlm.run import load_model

    torch.set_num_threads(1)
    _, task, policy = load_model(init_run)
    ref = copy.deepcopy(policy).requires_grad_(False)
    pairs = load_pairs(pairs_file)
    pairs = pairs.take(torch.arange(min(n, len(pairs))))
    cost = pair_cost(policy, ref, task, pairs, rollout_shape(task.answer_len)[0], repeat)
    return {"block_s": cost["block"][0] / 1000, "block_rows": cost["block"][1],
            "replay_s": cost["replay"][0] / 1000, "replay_rows": cost["replay"][1]}


def _ms(vals: list[float]) -> str:
    return f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals) if len(vals) > 1 else 0.0:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", action="append", required=True, help="NAME=SFT_RUN_DIR (repeatable)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=90.0)
    ap.add_argument("--n-eval", type=int, default=256)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--pair-prompts", type=int, default=512, help="prompts whose samples make dTRPO/VRPO's pairs")
    ap.add_argument("--methods", default=",".join(m for m in METHODS if m not in OPT_IN),
                    help="comma-separated subset of: " + ", ".join(METHODS))
    ap.add_argument("--out", default="runs/bench_dlm_rl")
    args = ap.parse_args(argv)
    tasks = dict(t.split("=", 1) for t in args.task)
    methods = [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods: {', '.join(unknown)}")
    jobs = [(t, run, m, s, args.budget_s, args.n_eval, args.out, args.pair_prompts) for t, run in tasks.items()
            for s in range(args.seeds) for m in methods]
    t0 = time.perf_counter()
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for res in pool.map(_run, jobs):
            results.append(res)
            print(f"  {res['task']} / {res['method']} / seed {res['seed']}: solved {res['eval_solved']:.3f} "
                  f"(start {res['start_solved']:.3f}) after {res['step']} steps", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{len(jobs)} runs in {time.perf_counter() - t0:.0f} s ({args.jobs} at a time, 1 thread each); training "
          f"budget {args.budget_s:.0f} s per run; {args.n_eval} held-out examples per evaluation\n")
    print("| task | method | solved | reward | eval NFE | steps | CPU s / step | forward rows / step |")
    print("|---|---|---|---|---|---|---|---|")
    table: dict[tuple[str, str], dict[str, float]] = {}
    for task in tasks:
        rows = [r for r in results if r["task"] == task]
        print(f"| {task} | SFT start | {_ms([r['start_solved'] for r in rows[:1]])} | "
              f"{_ms([r['start_reward'] for r in rows[:1]])} | — | — | — | — |")
        for m in methods:
            rs = [r for r in rows if r["method"] == m]
            solved = [r["eval_solved"] for r in rs]
            table[task, m] = {"solved": statistics.mean(solved)}
            per_step = statistics.mean(r["cpu_s"] / max(1, r["step"]) for r in rs)
            fwd = statistics.mean(r["forward"].get("rows", 0) / max(1, r["step"]) for r in rs)
            print(f"| {task} | {m} | {_ms(solved)} | {_ms([r['eval_reward'] for r in rs])} | "
                  f"{statistics.mean(r['eval_nfe'] for r in rs):.1f} | {statistics.mean(r['step'] for r in rs):.0f} | "
                  f"{per_step:.2f} | {fwd:.0f} |")
            if "eval_adaptive_solved" in rs[0]:
                table[task, m + " (adaptive)"] = {"solved": statistics.mean(r["eval_adaptive_solved"] for r in rs),
                                                  "nfe": statistics.mean(r["eval_adaptive_nfe"] for r in rs)}
                print(f"| {task} | {m}, its own γ | {_ms([r['eval_adaptive_solved'] for r in rs])} | "
                      f"{_ms([r['eval_adaptive_reward'] for r in rs])} | "
                      f"{statistics.mean(r['eval_adaptive_nfe'] for r in rs):.1f} | — | — | — |")
    for task in tasks:
        for m in methods:
            rs = [r for r in results if r["task"] == task and r["method"] == m and "pairs" in r]
            if rs:
                print(f"- {task} / {m}: {statistics.mean(r['pairs'] for r in rs):.0f} pairs from "
                      f"{rs[0]['pair_prompts']} prompts; sample reward {_ms([r['sample_reward'] for r in rs])}, chosen "
                      f"{_ms([r['chosen_reward'] for r in rs])}, rejected {_ms([r['rejected_reward'] for r in rs])}")
    print("\nGoals")
    for m in methods:
        if m == "SFT control" or "SFT control" not in methods:
            continue
        gains = {t: 100 * (table[t, m]["solved"] - table[t, "SFT control"]["solved"]) for t in tasks}
        best_t = max(gains, key=gains.get)
        print(f"- {m} vs the SFT control: best {gains[best_t]:+.1f} points ({best_t}) — goal +10: "
              f"{'met' if gains[best_t] >= 10 else 'not met'}")
    joint = "DiFFPO + joint sampler"
    for t in tasks:
        if (t, joint + " (adaptive)") in table and (t, "DiFFPO") in table:
            a, f = table[t, joint + " (adaptive)"], table[t, "DiFFPO"]
            fixed_nfe = float(json.loads(Path(f"{args.out}/{t}/DiFFPO/seed0/metrics.jsonl").read_text()
                                         .splitlines()[-1])["eval_nfe"])
            saved = 1 - a["nfe"] / fixed_nfe
            print(f"- {t}: joint sampler solves {a['solved']:.3f} at {a['nfe']:.1f} NFE vs fixed-sampler DiFFPO "
                  f"{f['solved']:.3f} at {fixed_nfe:.0f} NFE ({100 * saved:.0f} % fewer) — goal (≥ accuracy, ≥ 30 % "
                  f"fewer): {'met' if a['solved'] >= f['solved'] and saved >= 0.3 else 'not met'}")
    for t, run in tasks.items():
        pairs = Path(f"{args.out}/{t}/dTRPO/seed0/pairs.safetensors")
        if pairs.is_file():
            c = _pair_cost(run, str(pairs))
            ratio = c["replay_s"] / c["block_s"]
            print(f"- {t}: per pair, dTRPO {1000 * c['block_s']:.2f} ms / {c['block_rows']:.0f} forward rows vs "
                  f"trajectory replay {1000 * c['replay_s']:.2f} ms / {c['replay_rows']:.0f} rows: {ratio:.1f}× "
                  f"cheaper in time, {c['replay_rows'] / c['block_rows']:.1f}× in rows — goal ≥ 5×: "
                  f"{'met' if ratio >= 5 else 'not met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
