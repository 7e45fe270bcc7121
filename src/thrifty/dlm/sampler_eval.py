"""Accuracy against forward passes for every sampler on a trained run's held-out puzzles (`thrifty dlm eval`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from thrifty.dlm import sudoku
from thrifty.dlm.model import DiffusionLM
from thrifty.dlm.samplers import EntropyBoundedSampler, LowConfidenceSampler, ThresholdSampler
from thrifty.dlm.sft import MASK, DlmSFTConfig, evaluate, model_config


def samplers() -> dict[str, Any]:
    """The compared samplers for 16-token answers."""
    return {"low-confidence, 16 steps": LowConfidenceSampler(MASK, steps=16),
            "low-confidence, 8 steps": LowConfidenceSampler(MASK, steps=8),
            "low-confidence, 4 steps": LowConfidenceSampler(MASK, steps=4),
            "random remasking, 16 steps": LowConfidenceSampler(MASK, steps=16, remasking="random"),
            "threshold 0.9": ThresholdSampler(MASK, threshold=0.9),
            "threshold 0.7": ThresholdSampler(MASK, threshold=0.7),
            "entropy-bounded γ 0.1": EntropyBoundedSampler(MASK, gamma=0.1),
            "entropy-bounded γ 1.0": EntropyBoundedSampler(MASK, gamma=1.0)}


def load_model(cfg: DlmSFTConfig, run: Path) -> DiffusionLM:
    from safetensors.torch import load_file

    model = DiffusionLM(model_config(cfg))
    model.load_state_dict(load_file(str(run / "checkpoint" / "model.safetensors")))
    return model.eval()


def sampler_table(cfg: DlmSFTConfig, run: Path, n: int) -> str:
    """Markdown table of reward, solve rate and mean NFE per sampler; also written to sampler_eval.json."""
    torch.set_num_threads(cfg.n_threads)
    model = load_model(cfg, run)
    pairs = sudoku.make_puzzles("test", n, seed=cfg.seed + 1000)
    rows = {name: evaluate(model, pairs, s) for name, s in samplers().items()}
    (run / "sampler_eval.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [f"{n} held-out 4×4 Sudoku puzzles (8 blanks, test grids only)", "",
             "| sampler | reward | solved | mean NFE |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['reward']:.3f} | {v['solved']:.3f} | {v['nfe']:.1f} |" for k, v in rows.items()]
    return "\n".join(lines)


__all__ = ["load_model", "sampler_table", "samplers"]
