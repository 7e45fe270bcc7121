"""`thrifty route ...`: collection of answers (and, as the room grows, prediction, calibration, evaluation)."""

from __future__ import annotations

import argparse

from thrifty.cli._common import add_config_args, add_verb, add_verbs, resolve_config


def register(rooms) -> None:
    verbs = add_verbs(rooms, "route", "self-predicted routing: collect and grade answers from models on a task mix")
    p = add_verb(verbs, "collect", "answer a task mix with each model; store generations, scores and judge grades "
                 "(resumable)",
                 _collect)
    add_config_args(p)
    p.add_argument("--models", help="comma-separated model specs (bundled names, *.gguf, openai:URL#MODEL, hf:DIR)")
    p.add_argument("--tasks", help="comma-separated task specs (see `thrifty tasks list`)")
    p.add_argument("--n", type=int, help="examples per task")
    p.add_argument("--split", choices=["train", "val", "test"], help="which split to answer")
    p.add_argument("--run-dir", help="where config.yaml, store.sqlite and summary.json go")
    p.add_argument("--judge", help="grade answers with this judge: verifier (default), rubric, rubric_isolated, "
                   "reference, mischievous; '' for none")
    p.add_argument("--judge-model", help="model spec of the LLM judge (rubric judges)")


def _collect(args: argparse.Namespace) -> int:
    from thrifty.route.collect import CollectConfig, collect, format_table

    extra = []
    for flag, key in (("models", "models"), ("tasks", "tasks"), ("n", "n_per_task"), ("split", "split"),
                      ("run_dir", "run_dir"), ("judge", "judge"), ("judge_model", "judge_model")):
        value = getattr(args, flag)
        if value is not None:
            extra.append(f"{key}={value}")
    cfg = resolve_config(CollectConfig, args, extra)
    result = collect(cfg)
    print(format_table(result.table))
    print(f"\nrun dir: {result.run_dir}  store: {cfg.store_path}  new generations: {result.new_generations}  "
          f"reused: {result.reused_generations}  failed: {result.failures}")
    return 1 if result.failures else 0
