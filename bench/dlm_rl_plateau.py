"""RL past the SFT plateau: when demonstrations run out but the verifier does not, does RL add what more SFT cannot?

4×4 Sudoku with only ``--n-demos`` (256) training solutions. Stage 1 trains the small model on those demonstrations
in chunks of ``--chunk`` steps, scoring each chunk's checkpoint on a validation split (held-out puzzles of the test
grids, disjoint from the test puzzles: :func:`thrifty.dlm.sudoku.val_puzzles`), and stops when validation has not
improved for ``--patience`` chunks; the best checkpoint is *the plateau*. Stage 2 gives every arm the same compute
from the plateau — ``--budget-s`` seconds of process CPU time on one thread (pair building included, evaluation
excluded) — with ``--seeds`` seeds each:

- **more SFT** on the same demonstrations (the control: the supervised data has run out);
- **diffu-GRPO**, **DiFFPO** (fixed sampler) and **DiFFPO + joint sampler** (λ 0.2): prompts from 5,000 training
  puzzles, rewarded by the verifier only (no solutions are read);
- **dTRPO** at the validation-tuned β 3 (``bench/dlm_beta_sweep.py``) on pairs of the plateau model's own samples.

Every arm is scored on validation and on 256 test puzzles (greedy, one token per step; the joint sampler's arm also
with its own γ, which sets its NFE). Targets (``bench/results/dlm_rl_plateau.json``): ``rl_minus_best_control``
(best of diffu-GRPO/DiFFPO minus max(plateau, more SFT) ≥ 0.10), ``dtrpo_minus_start`` (≥ 0.05 over the plateau),
``diffpo_nfe_saving`` (≥ 30 % fewer NFE than the fixed sampler at equal solve rate, ±1 point).

    python bench/dlm_rl_plateau.py [--n-demos 256] [--budget-s 150] [--seeds 3] [--jobs 2]
        [--out runs/bench_dlm_plateau] [--json bench/results/dlm_rl_plateau.json]

Finished stages are reused: the plateau's ``curve.json`` and each run's ``result.json`` (same budget and sizes).
"""

from __future__ import annotations

import os

for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_k, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import mean_sd, sudoku_val_test  # noqa: E402

ARMS = {
    "more SFT": {"algo": "sft", "lr": 1e-3, "grad_clip": 1.0, "demos_only": True},
    "diffu-GRPO": {"algo": "diffu_grpo"},
    "DiFFPO": {"algo": "diffpo"},
    "DiFFPO + joint sampler": {"algo": "diffpo", "joint_sampler": True, "nfe_price": 0.2},
    "dTRPO": {"algo": "dtrpo", "dpo_beta": 3.0},
}
RL_ARMS = ("diffu-GRPO", "DiFFPO", "DiFFPO + joint sampler")
N_PROMPTS = 5000  # training puzzles the RL arms draw prompts from (only the verifier reads their solutions)


def _score(sft_run: str | Path, examples: list, weights_of: str | Path | None = None) -> dict[str, float]:
    """Solve rate and reward of an SFT run's model (with the weights of the RL run ``weights_of`` when given)."""
    from thrifty.core.checkpoint import load_weights
    from thrifty.dlm.run import default_sampler, evaluate, load_model

    _, task, model = load_model(sft_run)
    if weights_of is not None and (Path(weights_of) / "checkpoint").is_dir():  # none: the budget ran out first
        load_weights(Path(weights_of), {"model": model})
    return evaluate(model, task, examples, default_sampler(task))


