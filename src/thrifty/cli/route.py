"""`thrifty route ...`: collect and grade answers, build report cards, train predictors (via route_fit), predict a
grade and answer or defer, evaluate predictors."""

from __future__ import annotations

import argparse

from thrifty.cli._common import add_config_args, add_field_flags, add_verb, add_verbs, resolve_config
from thrifty.cli.route_fit import register_verbs as register_fit_verbs
from thrifty.cli.route_ladder import register_verbs as register_ladder_verbs
from thrifty.cli.route_serve import register_verbs as register_serve_verbs
from thrifty.route.records.config import record_flags


def register(rooms) -> None:
    verbs = add_verbs(rooms, "route", "self-predicted routing: collect and grade answers from models on a task mix")
    p = add_verb(verbs, "collect", "answer a task mix with each model; store generations, scores and judge grades "
                 "(resumable)",
                 _collect)
    add_config_args(p)
    p.add_argument("--models", help="comma-separated model specs (bundled names, *.gguf, openai:URL#MODEL, hf:DIR)")
    add_field_flags(p, record_flags("tasks", "n_per_task", "split", "run_dir", "judge",
                                    split="which split to answer",
                                    run_dir="where config.yaml, store.sqlite and summary.json go",
                                    judge="grade answers with this judge: verifier (default), rubric, "
                                    "rubric_isolated, reference, mischievous; '' for none"))
    p.add_argument("--judge-model", help="model spec of the LLM judge (rubric judges)")

    card = verbs.add_parser("report-card", help="build or show a model's report card (from graded train records)",
                            description="build or show a model's report card (from graded train records)")
    card_verbs = card.add_subparsers(dest="card_verb", metavar="<build|show>", parser_class=type(card))
    card_verbs.required = True
    b = card_verbs.add_parser("build", help="build a card from a run store's graded train-split records")
    b.set_defaults(func=_card_build)
    b.add_argument("--store", required=True, help="run store (store.sqlite) holding graded train-split records")
    b.add_argument("--model", required=True, help="the model name the records are tagged with")
    b.add_argument("--judge", help="judge name to use when the store holds grades from several judges")
    b.add_argument("--out", required=True, help="where to write the card (JSON)")
    b.add_argument("--summarise-with", metavar="SPEC", help="add a 2-3 sentence prose summary written by this model")
    sh = card_verbs.add_parser("show", help="print a saved report card as the predictor sees it")
    sh.set_defaults(func=_card_show)
    sh.add_argument("card", help="a card JSON written by `report-card build`")
    sh.add_argument("--task", help="show only this task's section")

    pe = add_verb(verbs, "predict-eval", "evaluate grade predictors against judge grades on held-out records "
                  "(accuracy vs majority baseline, macro-F1, kappa, AUROC, ECE, Brier, CIs, plots)", _predict_eval)
    add_config_args(pe)
    add_field_flags(pe, record_flags("store"))
    pe.add_argument("--model", help="model spec whose grades are predicted (as tagged in the store)")
    add_field_flags(pe, record_flags("tasks", "n_per_task"))
    pe.add_argument("--predictors", help="comma-separated: zero_shot, report_card, probe, sft")
    pe.add_argument("--card", help="report card JSON (needed by report_card)")
    pe.add_argument("--probe", help="probe file from `route probe fit` (needed by probe)")
    pe.add_argument("--adapter", help="adapter directory from `route sft` (needed by sft)")
    add_field_flags(pe, record_flags("run_dir", run_dir="where predict_eval.{json,md} and the plots go"))

    ev = add_verb(verbs, "eval", "replay a router file and its baselines (random, oracle, prompt-only router) over "
                  "stored test records: APGR, CPT, cost at 95 percent of the large quality, AIQ, AUROC, curves", _eval)
    add_config_args(ev)
    ev.add_argument("--router", help="router file from `route calibrate`")
    add_field_flags(ev, record_flags("store", "tasks", "n_per_task", "run_dir",
                                     tasks="comma-separated task specs (default: the router's)",
                                     run_dir="where route_eval.{json,md} and the plots go"))

    register_fit_verbs(verbs)
    register_ladder_verbs(verbs)
    register_serve_verbs(verbs)

    pr = add_verb(verbs, "predict", "predict the judge's grade of a model's answer, then answer or defer (PA/RPRA)",
                  _predict)
    pr.add_argument("question", help="the user message")
    pr.add_argument("--model", required=True, help="model spec of the model that predicts and answers")
    pr.add_argument("--card", help="report card JSON (default: zero-shot prediction)")
    pr.add_argument("--probe", help="predict with this fitted probe (`route probe fit`) instead")
    pr.add_argument("--adapter", help="predict (and answer) with this fine-tuned adapter (`route sft`) on the hf backend")
    pr.add_argument("--task", help="the request's task tag, for the report-card section")
    pr.add_argument("--paradigm", choices=["pa", "rpra"], default="pa", help="predict-answer or reason-predict-reason-answer")
    pr.add_argument("--defer-above", type=float, default=0.5, help="defer when p(bad) is above this (default 0.5)")
    pr.add_argument("--max-tokens", type=int, default=256, help="answer budget in tokens")
    pr.add_argument("--threads", type=int, default=1, help="llama.cpp threads")


