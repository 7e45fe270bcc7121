"""`thrifty dlm ...`: masked diffusion language models — train from scratch, evaluate samplers."""

from __future__ import annotations

import argparse

from thrifty.cli._common import add_config_args, add_verb, add_verbs, resolve_config


def register(rooms) -> None:
    verbs = add_verbs(rooms, "dlm", "masked diffusion LMs: train from scratch with exact resume, evaluate samplers")
    t = add_verb(verbs, "train-sft", "train the small masked-diffusion model on a task (e.g. 4×4 Sudoku), checkpointing "
                 "with exact resume; prints held-out reward and solve rate as it goes", _train)
    add_config_args(t)
    t.add_argument("--steps", type=int, help="total optimiser steps (a re-run resumes towards this)")
    t.add_argument("--run-dir", help="where config.yaml, metrics.jsonl and checkpoint/ go")
    e = add_verb(verbs, "eval", "held-out reward, solve rate and forward passes of each sampler for a trained run "
                 "(accuracy vs NFE)", _eval)
    e.add_argument("--run-dir", required=True, help="a run of `dlm train-sft`")
    e.add_argument("--n", type=int, default=256, help="held-out test examples")


def _train(args: argparse.Namespace) -> int:
    from thrifty.dlm.sft import DlmSFTConfig, train_sft

    cfg = resolve_config(DlmSFTConfig, args, {"steps": "steps", "run_dir": "run_dir"})
    res = train_sft(cfg)
    print(f"{res['params'] / 1e3:.0f}k-parameter model at step {res['step']}: test reward {res.get('reward', 0):.3f}, "
          f"solved {res.get('solved', 0):.3f}; checkpoint and metrics.jsonl in {cfg.run_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from thrifty.dlm.sampler_eval import sampler_table

    print(sampler_table(Path(args.run_dir), args.n))
    return 0