def plateau(args: argparse.Namespace) -> dict:
    """Stage 1: SFT on the demonstrations until validation stops improving; the best checkpoint is copied to
    ``<out>/plateau``."""
    from thrifty.dlm.run import DlmSFTConfig
    from thrifty.dlm.sft import train_sft

    out = Path(args.out)
    curve_file = out / "curve.json"
    if curve_file.is_file():
        old = json.loads(curve_file.read_text())
        if old.get("n_demos") == args.n_demos and old.get("done"):
            return old
    run, best_dir = out / "sft", out / "plateau"
    curve: list[dict] = []
    best, since, steps, c0 = -1.0, 0, 0, time.process_time()
    val = None
    while steps < args.max_sft_steps and since < args.patience:
        steps += args.chunk
        cfg = DlmSFTConfig(task="sudoku4", run_dir=str(run), steps=steps, n_train=args.n_demos, n_eval=64,
                           eval_every=args.chunk, checkpoint_every=args.chunk, seed=0)
        res = train_sft(cfg, progress=False)
        if val is None:
            val = sudoku_val_test(str(run), args.n_eval, args.n_val)[0]
        v = _score(run, val)
        curve.append({"step": cfg.steps, "val_solved": v["solved"], "val_reward": v["reward"],
                      "test64_solved": res.get("solved"), "cpu_s": time.process_time() - c0})
        print(f"  SFT step {cfg.steps}: val solved {v['solved']:.3f}, reward {v['reward']:.3f}", flush=True)
        if v["solved"] > best:
            best, since = v["solved"], 0
            shutil.rmtree(best_dir, ignore_errors=True)
            shutil.copytree(run, best_dir)
            (best_dir / "config.yaml").write_text((run / "config.yaml").read_text().replace(str(run), str(best_dir)))
        else:
            since += 1
    best_row = max(curve, key=lambda r: r["val_solved"])
    test = sudoku_val_test(str(best_dir), args.n_eval, args.n_val)[1]
    t = _score(best_dir, test)
    data = {"n_demos": args.n_demos, "chunk": args.chunk, "patience": args.patience, "curve": curve,
            "best_step": best_row["step"], "val_solved": best_row["val_solved"], "val_reward": best_row["val_reward"],
            "test_solved": t["solved"], "test_reward": t["reward"], "cpu_s": curve[-1]["cpu_s"],
            "done": True, "stopped_by": "patience" if since >= args.patience else "max steps"}
    curve_file.write_text(json.dumps(data, indent=1) + "\n")
    return data


def _run(job: tuple) -> dict:
    import torch

    from thrifty.dlm.rl.config import DlmRLConfig
    from thrifty.dlm.rl.loop import train_rl

    arm, seed, args = job
    torch.set_num_threads(1)
    spec = dict(ARMS[arm])
    n_train = args.n_demos if spec.pop("demos_only", False) else N_PROMPTS
    run_dir = Path(args.out) / arm.replace(" ", "_").replace("+", "plus") / f"seed{seed}"
    done = run_dir / "result.json"
    if done.is_file():
        old = json.loads(done.read_text())
        if old.get("budget_s") == args.budget_s and old.get("n_eval") == args.n_eval and old.get("n_val") == args.n_val:
            return old
    init = str(Path(args.out) / "plateau")
    cfg = DlmRLConfig(init_run=init, run_dir=str(run_dir), seed=seed, steps=10**6, max_cpu_s=args.budget_s,
                      eval_every=10**6, checkpoint_every=10**6, n_eval=args.n_eval, n_train=n_train, **spec)
    res = train_rl(cfg, progress=False)
    val = sudoku_val_test(init, args.n_eval, args.n_val)[0]
    v = _score(init, val, run_dir)
    row = {"arm": arm, "seed": seed, "budget_s": args.budget_s, "n_eval": args.n_eval, "n_val": args.n_val,
           "n_train": n_train, "step": res["step"], "cpu_s": res["cpu_s"], "forward_rows": res["forward"].get("rows", 0),
           "test_solved": res["eval_solved"], "test_reward": res["eval_reward"], "nfe": res["eval_nfe"],
           "val_solved": v["solved"], "val_reward": v["reward"],
           **{k.replace("eval_adaptive_", "own_gamma_"): v for k, v in res.items() if k.startswith("eval_adaptive_")}}
    done.write_text(json.dumps(row) + "\n")
    return row


