"""Likelihood estimators for masked diffusion: forward passes and wall time per sequence, and their error against
exact values on answers short enough to enumerate.

A small bidirectional model trained here for ``--train-steps`` on a task whose answer tokens depend on each other
(the answer repeats one random digit: alone each token is uniform, together they are determined) and sampled
answers of ``--gen-len`` tokens (≤ 6; low-confidence sampler, one token per step, blocks of ``--block-len``). Exact targets:
the trajectory's own log-probability (replay) and, by enumerating every unmasking order, the any-order
log-likelihood and the exact ELBO. Each stochastic estimator is drawn ``--draws`` times; printed: its target, bias
(mean − target) and standard deviation over draws, forward passes and wall time per sequence.

    python bench/dlm_estimators.py [--gen-len 4] [--block-len 2] [--draws 200]
"""

from __future__ import annotations

from _common import go_offline

go_offline()

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from thrifty.dlm.likelihood import (  # noqa: E402
    block_single_pass,
    exact_any_order,
    mc_elbo,
    one_step_mean_field,
    trajectory_replay,
    two_times_mean_field,
)
from thrifty.dlm.model import DiffusionLM, DiffusionLMConfig  # noqa: E402
from thrifty.dlm.samplers import LowConfidenceSampler  # noqa: E402

MASK = 15


def _train(model: DiffusionLM, gen_len: int, steps: int, gen: torch.Generator) -> None:
    from thrifty.dlm.loss import elbo_loss
    from thrifty.dlm.masking import forward_mask, sample_times

    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        prompt = torch.randint(0, 10, (64, 4), generator=gen)
        digit = torch.randint(0, 10, (64, 1), generator=gen)
        x0 = torch.cat([prompt, digit.expand(64, gen_len)], dim=1)
        maskable = torch.zeros_like(x0, dtype=torch.bool)
        maskable[:, 4:] = True
        t = sample_times(64, gen)
        xt, masked = forward_mask(x0, t, MASK, gen, maskable=maskable)
        loss = elbo_loss(model(xt), x0, masked, t, maskable=maskable)
        opt.zero_grad()
        loss.backward()
        opt.step()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gen-len", type=int, default=4)
    ap.add_argument("--block-len", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-steps", type=int, default=300)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = DiffusionLMConfig(vocab_size=16, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_len=32)
    model = DiffusionLM(cfg, torch.Generator().manual_seed(args.seed))
    gen = torch.Generator().manual_seed(args.seed)
    _train(model, args.gen_len, args.train_steps, gen)
    model.eval()
    torch.set_grad_enabled(False)  # the estimators carry gradients for training; here they only measure
    prompt = torch.randint(0, 10, (args.batch, 4), generator=gen)
    out = LowConfidenceSampler(MASK, steps=args.gen_len, block_len=args.block_len).sample(
        model, prompt, args.gen_len, gen)
    answer, steps = out.tokens[:, 4:], out.step_map
    t0 = time.perf_counter()
    replay, replay_nfe = trajectory_replay(model, prompt, answer, steps, MASK)
    replay_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    log_p, elbo = exact_any_order(model, prompt, answer, MASK)
    exact_s = time.perf_counter() - t0
    n_orders = 1
    for k in range(2, args.gen_len + 1):
        n_orders *= k

    def draws(fn):
        vals, t0 = [], time.perf_counter()
        for _ in range(args.draws):
            v, nfe = fn()
            vals.append(v)
        return torch.stack(vals), nfe, (time.perf_counter() - t0) / args.draws

    rows = [("trajectory replay", "replay", replay[None], replay_nfe, replay_s),
            ("exact any-order (enumerated)", "log p", log_p[None], n_orders * args.gen_len, exact_s)]
    for name, target, fn in (
            ("dTRPO block single pass", "replay",
             lambda: block_single_pass(model, prompt, answer, steps, args.block_len, MASK, gen)),
            ("two-times mean-field", "replay",
             lambda: (lambda r: (r[0].sum(dim=1), r[1]))(two_times_mean_field(model, prompt, answer, steps, MASK, gen))),
            ("one-step mean-field", "replay",
             lambda: (lambda r: (r[0].sum(dim=1), r[1]))(one_step_mean_field(model, prompt, answer, MASK))),
            ("MC-ELBO n=8 (stratified t)", "ELBO", lambda: mc_elbo(model, prompt, answer, MASK, gen, n=8)),
            ("MC-ELBO n=1", "ELBO", lambda: mc_elbo(model, prompt, answer, MASK, gen, n=1))):
        vals, nfe, secs = draws(fn)
        rows.append((name, target, vals, nfe, secs))
    targets = {"replay": replay, "log p": log_p, "ELBO": elbo}
    print(f"{args.batch} sampled answers of {args.gen_len} tokens (blocks of {args.block_len}); model "
          f"{model.num_params() / 1e3:.0f}k parameters trained {args.train_steps} steps on the repeat task; "
          f"{args.draws} draws per stochastic estimator\n")
    print(f"mean over sequences: replay {replay.mean():.3f}, exact any-order log p {log_p.mean():.3f}, exact ELBO "
          f"{elbo.mean():.3f}\n")
    print("| estimator | target | bias (mean − target) | std over draws | forward passes | wall ms per sequence |")
    print("|---|---|---|---|---|---|")
    for name, target, vals, nfe, secs in rows:
        bias = (vals.mean(dim=0) - targets[target]).mean().item()
        std = vals.std(dim=0).mean().item() if vals.shape[0] > 1 else 0.0
        print(f"| {name} | {target} | {bias:+.3f} | {std:.3f} | {nfe} | {1000 * secs / args.batch:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
