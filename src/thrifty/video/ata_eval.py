"""Accuracy of allocation rules at equal visual-token budgets on held-out needle videos, with the tokens actually
used, the relevance head's AUROC for evidence segments, markdown tables and PNG plots.

Every video is compressed once; each (rule, budget) pair then allocates on the same relevance scores, truncates,
and answers. Budgets are visual tokens per sampled frame (B = round(b · frames)). The ``ata+fixes`` rule is the
fixed preset with timestamps left out of B, so it gets the same visual budget as the others; ``oracle`` and
``oracle+fixes`` are the same two rules fed the ground-truth evidence mask instead of the relevance head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.evals.prob_metrics import auroc
from thrifty.video.adapter import CompressorBackend, DecoderBackend
from thrifty.video.pipeline import AllocSpec, answer_needle
from thrifty.video.synth import TASKS, NeedleVideo, make_benchmark

RULES: dict[str, tuple[str, dict]] = {
    "ata": ("ata", {}),
    "ata+fixes": ("ata", {"preset": "fixed", "count_timestamps": False}),
    "uniform": ("uniform", {}),
    "uniform+spread": ("uniform_spread", {}),
    "topk_no_anchor": ("topk_no_anchor", {}),
    "oracle": ("oracle", {}),
    "oracle+fixes": ("oracle", {"preset": "fixed", "count_timestamps": False}),
}
BUDGETS = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0)


@dataclass
class EvalResult:
    rows: list[dict] = field(default_factory=list)  # one per (video, rule, budget)
    relevance: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)  # (task, scores, evidence)
    allocations: dict[tuple[str, float], list[np.ndarray]] = field(default_factory=dict)
    evidence: list[np.ndarray] = field(default_factory=list)
    budgets: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()


def heldout(n: int, seed: int, lengths: tuple[int, ...], tasks: tuple[str, ...] = TASKS) -> list[NeedleVideo]:
    """``n`` needle videos from the benchmark stream (seeds (seed, "bench", i): never a training seed)."""
    return make_benchmark(n, seed, lengths, tasks)


def run_eval(compressor: CompressorBackend, decoder: DecoderBackend, videos: list[NeedleVideo],
             budgets=BUDGETS, rules: dict[str, tuple[str, dict]] | None = None, k_min: int = 1,
             progress: bool = False) -> EvalResult:
    rules = rules or RULES
    if not videos or not budgets:
        raise ConfigError("evaluation needs at least one video and one budget")
    specs = [AllocSpec(label, rule, float(b), opts) for b in budgets for label, (rule, opts) in rules.items()]
    res = EvalResult(budgets=tuple(float(b) for b in budgets), labels=tuple(rules))
    for i, v in enumerate(videos):
        comp, answered = answer_needle(v, compressor, decoder, specs, k_min)
        res.relevance.append((v.task, comp.relevance, v.evidence))
        res.evidence.append(v.evidence)
        for a in answered:
            res.allocations.setdefault((a.spec.label, a.spec.per_frame), []).append(a.k)
            res.rows.append({"video": i, "task": v.task, "frames": v.n_frames, "rule": a.spec.label,
                             "per_frame": a.spec.per_frame, "budget": a.budget, "correct": a.answer == v.answer,
                             "visual": a.tokens.visual, "timestamp": a.tokens.timestamp})
        if progress and (i + 1) % 20 == 0:
            print(f"evaluated {i + 1}/{len(videos)} videos", flush=True)
    return res


def _mean(rows, key, **where) -> float:
    vals = [float(r[key]) for r in rows if all(r[k] == v for k, v in where.items())]
    return float(np.mean(vals)) if vals else math.nan


def accuracy_grid(res: EvalResult) -> dict[tuple[str, float], float]:
    return {(lab, b): _mean(res.rows, "correct", rule=lab, per_frame=b) for lab in res.labels for b in res.budgets}


def tokens_per_frame(res: EvalResult, label: str, budget: float, kind: str = "visual") -> float:
    vals = [r[kind] / r["frames"] for r in res.rows if r["rule"] == label and r["per_frame"] == budget]
    return float(np.mean(vals))


def relevance_auroc(res: EvalResult, task: str | None = None) -> float:
    """AUROC of the relevance scores for evidence segments, pooled over the videos (of one task if given)."""
    picked = [(s, e) for t, s, e in res.relevance if task is None or t == task]
    if not picked:
        return math.nan
    return auroc(np.concatenate([s for s, _ in picked]), np.concatenate([e for _, e in picked]))


def in_budget(res: EvalResult, budget: float) -> bool:
    """Does every rule stay within its visual budget on every video at this budget?"""
    return all(r["visual"] <= r["budget"] for r in res.rows if r["per_frame"] == budget)


def tables(res: EvalResult) -> str:
    """Markdown: accuracy (and visual tokens/frame used) by rule × budget, accuracy by task at the tightest and a
    middle budget, relevance AUROC by task, and the goal gaps per budget."""
    acc = accuracy_grid(res)
    n_videos = len(res.relevance)
    head = "| rule | " + " | ".join(f"{b:g} tok/frame" for b in res.budgets) + " |"
    sep = "|---" * (len(res.budgets) + 1) + "|"
    out = [f"### Accuracy (visual tokens/frame actually used) — {n_videos} held-out videos", "", head, sep]
    for lab in res.labels:
        cells = [f"{acc[lab, b]:.3f} ({tokens_per_frame(res, lab, b):.3f})" for b in res.budgets]
        out.append(f"| {lab} | " + " | ".join(cells) + " |")
    tasks = sorted({r["task"] for r in res.rows}, key=lambda t: TASKS.index(t) if t in TASKS else 99)
    for b in sorted({res.budgets[0], res.budgets[len(res.budgets) // 2]}):
        out += ["", f"### Accuracy by question type at {b:g} visual tokens/frame", "",
                "| rule | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        for lab in res.labels:
            out.append(f"| {lab} | " + " | ".join(f"{_mean(res.rows, 'correct', rule=lab, per_frame=b, task=t):.3f}"
                                                   for t in tasks) + " |")
    out += ["", "### Relevance head: AUROC for evidence segments", "", "| all | " + " | ".join(tasks) + " |",
            "|---" * (len(tasks) + 1) + "|",
            f"| {relevance_auroc(res):.3f} | " + " | ".join(f"{relevance_auroc(res, t):.3f}" for t in tasks) + " |"]
    if {"ata", "uniform", "oracle"} <= set(res.labels):
        out += ["", "### Goal gaps (accuracy points)", "", "| budget | every rule within budget | ATA − uniform "
                "| oracle − ATA | ATA+fixes − uniform | ATA+fixes − uniform+spread | oracle+fixes − ATA+fixes |",
                "|---|---|---|---|---|---|---|"]
        for b in res.budgets:
            fixes, ofixes = acc.get(("ata+fixes", b), math.nan), acc.get(("oracle+fixes", b), math.nan)
            spread = acc.get(("uniform+spread", b), math.nan)
            out.append(f"| {b:g} | {'yes' if in_budget(res, b) else 'no'} "
                       f"| {100 * (acc['ata', b] - acc['uniform', b]):+.1f} | {100 * (acc['oracle', b] - acc['ata', b]):+.1f} "
                       f"| {100 * (fixes - acc['uniform', b]):+.1f} | {100 * (fixes - spread):+.1f} "
                       f"| {100 * (ofixes - fixes):+.1f} |")
    return "\n".join(out)


def plots(res: EvalResult, out_dir: str | Path, heat_rule: str = "ata", heat_rows: int = 30) -> list[Path]:
    """accuracy_vs_budget.png, and a heat map of ``heat_rule``'s tokens per segment (videos × segments) at the
    tightest, the middle and the largest budget, evidence segments dotted."""
    from thrifty.evals.plots import curve_plot, heatmap_plot

    out = Path(out_dir)
    acc = accuracy_grid(res)
    paths = [curve_plot([(lab, np.log2(res.budgets), [acc[lab, b] for b in res.budgets]) for lab in res.labels],
                        out / "accuracy_vs_budget.png", title="needle videos: accuracy at equal visual budgets",
                        xlabel="log2 visual tokens per frame", ylabel="accuracy")]
    for b in sorted({res.budgets[0], res.budgets[len(res.budgets) // 2], res.budgets[-1]}):
        ks = res.allocations.get((heat_rule, b), [])[:heat_rows]
        if not ks:
            continue
        width = max(k.size for k in ks)
        grid = np.full((len(ks), width), np.nan)
        marks = np.zeros((len(ks), width), dtype=bool)
        for i, (k, e) in enumerate(zip(ks, res.evidence, strict=False)):
            grid[i, :k.size], marks[i, :e.size] = k, e
        tasks = [t for t, _, _ in res.relevance[:len(ks)]]
        paths.append(heatmap_plot(grid, out / f"allocation_{heat_rule}_{b:g}.png", row_labels=tasks,
                                  title=f"{heat_rule} tokens per segment at {b:g} tokens/frame (dots: evidence)",
                                  xlabel="segment", ylabel="video", marks=marks, colorbar="memory tokens kept"))
    return paths