def summarise(rows: list[dict], start: dict) -> dict:
    """Per arm mean ± sd over seeds, and the three targets (pure: rows in, numbers out)."""
    arms: dict[str, dict] = {}
    for name in ARMS:
        rs = sorted((r for r in rows if r["arm"] == name), key=lambda r: r["seed"])
        if not rs:
            continue
        a = {"seeds": [r["seed"] for r in rs], "steps": statistics.mean(r["step"] for r in rs),
             "cpu_s_per_step": statistics.mean(r["cpu_s"] / max(1, r["step"]) for r in rs),
             "forward_rows_per_step": statistics.mean(r["forward_rows"] / max(1, r["step"]) for r in rs),
             "test_solved_per_seed": [r["test_solved"] for r in rs], "nfe": statistics.mean(r["nfe"] for r in rs),
             **{k: mean_sd([r[k] for r in rs]) for k in ("test_solved", "test_reward", "val_solved", "val_reward")}}
        if all("own_gamma_solved" in r for r in rs):
            a["own_gamma"] = {"solved": mean_sd([r["own_gamma_solved"] for r in rs]),
                              "nfe": statistics.mean(r["own_gamma_nfe"] for r in rs)}
        arms[name] = a
    mean = {k: a["test_solved"]["mean"] for k, a in arms.items()}
    control = max(start["test_solved"], mean.get("more SFT", float("-inf")))
    rl = [mean[k] for k in ("diffu-GRPO", "DiFFPO") if k in mean]
    targets = [
        {"id": "rl_minus_best_control", "value": max(rl) - control if rl else None, "goal": 0.10, "direction": ">=",
         "note": "best of diffu-GRPO / DiFFPO (mean test solve rate over seeds) minus max(plateau, more SFT)"},
        {"id": "dtrpo_minus_start", "value": mean["dTRPO"] - start["test_solved"] if "dTRPO" in mean else None,
         "goal": 0.05, "direction": ">=", "note": "dTRPO at β 3 on self pairs minus the plateau, test solve rate"},
    ]
    joint, fixed = arms.get("DiFFPO + joint sampler"), arms.get("DiFFPO")
    saving, note = None, "DiFFPO + joint sampler decoded with its own γ against DiFFPO's fixed sampler"
    if joint and fixed and "own_gamma" in joint:
        gap = joint["own_gamma"]["solved"]["mean"] - fixed["test_solved"]["mean"]
        saving = 1 - joint["own_gamma"]["nfe"] / fixed["nfe"]
        note += f"; solve-rate gap {gap:+.3f} ({'within' if gap >= -0.01 else 'outside'} the ±1 point band)"
        if gap < -0.01:
            saving = 0.0  # fewer NFE at a lower solve rate is not a saving at equal quality
    targets.append({"id": "diffpo_nfe_saving", "value": saving, "goal": 0.30, "direction": ">=", "note": note})
    for t in targets:
        t["met"] = t["value"] is not None and t["value"] >= t["goal"]
    return {"arms": arms, "control": control, "targets": targets}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-demos", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=100, help="SFT steps between validation checks")
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--max-sft-steps", type=int, default=3000)
    ap.add_argument("--budget-s", type=float, default=150.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--n-eval", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=256)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--out", default="runs/bench_dlm_plateau")
    ap.add_argument("--json", default="bench/results/dlm_rl_plateau.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    start = plateau(args)
    print(f"plateau: step {start['best_step']} of {start['curve'][-1]['step']} ({start['stopped_by']}), val solved "
          f"{start['val_solved']:.3f}, test solved {start['test_solved']:.3f}", flush=True)
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm {unknown[0]!r}; choose from {', '.join(ARMS)}")
    jobs = [(a, s, args) for s in range(args.seeds) for a in arms]
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(_run, jobs):
            rows.append(r)
            print(f"  {r['arm']} seed {r['seed']}: test {r['test_solved']:.3f}, val {r['val_solved']:.3f} "
                  f"({r['step']} steps, {r['cpu_s']:.0f} CPU-s; {time.perf_counter() - t0:.0f} s wall)", flush=True)
    s = summarise(rows, start)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    data = {"command": " ".join(sys.argv), "commit": commit, "date": datetime.date.today().isoformat(),
            "machine": {"cores": os.cpu_count(), "threads_per_run": 1, "jobs": args.jobs,
                        "load_avg_at_end": os.getloadavg()[0]},
            "wall_s": time.perf_counter() - t0, "budget_cpu_s_per_run": args.budget_s, "n_demos": args.n_demos,
            "n_rl_prompts": N_PROMPTS, "n_val": args.n_val, "n_test": args.n_eval,
            "plateau": start, "sft_more": s["arms"].get("more SFT", {}).get("test_solved"), **s, "runs": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    print("\n| arm | test solved | val solved | NFE | steps | CPU s / step | forward rows / step |")
    print("|---|---|---|---|---|---|---|")
    print(f"| plateau (SFT step {start['best_step']}) | {start['test_solved']:.3f} | {start['val_solved']:.3f} | 16 | — | — | — |")
    for name, a in s["arms"].items():
        print(f"| {name} | {a['test_solved']['mean']:.3f} ± {a['test_solved']['sd']:.3f} | {a['val_solved']['mean']:.3f} "
              f"± {a['val_solved']['sd']:.3f} | {a['nfe']:.1f} | {a['steps']:.0f} | {a['cpu_s_per_step']:.2f} | "
              f"{a['forward_rows_per_step']:.0f} |")
        if "own_gamma" in a:
            g = a["own_gamma"]
            print(f"| … with its own γ | {g['solved']['mean']:.3f} ± {g['solved']['sd']:.3f} | — | {g['nfe']:.1f} | | | |")
    for t in s["targets"]:
        print(f"target {t['id']}: {t['value']} (goal {t['direction']} {t['goal']}; {'met' if t['met'] else 'missed'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
