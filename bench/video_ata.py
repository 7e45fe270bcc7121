"""Does query-aware allocation pay on the trained tiny models? Accuracy of ATA (faithful and with fixes) vs
uniform vs top-k without anchors vs oracle at equal visual-token budgets on held-out needle videos, by question
type; visual tokens per frame actually used; relevance-head AUROC for evidence segments; goal gaps per budget; and
what the memory holds (segment-level answer accuracy read from each segment's first memory state).

Needs a run of `thrifty video train` (configs/video/tempo_tiny.yaml). Held-out videos come from the benchmark
seed stream (seed, "bench", i), never a training seed, and are longer than the training videos. Writes
accuracy_vs_budget.png and allocation heat maps to --out.

    python bench/video_ata.py --run-dir runs/video_tempo [--n 240] [--lengths 256,512] [--seed 2000]
        [--budgets 0.0625,0.125,0.25,0.5,1,2] [--out runs/video_tempo/bench]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from thrifty.video.adapter import TinyBackend
from thrifty.video.ata_eval import BUDGETS, heldout, plots, run_eval, tables
from thrifty.video.diagnose import probe_table, segment_answer_accuracy
from thrifty.video.train import load_run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--n", type=int, default=240, help="held-out videos (question types cycle first, then lengths)")
    p.add_argument("--lengths", default="256,512", help="frames per video")
    p.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS), help="visual tokens per frame")
    p.add_argument("--seed", type=int, default=2000)
    p.add_argument("--out", help="folder for the plots (default: <run-dir>/bench)")
    a = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    cfg, comp, dec = load_run(a.run_dir)
    backend = TinyBackend(comp, dec)
    videos = heldout(a.n, a.seed, tuple(int(x) for x in a.lengths.split(",")))
    res = run_eval(backend, backend, videos, [float(b) for b in a.budgets.split(",")], k_min=cfg.k_min,
                   progress=True)
    print(f"\nM = {cfg.n_memory} memory tokens per 8-frame segment, k_min = {cfg.k_min}, 1 token per timestamp; "
          f"{comp.num_params() + dec.num_params()} parameters\n")
    print(tables(res))
    print("\n### Memory probe: the first memory state's answer to the question asked of each segment alone\n")
    print(probe_table(segment_answer_accuracy(comp, videos)))
    for path in plots(res, a.out or Path(a.run_dir) / "bench"):
        print(f"wrote {path}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