def _collect(args: argparse.Namespace) -> int:
    from thrifty.route.records.collect import CollectConfig, collect, format_table

    cfg = resolve_config(CollectConfig, args, {"models": "models", "judge_model": "judge_model"})
    result = collect(cfg)
    print(format_table(result.table))
    print(f"\nrun dir: {result.run_dir}  store: {cfg.store_path}  new generations: {result.new_generations}  "
          f"reused: {result.reused_generations}  failed: {result.failures}")
    return 1 if result.failures else 0


def _card_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from thrifty.core.errors import DataError
    from thrifty.core.store import RunStore
    from thrifty.route.predictors import build_report_card, summarise

    if not Path(args.store).is_file():
        raise DataError(f"run store not found: {args.store}")
    with RunStore(args.store) as store:
        card = build_report_card(store, args.model, split="train", judge=args.judge)
    if args.summarise_with:
        from thrifty.llm.factory import load_model

        card = summarise(card, load_model(args.summarise_with))
    card.save(args.out)
    print(card.render())
    print(f"\nreport card {card.version} written to {args.out}")
    return 0


def _card_show(args: argparse.Namespace) -> int:
    from thrifty.route.predictors import ReportCard

    card = ReportCard.load(args.card)
    print(card.render(args.task))
    print(f"\n(version {card.version}, model {card.model}, judge {card.judge or '-'}, split {card.split})")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from thrifty.core.errors import ConfigError
    from thrifty.llm.base import GenParams
    from thrifty.llm.factory import load_model
    from thrifty.route.decide.paradigms import pa, rpra
    from thrifty.route.decide.policy import defer_if_p_bad_above
    from thrifty.route.predictors.build import build_predictor

    if not 0.0 <= args.defer_above <= 1.0:
        raise ConfigError(f"--defer-above must be in [0, 1], got {args.defer_above}")
    if sum(bool(x) for x in (args.card, args.probe, args.adapter)) > 1:
        raise ConfigError("choose one of --card, --probe and --adapter")
    name, artefact = next(((n, a) for n, a in (("sft", args.adapter), ("probe", args.probe),
                                                ("report_card", args.card)) if a), ("zero_shot", ""))
    model = None if name == "sft" else load_model(args.model, llamacpp={"n_threads": args.threads})
    predictor, _ = build_predictor(name, args.model, model, artefact)
    model = predictor.model
    run = pa if args.paradigm == "pa" else rpra
    messages = [{"role": "user", "content": args.question}]
    res = run(model, predictor, messages, GenParams(max_tokens=args.max_tokens),
              decide=defer_if_p_bad_above(args.defer_above), task=args.task)
    p = res.prediction
    print(f"prediction: great {p.p_great:.3f}  ok {p.p_ok:.3f}  bad {p.p_bad:.3f}"
          f"  ({'read from ' + p.method if p.parsed else 'unreadable: defers'})")
    if p.reasoning:
        print(f"reasoning: {p.reasoning}")
    print(f"action: {res.action}  (overhead: {res.overhead_tokens_in} tokens in, {res.overhead_tokens_out} out, "
          f"{res.overhead_latency_s:.2f} s)")
    if res.completion is not None:
        c = res.completion
        print(f"answer ({c.tokens_out} tokens, {c.cached_tokens} prompt tokens reused, {c.latency_s:.2f} s):")
        print(c.text)
    return 0


def _predict_eval(args: argparse.Namespace) -> int:
    from thrifty.route.records.predictions import PredictEvalConfig
    from thrifty.route.replay.predict_eval import format_markdown, predict_eval

    cfg = resolve_config(PredictEvalConfig, args, {"model": "model", "predictors": "predictors", "card": "card",
                                                   "probe": "probe", "adapter": "adapter"})
    result = predict_eval(cfg)
    print(format_markdown(result))
    print(f"\nwritten to {cfg.run_dir}: predict_eval.json, predict_eval.md, reliability_*.png, confusion_*.png")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from thrifty.route.replay.evaluate import EvalConfig, evaluate_router, format_markdown
    from thrifty.route.replay.report_text import headline

    cfg = resolve_config(EvalConfig, args, {"router": "router"})
    result = evaluate_router(cfg)
    print(format_markdown(result))
    print(headline(result))
    print(f"written to {cfg.run_dir}: route_eval.json, route_eval.md, quality_vs_large_calls.png, quality_vs_cost.png")
    return 0
