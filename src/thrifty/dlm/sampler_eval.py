"""Accuracy against forward passes for every sampler on a trained run's held-out examples (`thrifty dlm eval`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from thrifty.dlm.samplers import EntropyBoundedSampler, LowConfidenceSampler, ThresholdSampler
from thrifty.dlm.sft import evaluate, load_model
from thrifty.dlm.tasks import DlmTask


def samplers(task: DlmTask, block_len: int | None = None) -> dict[str, Any]:
    """The compared samplers: fixed steps (one, two and four tokens a step), random remasking, the threshold and
    entropy-bounded rules."""
    mask, g = task.vocab.mask_id, task.answer_len
    out: dict[str, Any] = {}
    for per_step in (1, 2, 4):
        steps = max(1, g // per_step)
        if block_len and steps % (g // block_len):
            continue
        out[f"low-confidence, {steps} steps"] = LowConfidenceSampler(mask, steps=steps, block_len=block_len)
    out[f"random remasking, {g} steps"] = LowConfidenceSampler(mask, steps=g, remasking="random", block_len=block_len)
    for th in (0.9, 0.7):
        out[f"threshold {th}"] = ThresholdSampler(mask, threshold=th, block_len=block_len)
    for gamma in (0.1, 1.0):
        out[f"entropy-bounded γ {gamma}"] = EntropyBoundedSampler(mask, gamma=gamma, block_len=block_len)
    return out


def sampler_table(run: Path, n: int) -> str:
    """Markdown table of reward, solve rate and mean NFE per sampler; also written to sampler_eval.json."""
    cfg, task, model = load_model(run)
    torch.set_num_threads(cfg.n_threads)
    examples = task.examples("test", n, seed=cfg.seed + 1000)
    rows = {name: evaluate(model, task, examples, s) for name, s in samplers(task, cfg.eval_block_len).items()}
    (Path(run) / "sampler_eval.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"{n} held-out {task.name} examples (test split)", "",
             "| sampler | reward | solved | mean NFE |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['reward']:.3f} | {v['solved']:.3f} | {v['nfe']:.1f} |" for k, v in rows.items()]
    return "\n".join(lines)


__all__ = ["sampler_table", "samplers"]
