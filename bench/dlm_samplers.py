"""Sampler throughput: thrifty's batched low-confidence sampler against a straightforward transcription of LLaDA's
block sampler (the published `generate` loop: per step a full softmax, Gumbel noise, confidence by gather, −∞
outside the block, a top-k per row in a Python loop), on the same trained model, same puzzles, same settings.

Needs a run of `thrifty dlm train-sft` (default `runs/dlm_sudoku4`). Printed: wall time of each over ``--repeat``
passes of ``--n`` held-out puzzles, their ratio (goal ≥ 1.5×), and whether the outputs are identical. Accuracy and
NFE per sampler come from `thrifty dlm eval`.

    python bench/dlm_samplers.py [--run-dir runs/dlm_sudoku4] [--n 256] [--steps 16] [--repeat 5]
"""

from __future__ import annotations

from _common import go_offline

go_offline()

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from thrifty.dlm.run import load_model, task_tensors  # noqa: E402
from thrifty.dlm.samplers import LowConfidenceSampler  # noqa: E402


@torch.no_grad()
def reference_llada(model, prompt: torch.Tensor, gen_len: int, steps: int, block_len: int, MASK: int) -> torch.Tensor:
    """LLaDA's block sampler as published, greedy (temperature 0), low-confidence remasking."""
    x = torch.full((prompt.shape[0], prompt.shape[1] + gen_len), MASK, dtype=torch.long)
    x[:, :prompt.shape[1]] = prompt
    n_blocks = gen_len // block_len
    per_block = steps // n_blocks
    for b in range(n_blocks):
        start, end = prompt.shape[1] + b * block_len, prompt.shape[1] + (b + 1) * block_len
        counts = (x[:, start:end] == MASK).sum(dim=1, keepdim=True)
        base, rem = counts // per_block, counts % per_block
        num_transfer = base.repeat(1, per_block) + (torch.arange(per_block)[None] < rem).long()
        for i in range(per_block):
            mask_index = x == MASK
            logits = model(x)
            x0 = logits.argmax(dim=-1)
            p = torch.softmax(logits.double(), dim=-1)
            x0_p = p.gather(-1, x0[..., None]).squeeze(-1)
            x0_p[:, end:] = float("-inf")
            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, torch.full_like(x0_p, float("-inf")))
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(confidence.shape[0]):
                _, select = torch.topk(confidence[j], k=int(num_transfer[j, i]))
                transfer[j, select] = True
            x[transfer] = x0[transfer]
    return x


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/dlm_sudoku4")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--block-len", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(args.run_dir)
    cfg, task, model = load_model(run)
    prompt = task_tensors(task, task.examples("test", args.n, seed=cfg.seed + 1000), with_answer=False)
    mask, g = task.vocab.mask_id, task.answer_len
    ours = LowConfidenceSampler(mask, steps=args.steps, block_len=args.block_len)
    times = {"thrifty": [], "reference": []}
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        a = ours.sample(model, prompt, g, torch.Generator()).tokens
        times["thrifty"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = reference_llada(model, prompt, g, args.steps, args.block_len, mask)
        times["reference"].append(time.perf_counter() - t0)
    same = torch.equal(a, b)
    best = {k: min(v) for k, v in times.items()}
    print(f"{args.n} puzzles, {args.steps} steps, block {args.block_len}, best of {args.repeat}: thrifty "
          f"{best['thrifty']:.3f} s, reference LLaDA loop {best['reference']:.3f} s -> thrifty is "
          f"{best['reference'] / best['thrifty']:.2f}x the reference's speed (goal >= 1.5x: "
          f"{'met' if best['reference'] >= 1.5 * best['thrifty'] else 'not met'}); identical outputs: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
