"""Which k of a segment's M memory states should the decoder read? Head (the design: causal, the first k of M
equal a run with k), tail, random, or ToMe-style merging of the most similar states — accuracy side by side on
the same held-out needle videos at equal visual budgets, under ATA with fixes and under uniform allocation
(Tempo spec ablation c: is the information front-loaded?).

    python bench/video_truncation.py --run-dir runs/video_tempo [--n 120] [--lengths 256] [--budgets 0.25,0.5,1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from thrifty.video.adapter import TinyBackend
from thrifty.video.ata_eval import RULES, accuracy_grid, heldout, run_eval
from thrifty.video.train import load_run
from thrifty.video.truncate import TRUNCATIONS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--n", type=int, default=120, help="held-out videos (question types cycle first, then lengths)")
    p.add_argument("--lengths", default="256", help="frames per video")
    p.add_argument("--budgets", default="0.25,0.5,1", help="visual tokens per frame")
    p.add_argument("--seed", type=int, default=2000)
    a = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    cfg, comp, dec = load_run(a.run_dir)
    videos = heldout(a.n, a.seed, tuple(int(x) for x in a.lengths.split(",")))
    budgets = [float(b) for b in a.budgets.split(",")]
    rules = {k: RULES[k] for k in ("ata+fixes", "uniform")}
    grids, secs = {}, {}
    for mode in TRUNCATIONS:
        t0 = time.perf_counter()
        backend = TinyBackend(comp, dec, truncation=mode, seed=a.seed)
        grids[mode] = accuracy_grid(run_eval(backend, backend, videos, budgets, rules, k_min=cfg.k_min))
        secs[mode] = time.perf_counter() - t0
        print(f"{mode}: {secs[mode]:.0f} s", flush=True)
    n_correct = len(videos)
    print(f"\n{n_correct} held-out videos ({a.lengths} frames), M = {cfg.n_memory}, k_min = {cfg.k_min}; accuracy "
          f"(± binomial standard error) by truncation\n")
    print("| truncation | " + " | ".join(f"{r} @ {b:g}" for r in rules for b in budgets) + " |")
    print("|---" * (1 + len(rules) * len(budgets)) + "|")
    for mode in TRUNCATIONS:
        cells = []
        for r in rules:
            for b in budgets:
                acc = grids[mode][r, b]
                cells.append(f"{acc:.3f} ± {np.sqrt(acc * (1 - acc) / n_correct):.3f}")
        print(f"| {mode} | " + " | ".join(cells) + " |")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
