"""Accuracy against forward passes for every sampler on a trained run's held-out examples (`thrifty dlm eval`):
a markdown table, ``sampler_eval.json`` and a plot of solve rate against mean NFE per sampler family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from thrifty.dlm.run import evaluate, load_model
from thrifty.dlm.samplers import EntropyBoundedSampler, LowConfidenceSampler, ThresholdSampler
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


SAMPLERS = ("low_confidence", "random", "threshold", "entropy_bounded")


def build_sampler(mask: int, answer_len: int, name: str, steps: int = 0, threshold: float = 0.9,
                  gamma: float = 0.1, block_len: int | None = None, temperature: float = 0.0,
                  **options: Any) -> Any:
    """One sampler by name for answers of ``answer_len`` tokens (``steps`` 0: one token per step); ``options`` go
    to the sampler as they are (``cache``, ``cache_refresh``, ``constraints``)."""
    from thrifty.core.errors import ConfigError

    if name in ("low_confidence", "random"):
        return LowConfidenceSampler(mask, steps=steps or answer_len, block_len=block_len,
                                    temperature=temperature, remasking="random" if name == "random" else name,
                                    **options)
    if name == "threshold":
        return ThresholdSampler(mask, threshold=threshold, block_len=block_len, temperature=temperature, **options)
    if name == "entropy_bounded":
        return EntropyBoundedSampler(mask, gamma=gamma, block_len=block_len, temperature=temperature, **options)
    raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def sample_lines(run: Path, sampler: Any, n: int = 4, prompts: list[str] | None = None, seed: int = 0,
                 show_steps: bool = False) -> list[str]:
    """Decode ``prompts`` (task text) or ``n`` held-out examples: one line each with the answer, the reference and
    reward when known, and the forward passes; ``show_steps`` adds the step at which each answer token was fixed."""
    from thrifty.dlm.run import task_tensors
    from thrifty.dlm.tasks import DlmExample

    cfg, task, model = load_model(run)
    torch.set_num_threads(cfg.n_threads)
    examples = [DlmExample(p, "") for p in prompts] if prompts else task.examples("test", n, seed=cfg.seed + 1000)
    ids = task_tensors(task, examples, with_answer=False)
    with torch.no_grad():
        out = sampler.sample(model, ids, task.answer_len, torch.Generator().manual_seed(seed))
    lines = []
    for ex, row, steps, nfe in zip(examples, out.tokens[:, ids.shape[1]:], out.step_map, out.nfe_per_seq,
                                   strict=True):
        text = task.decode(row.tolist())
        line = f"{ex.prompt} -> {text}  (NFE {int(nfe)}"
        line += f"; reference {ex.answer}, reward {task.reward(ex, text):.3f})" if ex.answer else ")"
        lines.append(line + (f"\n  steps: {' '.join(str(int(s)) for s in steps)}" if show_steps else ""))
    return lines


def sampler_table(run: Path, n: int) -> str:
    """Markdown table of reward, solve rate and mean NFE per sampler; also written to sampler_eval.json."""
    cfg, task, model = load_model(run)
    torch.set_num_threads(cfg.n_threads)
    examples = task.examples("test", n, seed=cfg.seed + 1000)
    rows = {name: evaluate(model, task, examples, s) for name, s in samplers(task, cfg.eval_block_len).items()}
    (Path(run) / "sampler_eval.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot = accuracy_nfe_plot(rows, Path(run) / "sampler_eval.png", f"{task.name}: {n} held-out examples")
    lines = [f"{n} held-out {task.name} examples (test split)", "",
             "| sampler | reward | solved | mean NFE |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['reward']:.3f} | {v['solved']:.3f} | {v['nfe']:.1f} |" for k, v in rows.items()]
    return "\n".join([*lines, "", f"plot: {plot}"])


def accuracy_nfe_plot(rows: dict[str, dict[str, float]], path: Path, title: str) -> Path:
    """Solve rate against mean NFE, one curve per sampler family (the text before the first comma or number)."""
    from thrifty.evals.plots import curve_plot

    families: dict[str, list[tuple[float, float]]] = {}
    for name, v in rows.items():
        family = name.split(",")[0].rstrip("0123456789. γ")
        families.setdefault(family, []).append((v["nfe"], v["solved"]))
    curves = [(f, [x for x, _ in sorted(pts)], [y for _, y in sorted(pts)]) for f, pts in families.items()
              if len(pts) > 1]
    points = [(f, pts[0][0], pts[0][1]) for f, pts in families.items() if len(pts) == 1]
    return curve_plot(curves, path, title, xlabel="mean forward passes (NFE)", ylabel="solve rate", points=points)


__all__ = ["SAMPLERS", "accuracy_nfe_plot", "build_sampler", "sample_lines", "sampler_table", "samplers"]
