"""Benchmark the llama.cpp backend on every pulled bundled model: prefill and decode speed, label_probs vs answer.

For each model (1 thread, greedy, no prefix reuse unless stated) it measures, side by side in one run, on one
~200-token grading prompt whose answer is a counting list (the assistant prefix "Grade: great\n1, 2, 3," makes
every model, base or chat, produce the full 64 tokens):

- prompt tok/s      prefill speed: prompt tokens / latency of a 1-token answer
- gen tok/s         decode speed: 63 extra tokens / (64-token answer - 1-token answer)
- label_probs s     one label_probs call after "Grade:" (prefill + one next-token distribution)
- answer s          the 64-token answer from scratch
- lp/answer         what a routing decision costs relative to answering
- lp+answer s       label_probs, then the 64-token answer reusing its prefill (prefix reuse on);
                    ``cached tok`` = prompt tokens the answer reused, ``overhead`` = (lp+answer) / answer - 1

Models that are not pulled are skipped with a line. Medians over ``--repeat`` runs. ``--json PATH`` writes rows.

    python bench/backends.py [--models NAME ...] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

from _common import go_offline

go_offline()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from thrifty.llm import catalog  # noqa: E402
from thrifty.llm.base import GenParams  # noqa: E402

LABELS = ("great", "ok", "bad")
PREFIX = "Grade:"
SYSTEM = (
    "You are a careful assistant. Before answering, grade how well you expect to answer the user's request "
    "on a three-level scale. Write 'great' when you are confident the answer will be complete and correct, "
    "'ok' when it will be partly right or needs caveats, and 'bad' when you expect to fail. Put the grade "
    "first, on a line that starts with 'Grade:', then write the answer. Keep answers factual; when a list is "
    "requested, number the items and put each on its own line. Do not repeat the question, do not apologise, "
    "and do not add a closing summary. If the request is ambiguous, choose the most common reading and say "
    "which one you chose in one short sentence before the list. Numbers are written with digits, "
    "separated by a comma and a space, with no trailing punctuation."
)
QUESTION = "Count from 1 to 300, separated by commas."
ANSWER_PREFIX = "Grade: great\n1, 2, 3,"


def _messages() -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_model(name: str, path: Path, repeat: int, n_ctx: int) -> dict:
    """Measure one model; returns a row of numbers (seconds and tokens per second)."""
    from thrifty.llm.llamacpp import LlamaCppModel

    msgs = _messages()
    cold = LlamaCppModel(path, n_ctx=n_ctx, n_threads=1, model_id=name, prefix_cache=False)
    warm = LlamaCppModel(path, n_ctx=n_ctx, n_threads=1, model_id=name, prefix_cache=True)
    one, full, lps, reuse = [], [], [], []
    try:
        cold.chat(msgs, GenParams(max_tokens=2))  # touch the weights once (mmap) before timing
        for _ in range(repeat):
            one.append(cold.chat(msgs, GenParams(max_tokens=1), assistant_prefix=ANSWER_PREFIX))
            full.append(cold.chat(msgs, GenParams(max_tokens=64), assistant_prefix=ANSWER_PREFIX))
            lps.append(cold.label_probs(msgs, LABELS, assistant_prefix=PREFIX))
            warm.label_probs(msgs, LABELS, assistant_prefix=PREFIX)  # same work as above; fills the cache
            reuse.append(warm.chat(msgs, GenParams(max_tokens=64), assistant_prefix=ANSWER_PREFIX))
    finally:
        cold.close()
        warm.close()
    prefill_s = _median([c.latency_s for c in one])
    answer_s = _median([c.latency_s for c in full])
    out_tokens = int(_median([c.tokens_out for c in full]))
    lp_s = _median([x.latency_s for x in lps])
    flow_s = lp_s + _median([c.latency_s for c in reuse])
    return {
        "model": name,
        "prompt_tokens": one[0].tokens_in,
        "prompt_tok_s": one[0].tokens_in / prefill_s,
        "gen_tokens": out_tokens,
        "gen_tok_s": (out_tokens - 1) / (answer_s - prefill_s) if out_tokens > 1 else float("nan"),
        "label_probs_s": lp_s,
        "answer_s": answer_s,
        "lp_over_answer": lp_s / answer_s,
        "label_mass": _median([x.mass for x in lps]),
        "lp_then_answer_s": flow_s,
        "cached_tokens": int(_median([c.cached_tokens for c in reuse])),
        "overhead": flow_s / answer_s - 1.0,
        "repeat": repeat,
    }


COLUMNS = [
    ("model", "model", "{}"),
    ("prompt_tokens", "prompt tok", "{}"),
    ("prompt_tok_s", "prompt tok/s", "{:.1f}"),
    ("gen_tokens", "gen tok", "{}"),
    ("gen_tok_s", "gen tok/s", "{:.1f}"),
    ("label_probs_s", "label_probs s", "{:.3f}"),
    ("answer_s", "answer s", "{:.3f}"),
    ("lp_over_answer", "lp/answer", "{:.3f}"),
    ("label_mass", "label mass", "{:.3f}"),
    ("lp_then_answer_s", "lp+answer s", "{:.3f}"),
    ("cached_tokens", "cached tok", "{}"),
    ("overhead", "overhead", "{:+.1%}"),
]


def format_table(rows: list[dict]) -> str:
    """A plain fixed-width table of the rows."""
    cells = [[title for _, title, _ in COLUMNS]]
    cells += [[fmt.format(row[key]) for key, _, fmt in COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = list(catalog.CATALOG)
    ap.add_argument("--models", nargs="*", default=names, choices=names, metavar="NAME", help="default: all")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; medians are reported")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama-cpp-python is not installed; nothing to benchmark")
        return 0
    rows = []
    for name in args.models:
        path = catalog.find(name)
        if path is None:
            print(f"skip {name}: not pulled (thrifty models pull {name})")
            continue
        print(f"benchmarking {name} ...", file=sys.stderr, flush=True)
        rows.append(bench_model(name, path, args.repeat, args.n_ctx))
    if not rows:
        print("no bundled model is pulled; nothing to benchmark")
        return 0
    print(f"llama.cpp, 1 thread, greedy, medians of {args.repeat} (load average {os.getloadavg()[0]:.2f})")
    print(format_table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
