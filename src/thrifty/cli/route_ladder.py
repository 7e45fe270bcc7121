"""`thrifty route ladder build|eval` (N-tier ladders from router files) and `thrifty route ask` (route one query
with a router or ladder file)."""

from __future__ import annotations

import argparse

from thrifty.cli._common import add_config_args, add_field_flags, add_verb, resolve_config
from thrifty.route.records.config import record_flags


def register_verbs(verbs) -> None:
    """Add ``ladder build``, ``ladder eval`` and ``ask`` to the route room's verbs."""
    lad = verbs.add_parser("ladder", help="chain router files into an N-tier ladder and replay it",
                           description="chain router files into an N-tier ladder and replay it")
    lad_verbs = lad.add_subparsers(dest="ladder_verb", metavar="<build|eval>", parser_class=type(lad))
    lad_verbs.required = True
    b = lad_verbs.add_parser("build", help="chain router files (cheapest tier first) into a ladder file")
    b.set_defaults(func=_build)
    b.add_argument("routers", nargs="+", help="router files from `route calibrate`, cheapest tier first")
    b.add_argument("--max-tries", type=int, help="consult at most this many lower tiers (default: all)")
    b.add_argument("--out", required=True, help="where to write the ladder file (JSON)")
    e = lad_verbs.add_parser("eval", help="replay a ladder over stored judged test answers of every tier")
    e.set_defaults(func=_eval)
    add_config_args(e)
    e.add_argument("--ladder", help="ladder file from `route ladder build`")
    add_field_flags(e, record_flags("store", "tasks", "n_per_task", "run_dir",
                                    tasks="comma-separated task specs (default: the routers')",
                                    run_dir="where ladder_eval.{json,md} go"))

    a = add_verb(verbs, "ask", "route one question with a router or ladder file: predict, then answer, repair or "
                 "defer", _ask)
    a.add_argument("question", help="the user message")
    a.add_argument("--router", required=True, help="router file (`route calibrate`) or ladder file (`route ladder "
                   "build`)")
    a.add_argument("--task", help="the request's task tag (report-card section)")
    a.add_argument("--system", help="a system message to put before the question")
    a.add_argument("--max-tokens", type=int, default=256, help="answer budget in tokens")
    a.add_argument("--threads", type=int, default=1, help="llama.cpp threads")


def _build(args: argparse.Namespace) -> int:
    from thrifty.route.decide.files import load_ladder
    from thrifty.route.fit.ladder import build_ladder, save_ladder

    out = save_ladder(build_ladder(args.routers, args.max_tries), args.out)
    ladder = load_ladder(out)  # what was written, read back as serving will read it
    print(f"ladder {ladder.version} written to {out}: {' → '.join(ladder.tiers)}"
          + (f" (at most {ladder.max_tries} lower tiers consulted)" if ladder.max_tries else ""))
    for step in ladder.steps:
        print(f"  {step.small}: {step.predictor.name} predictor, answers when calibrated p_good >= "
              f"{step.policy.tau_good:.4g}, else passes up")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from thrifty.route.replay.ladder_eval import LadderEvalConfig, evaluate_ladder, format_ladder

    cfg = resolve_config(LadderEvalConfig, args, {"ladder": "ladder"})
    print(format_ladder(evaluate_ladder(cfg)))
    print(f"written to {cfg.run_dir}: ladder_eval.json, ladder_eval.md")
    return 0


def _ask(args: argparse.Namespace) -> int:
    from thrifty.core.errors import ConfigError
    from thrifty.llm.base import GenParams
    from thrifty.llm.factory import threaded_loader
    from thrifty.route.serve.deploy import load_deployment

    if args.max_tokens < 1 or args.threads < 1:
        raise ConfigError("--max-tokens and --threads must be >= 1")
    dep = load_deployment(args.router, load_model=threaded_loader(args.threads))
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": args.question}]
    res = dep.route(messages, GenParams(max_tokens=args.max_tokens), task=args.task)
    for tier, p in zip(dep.tiers, res.predictions, strict=False):
        print(f"{tier} predicts: great {p.p_great:.3f}  ok {p.p_ok:.3f}  bad {p.p_bad:.3f}"
              + ("" if p.parsed else "  (unreadable: passes up)"))
    print(f"action: {res.action} by {res.model} (tier {res.tier}); overhead {res.overhead_tokens_in} prompt tokens, "
          f"{res.overhead_latency_s:.2f} s; total {res.latency_s:.2f} s")
    print(res.text)
    return 0
