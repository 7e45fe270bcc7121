"""Benchmark what a PA decision costs: predict-then-answer vs plain answering, side by side on one model.

For each question (the demo's test mix) and each prompt style, on one llama.cpp model (1 thread, greedy, prefix
reuse on):

- plain        the baseline: ``answer`` on the bare conversation (no instruction)
- pa:<style>   ``pa`` forced to answer: one label read after "Grade:" (prefill + one next-token distribution),
               then the answer continuing from the same prompt (its KV cache reused)

Styles: ``full`` (the zero-shot instruction: rubric + reply format, ~150 tokens) and ``brief`` (the reply format
only, ~35 tokens: what the fine-tuned predictor reads, whose rubric lives in the adapter). Reported per arm:
median answer wall time, median decision time (the label read), decision / plain answer (the target is
<= 5 %), and total PA time / plain - 1 (instruction prefill included: a longer prompt also makes the answer a
little slower). The answers differ between arms (the prompts differ); answer length is printed too.

``--order interleaved`` runs the arms question by question (drift hits every arm alike, but each call finds
the previous arm's prompt in the cache, so the static instruction is prefilled every time: the cold case);
``--order blocked`` runs each arm over all questions in a row, as a server with prefix caching sees a stream of
requests sharing one system instruction (the warm case: only the question and the label are new).

    python bench/pa_overhead.py [--model NAME] [--n 8] [--max-tokens 256] [--order blocked] [--json PATH]
"""

from __future__ import annotations

from _common import DEMO_TASKS, go_offline

go_offline()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from thrifty.llm.base import GenParams  # noqa: E402
from thrifty.llm.factory import load_model  # noqa: E402
from thrifty.route.decide.paradigms import ANSWER, answer, pa  # noqa: E402
from thrifty.route.predictors import ZeroShotPredictor  # noqa: E402
from thrifty.route.predictors.sft import SFTPredictor  # noqa: E402
from thrifty.tasks.loader import load_task  # noqa: E402

TASKS = DEMO_TASKS


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--n", type=int, default=8, help="questions per task")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--order", choices=("interleaved", "blocked"), default="interleaved")
    ap.add_argument("--json", help="write the per-arm numbers here")
    args = ap.parse_args(argv)
    model = load_model(args.model, llamacpp={"n_threads": args.threads, "prefix_cache": True})
    params = GenParams(max_tokens=args.max_tokens, temperature=0.0)
    styles = {"full": ZeroShotPredictor(model), "brief": SFTPredictor(model, instruction="brief")}
    questions = [ex.messages() for spec in TASKS for ex in load_task(spec).examples("test", args.n, 0)]
    rows: dict[str, dict[str, list[float]]] = {a: {"total": [], "decision": [], "tokens_out": [], "prompt": []}
                                               for a in ["plain", *(f"pa:{s}" for s in styles)]}
    answer(model, questions[0], GenParams(max_tokens=4))  # warm-up: first-call allocations out of the timing
    if args.order == "interleaved":
        schedule = [(arm, i) for i in range(len(questions)) for arm in rows]
    else:
        schedule = [(arm, i) for arm in rows for i in range(len(questions))]
    for step, (arm, i) in enumerate(schedule):
        msgs = questions[i]
        t0 = time.perf_counter()
        if arm == "plain":
            c = answer(model, msgs, params)
            rows[arm]["decision"].append(0.0)
            rows[arm]["prompt"].append(c.tokens_in)
        else:
            res = pa(model, styles[arm.split(":")[1]], msgs, params, decide=lambda p: ANSWER)
            c = res.completion
            rows[arm]["decision"].append(res.overhead_latency_s)
            rows[arm]["prompt"].append(res.overhead_tokens_in)
        rows[arm]["total"].append(time.perf_counter() - t0)
        rows[arm]["tokens_out"].append(c.tokens_out)
        if (step + 1) % len(rows) == 0:
            print(f"{step + 1}/{len(schedule)} calls done", flush=True)
    plain = _med(rows["plain"]["total"])
    print(f"\nPA overhead on {args.model} ({len(questions)} questions, {args.threads} thread, max {args.max_tokens} "
          f"tokens, prefix reuse on, {args.order} order)\n")
    print("| arm | prompt tok | answer tok (median) | total s (median) | decision s (median) | decision / plain "
          "| total / plain - 1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for arm, r in rows.items():
        total, dec = _med(r["total"]), _med(r["decision"])
        ratio = [d / p for d, p in zip(r["decision"], rows["plain"]["total"], strict=True)]
        over = [t / p - 1 for t, p in zip(r["total"], rows["plain"]["total"], strict=True)]
        summary[arm] = {"total_s": total, "decision_s": dec, "decision_over_plain": _med(ratio),
                        "total_over_plain_minus_1": _med(over), "prompt_tokens": _med(r["prompt"]),
                        "answer_tokens": _med(r["tokens_out"])}
        print(f"| {arm} | {_med(r['prompt']):.0f} | {_med(r['tokens_out']):.0f} | {total:.2f} | {dec:.3f} | "
              f"{100 * _med(ratio):.1f} % | {100 * _med(over):+.1f} % |")
    print(f"\nplain answer median {plain:.2f} s; target: decision <= 5 % of the plain answer's wall time")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": args.model, "n": len(questions), "order": args.order, "arms": summary, "raw": rows},
                      fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
