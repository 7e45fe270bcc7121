"""dTRPO's cost per preference pair against the exact trajectory ratio (replay), across decoding shapes.

On pairs of an SFT model's own samples (4 per prompt, temperature 1), the wall time and forward rows of scoring a
pair — chosen and rejected, policy and reference, forward and backward — with dTRPO's block estimate (one sampled
step per block, all blocks in one call) and with trajectory replay (one call per step). The ratio is T / N_B steps
per block in rows; wall time follows it less than linearly at this size.

    python bench/dlm_pair_cost.py [--run-dir runs/dlm_sudoku4_limited] [--pairs 32] [--repeat 3]
"""

from __future__ import annotations

import os

for _k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_k, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from thrifty.dlm.rl.dtrpo import block_scores, replay_scores  # noqa: E402
from thrifty.dlm.rl.pairs import build_pairs  # noqa: E402
from thrifty.dlm.rl.rollout import ForwardCounter, rollout_sampler  # noqa: E402
from thrifty.dlm.run import load_model  # noqa: E402


def pair_cost(policy, ref, task, pairs, block_len: int, repeat: int = 3) -> dict[str, tuple[float, float]]:
    """{"block" | "replay": (ms per pair, forward rows per pair)}: best of ``repeat``, forward and backward."""
    prompt = torch.cat([pairs.prompt_ids, pairs.prompt_ids])
    answer = torch.cat([pairs.chosen, pairs.rejected])
    step_map = torch.cat([pairs.chosen_steps, pairs.rejected_steps])
    cost = {}
    for name, fn in (("block", block_scores), ("replay", replay_scores)):
        best, rows = float("inf"), 0
        for _ in range(repeat):
            counter = ForwardCounter(policy, ref)
            t0 = time.perf_counter()
            theta, _ = fn(policy, ref, prompt, answer, step_map, task.vocab.mask_id, torch.Generator().manual_seed(0),
                          block_len=block_len)
            theta.sum().backward()
            best, rows = min(best, time.perf_counter() - t0), counter.rows
            counter.close()
        cost[name] = (1000 * best / len(pairs), rows / len(pairs))
    return cost


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/dlm_sudoku4_limited")
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    _, task, policy = load_model(args.run_dir)
    ref = copy.deepcopy(policy).requires_grad_(False)
    g = task.answer_len
    shapes = [(g // 4, g // 2), (g // 4, g), (g, g)] if g % 4 == 0 else [(g, g // 2 or 1), (g, g)]
    print(f"{task.name}: {g}-token answers, {args.pairs} pairs, best of {args.repeat}, 1 thread\n")
    print("| blocks × block length | steps T | dTRPO ms / pair | dTRPO rows | replay ms / pair | replay rows | "
          "time ratio | rows ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for block, steps in shapes:
        sampler = rollout_sampler(task, steps, block, 1.0)
        pairs, _ = build_pairs(policy, task, task.examples("train", 2 * args.pairs, seed=9), 4, sampler,
                               torch.Generator().manual_seed(0), block_len=block)
        pairs = pairs.take(torch.arange(min(args.pairs, len(pairs))))
        cost = pair_cost(policy, ref, task, pairs, block, args.repeat)
        (bt, br), (rt, rr) = cost["block"], cost["replay"]
        print(f"| {g // block} × {block} | {steps} | {bt:.1f} | {br:.0f} | {rt:.1f} | {rr:.0f} | {rt / bt:.1f}× | "
              f"{rr / br:.1f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
