"""Can the compressor's transformer learn to answer the question asked of one segment, given the stem a run trained?
The stem of a `thrifty video train` run is frozen; its transformer and segment-level head keep their trained
weights and are trained further on the segment-level answer alone (cross-entropy), on segments balanced between
needle evidence and the rest, in Tempo's [visual][query] order and/or with the query first. Accuracy on held-out
evidence segments per question type (chance: attribute 1/7, presence and timing 1/2 when the head only picks among
the type's answers; the head here picks among all classes) and on the other segments, every ``--every`` steps.
Separates perception (the stem: `sprite_perception` in `bench/video_ata.py`) from query matching (the transformer).

    python bench/video_memory_probe.py --run-dir runs/video_tempo_sprites [--steps 1000] [--orders tempo,query_first]
        [--json bench/results/video_memory_probe.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from thrifty.core.rng import derive_seed
from thrifty.video.compressor import TinyCompressor, segment_frames
from thrifty.video.qa_vocab import AnswerVocab, segment_answers
from thrifty.video.synth import make_video
from thrifty.video.train import load_run

TASKS = ("attribute", "presence", "timing")


def balanced_segments(comp: TinyCompressor, seed: int, n_videos: int, length: int = 48) -> dict[str, torch.Tensor]:
    """Every needle-evidence segment of ``n_videos`` videos (question types cycling) and as many other segments of
    the same videos: frames, padded query ids, segment-level answer class, evidence flag, question type index."""
    answers, cols = AnswerVocab(), {k: [] for k in ("frames", "query", "label", "evidence", "task")}
    for i in range(n_videos):
        v = make_video(derive_seed(seed, "probe", i), TASKS[i % len(TASKS)], length)
        frames, labels = segment_frames(v.frames, v.plan.segments, comp.cfg.frames), segment_answers(v, answers)
        ev, other = np.flatnonzero(v.evidence), np.flatnonzero(~v.evidence)
        rng = np.random.default_rng(derive_seed(seed, "probe-pick", i))
        for j in [*ev, *rng.choice(other, min(len(ev), len(other)), replace=False)]:
            cols["frames"].append(frames[j])
            cols["query"].append(torch.tensor(comp.vocab.encode_padded(v.question, comp.cfg.query_len)))
            cols["label"].append(labels[j])
            cols["evidence"].append(bool(v.evidence[j]))
            cols["task"].append(i % len(TASKS))
    return {"frames": torch.stack(cols["frames"]), "query": torch.stack(cols["query"]),
            "label": torch.tensor(cols["label"]), "evidence": torch.tensor(cols["evidence"]),
            "task": torch.tensor(cols["task"])}


@torch.no_grad()
def evaluate(comp: TinyCompressor, data: dict[str, torch.Tensor]) -> dict[str, float]:
    comp.eval()
    hits = torch.cat([comp.local_head(comp(data["frames"][a:a + 128], data["query"][a:a + 128]).memory[:, 0])
                      .argmax(-1) == data["label"][a:a + 128] for a in range(0, len(data["label"]), 128)])
    comp.train()
    ev = data["evidence"]
    out = {t: round(float(hits[ev & (data["task"] == i)].float().mean()), 4) for i, t in enumerate(TASKS)}
    return {**out, "other": round(float(hits[~ev].float().mean()), 4)}


def train_order(base: TinyCompressor, query_first: bool, steps: int, every: int, train, test,
                lr: float) -> list[dict]:
    """A copy of ``base`` (the run's trained compressor, left untouched) in the given order, its stem frozen,
    trained on the segment-level answer; held-out accuracy every ``every`` steps."""
    comp = TinyCompressor(dataclasses.replace(base.cfg, query_first=query_first), base.vocab)
    comp.load_state_dict(base.state_dict())
    comp.stem.requires_grad_(False)
    params = [p for p in comp.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    curve, start = [], time.perf_counter()
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            curve.append({"step": step, **evaluate(comp, test), "wall_s": round(time.perf_counter() - start, 1)})
            print(f"{'query_first' if query_first else 'tempo'} {curve[-1]}", flush=True)
        if step == steps:
            break
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 50)
        idx = torch.randint(len(train["label"]), (48,), generator=gen)
        out = comp(train["frames"][idx], train["query"][idx])
        loss = torch.nn.functional.cross_entropy(comp.local_head(out.memory[:, 0]), train["label"][idx])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--every", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--orders", default="tempo,query_first")
    p.add_argument("--n-train", type=int, default=1500, help="training videos (48 frames)")
    p.add_argument("--n-test", type=int, default=240, help="held-out videos (48 frames)")
    p.add_argument("--json", default="bench/results/video_memory_probe.json", help="results file ('' to skip)")
    p.add_argument("--machine-note", default="")
    a = p.parse_args()
    torch.set_num_threads(1)
    _, comp, _ = load_run(a.run_dir)
    train, test = balanced_segments(comp, 11, a.n_train), balanced_segments(comp, 99, a.n_test)
    print(f"{len(train['label'])} training and {len(test['label'])} held-out segments")
    curves = {o: train_order(comp, o == "query_first", a.steps, a.every, train, test, a.lr)
              for o in a.orders.split(",")}
    if not a.json:
        return
    best = {o: c[-1] for o, c in curves.items()}
    targets = [{"id": f"probe_{t}_{o}", "value": best[o][t], "goal": 0.8, "direction": ">=",
                "note": f"frozen stem, {a.steps} segment-level steps, {o} order, evidence segments"}
               for o in best for t in ("attribute", "presence")]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    meta = {"command": " ".join(["python", *sys.argv]), "commit": head, "date": datetime.date.today().isoformat(),
            "machine": {"cores": os.cpu_count(), "threads": 1, "note": a.machine_note},
            "n_train_segments": len(train["label"]), "n_test_segments": len(test["label"])}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps({**meta, "curves": curves, "targets": targets}, indent=1) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
