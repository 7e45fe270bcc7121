"""Does query-aware allocation pay on the trained tiny models? Accuracy of ATA (faithful and with fixes) vs
uniform vs top-k without anchors vs oracle at equal visual-token budgets on held-out needle videos, by question
type; visual tokens per frame actually used; relevance-head AUROC for evidence segments; goal gaps per budget; and
what the memory holds (segment-level answer accuracy read from each segment's first memory state) and whether it
binds colour to shape (caption swap tests, `video/diagnose.py`). Writes bench/results/video_ata.json (``--json``)
with a ``targets`` list (docs/results.md quotes it).

Needs a run of `thrifty video train` (configs/video/tempo_tiny.yaml). Held-out videos come from the benchmark
seed stream (seed, "bench", i), never a training seed, and are longer than the training videos. Writes
accuracy_vs_budget.png and allocation heat maps to --out.

    python bench/video_ata.py --run-dir runs/video_tempo [--n 240] [--lengths 256,512] [--seed 2000]
        [--budgets 0.0625,0.125,0.25,0.5,1,2] [--out runs/video_tempo/bench] [--json bench/results/video_ata.json]
        [--machine-note "2 cores, one busy with another job"]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from thrifty.video.adapter import TinyBackend
from thrifty.video.ata_eval import BUDGETS, accuracy_grid, heldout, plots, run_eval, tables, tokens_per_frame
from thrifty.video.diagnose import (
    caption_binding,
    probe_table,
    segment_answer_accuracy,
    sprite_perception,
    swap_probe,
)
from thrifty.video.train import load_run


def _num(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x), 4)


def _target(tid: str, value: float, goal: float, note: str) -> dict:
    return {"id": tid, "value": _num(value), "goal": goal, "direction": ">=", "note": note}


def summary(res, probe: dict, binding: dict, full_per_frame: float) -> dict:
    """The JSON fields: accuracy and tokens/frame per rule × budget, full-memory accuracy, the memory probe on
    evidence segments, binding and the targets list."""
    acc = accuracy_grid(res)
    grid = {lab: {f"{b:g}": {"accuracy": _num(acc[lab, b]),
                             "visual_tokens_per_frame": round(tokens_per_frame(res, lab, b), 4)}
                  for b in res.budgets} for lab in res.labels}
    full = acc.get(("uniform", full_per_frame), float("nan"))  # uniform at M/F tokens/frame keeps every token
    tight, eighth = min(res.budgets), 0.125
    gap = acc.get(("ata+fixes", tight), np.nan) - acc.get(("uniform+spread", tight), np.nan)
    gap_faithful = acc.get(("ata", tight), np.nan) - acc.get(("uniform+spread", tight), np.nan)
    kept = acc.get(("ata+fixes", eighth), np.nan) / full if full else np.nan
    kept_faithful = acc.get(("ata", eighth), np.nan) / full if full else np.nan
    ev = {task: round(a["evidence"], 4) for task, a in probe.items()}
    targets = [
        _target("probe_attribute", ev.get("attribute", np.nan), 0.8, "memory probe, attribute, evidence segments"),
        _target("probe_presence", ev.get("presence", np.nan), 0.8, "memory probe, presence, evidence segments"),
        _target("full_memory_accuracy", full, 0.8, f"every segment keeps all M tokens ({full_per_frame:g}/frame)"),
        _target("ata_minus_uniform_spread_tight", gap, 0.10,
                f"ata+fixes − uniform+spread at {tight:g} tokens/frame (both in budget); faithful ata − "
                f"uniform+spread {gap_faithful:+.4f} (faithful ata may spend over budget)"),
        _target("retained_at_eighth", kept, 0.98, f"ata+fixes accuracy at {eighth:g} tokens/frame / full-memory "
                f"accuracy; faithful ata {kept_faithful:.4f}"),
    ]
    return {"accuracy": grid, "full_budget_accuracy": _num(full), "memory_probe": {
        task: {"evidence": _num(a["evidence"]), "other": _num(a["other"]), "n_evidence": a["n_evidence"],
               "n_other": a["n_other"]} for task, a in probe.items()}, "binding": binding, "targets": targets}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--n", type=int, default=240, help="held-out videos (question types cycle first, then lengths)")
    p.add_argument("--lengths", default="256,512", help="frames per video")
    p.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS), help="visual tokens per frame")
    p.add_argument("--seed", type=int, default=2000)
    p.add_argument("--out", help="folder for the plots (default: <run-dir>/bench)")
    p.add_argument("--json", default="bench/results/video_ata.json", help="results file ('' to skip)")
    p.add_argument("--machine-note", default="", help="what else ran on the machine")
    a = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    cfg, comp, dec = load_run(a.run_dir)
    backend = TinyBackend(comp, dec)
    videos = heldout(a.n, a.seed, tuple(int(x) for x in a.lengths.split(",")))
    full_per_frame = cfg.n_memory / comp.cfg.frames
    budgets = sorted({float(b) for b in a.budgets.split(",")} | {full_per_frame})
    res = run_eval(backend, backend, videos, budgets, k_min=cfg.k_min, progress=True)
    print(f"\nM = {cfg.n_memory} memory tokens per 8-frame segment, k_min = {cfg.k_min}, 1 token per timestamp; "
          f"{comp.num_params() + dec.num_params()} parameters\n")
    print(tables(res))
    print("\n### Memory probe: the first memory state's answer to the question asked of each segment alone\n")
    probe = segment_answer_accuracy(comp, videos)
    print(probe_table(probe))
    binding = {"caption_swap_test": caption_binding(comp, videos[:60]), "two_sprite_probe": swap_probe(comp),
               "sprite_perception": sprite_perception(comp)}
    print(f"\n### Binding (swap tests; 0.5 is chance)\n\n{json.dumps(binding, indent=1)}")
    for path in plots(res, a.out or Path(a.run_dir) / "bench"):
        print(f"wrote {path}")
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s")
    if a.json:
        out = summary(res, probe, binding, full_per_frame)
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        log = Path(a.run_dir) / "metrics.jsonl"
        train_s = json.loads(log.read_text().splitlines()[-1])["wall_s"] if log.is_file() else None
        meta = {"command": " ".join(["python", *sys.argv]), "commit": head, "date": datetime.date.today().isoformat(),
                "machine": {"cores": os.cpu_count(), "threads": 1, "load_avg_1m": round(os.getloadavg()[0], 2),
                            "note": a.machine_note}, "bench_s": round(total, 1), "train_wall_s": train_s,
                "params": comp.num_params() + dec.num_params(), "n_videos": len(videos), "lengths": a.lengths,
                "seed": a.seed, "stem": comp.cfg.stem, "grid": comp.cfg.grid, "n_memory": cfg.n_memory}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({**meta, **out}, indent=1) + "\n")
        print(f"wrote {a.json}")
        for t in out["targets"]:
            print(f"target {t['id']}: {t['value']} (goal {t['direction']} {t['goal']})")


if __name__ == "__main__":
    main()
