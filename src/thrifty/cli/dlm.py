"""`thrifty dlm ...`: masked diffusion language models — train from scratch, evaluate samplers."""

from __future__ import annotations

import argparse

from thrifty.cli._common import add_config_args, add_verb, add_verbs, resolve_config
from thrifty.dlm.rl.config import ALGOS


def register(rooms) -> None:
    verbs = add_verbs(rooms, "dlm", "masked diffusion LMs: train from scratch with exact resume, evaluate samplers, "
                      "policy optimisation (diffu-GRPO, DiFFPO, dTRPO, VRPO)")
    t = add_verb(verbs, "train-sft", "train the small masked-diffusion model on a task (e.g. 4×4 Sudoku), checkpointing "
                 "with exact resume; prints held-out reward and solve rate as it goes", _train)
    add_config_args(t)
    t.add_argument("--steps", type=int, help="total optimiser steps (a re-run resumes towards this)")
    t.add_argument("--run-dir", help="where config.yaml, metrics.jsonl and checkpoint/ go")
    e = add_verb(verbs, "eval", "held-out reward, solve rate and forward passes of each sampler for a trained run "
                 "(accuracy vs NFE)", _eval)
    e.add_argument("--run-dir", required=True, help="a run of `dlm train-sft`")
    e.add_argument("--n", type=int, default=256, help="held-out test examples")
    s = add_verb(verbs, "sample", "decode held-out examples (or your own prompts) with one sampler: answer, reward, "
                 "forward passes and optionally the step at which each token was fixed", _sample)
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", help="a `dlm train-sft` or `dlm rl` run")
    src.add_argument("--hf-model", help="a local Hugging Face masked-diffusion model directory (LLaDA/Dream style; "
                     "needs --prompt and --gen-len)")
    s.add_argument("--gen-len", type=int, default=32, help="--hf-model: answer tokens to generate")
    s.add_argument("--prompt", action="append", default=[], help="task text to answer (repeatable; default: test examples)")
    s.add_argument("--n", type=int, default=4, help="held-out examples when no --prompt is given")
    s.add_argument("--sampler", default="low_confidence",
                   choices=("low_confidence", "random", "threshold", "entropy_bounded"), help="the decoding rule")
    s.add_argument("--steps", type=int, default=0, help="fixed-step samplers: steps (0: one token per step)")
    s.add_argument("--threshold", type=float, default=0.9, help="threshold sampler: confidence to commit")
    s.add_argument("--gamma", type=float, default=0.1, help="entropy-bounded sampler: the bound γ")
    s.add_argument("--block-len", type=int, help="semi-autoregressive block length")
    s.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--show-steps", action="store_true", help="print each answer token's step")
    s.add_argument("--cache", default="none", choices=("none", "prefix", "dual"),
                   help="our model: reuse keys/values within a block (prefix: prompt and committed blocks; dual: also "
                   "the masked later blocks); approximate, refreshed at each block boundary")
    s.add_argument("--cache-refresh", type=int, default=0, help="with --cache: also refresh every N steps (0: never)")
    s.add_argument("--min-len", type=int, default=0, help="no EOS in the first N answer tokens")
    s.add_argument("--no-special", action="store_true",
                   help="never propose special tokens in answers (the task's separator; a tokenizer's specials but EOS)")
    s.add_argument("--valid-only", action="store_true",
                   help="our model: answer only with the task's valid symbols, where the task names them")
    r = add_verb(verbs, "rl", "policy optimisation from an SFT run or, with LoRA, a Hugging Face checkpoint: "
                 "diffu-GRPO, wd1 (ratio-free weighted likelihood), DiFFPO (2-MF surrogate, importance weights, joint sampler), "
                 "dTRPO or VRPO (offline "
                 "preference pairs), or the equal-compute SFT control; resumes exactly", _rl)
    add_config_args(r)
    r.add_argument("--algo", choices=ALGOS, help="the algorithm")
    r.add_argument("--init-run", help="the `dlm train-sft` run to start from (also the reference)")
    r.add_argument("--run-dir", help="where config.yaml, metrics.jsonl and checkpoint/ go")
    r.add_argument("--steps", type=int, help="optimiser steps (a re-run resumes towards this)")
    r.add_argument("--max-wall-s", type=float, help="also stop after this much training time (equal-compute runs)")
    r.add_argument("--max-cpu-s", type=float, help="also stop after this much process CPU time of training")
    r.add_argument("--seed", type=int, help="seed of rollouts, masks and pairs")
    r.add_argument("--hf-model", help="start from a local Hugging Face masked-diffusion checkpoint (LLaDA/Dream "
                   "style) instead of --init-run: LoRA-trained, the reference is the model with the adapter off, "
                   "checkpoints save the adapter (hf_model); needs --prompts-file and --reward")
    r.add_argument("--prompts-file", help="--hf-model: JSONL prompts, one {\"prompt\": text or chat messages, other "
                   "columns...} per line, or the same columns in a .csv, a .parquet or a `datasets` save_to_disk "
                   "folder (prompts_file)")
    r.add_argument("--pairs-file", help="dtrpo/vrpo: pairs from `thrifty dlm pairs` (.safetensors) or, with "
                   "--hf-model, JSONL text pairs {\"prompt\", \"chosen\", \"rejected\"} (pairs_file)")
    r.add_argument("--reward", action="append", metavar="MODULE:FUNCTION", help="--hf-model: a reward "
                   "f(prompts, completions, **columns) -> list[float | None] as module:function or file.py:function, "
                   "or a built-in: math_answer, exact_answer, contains_answer (read an `answer` column), code_tests "
                   "(runs the code with a `tests` column in the sandbox); "
                   "repeatable, summed (replaces reward_funcs)")
    p = add_verb(verbs, "pairs", "preference pairs from a model's own samples: G answers per training prompt ranked by "
                 "the verifier, best against worst (for dTRPO and VRPO)", _pairs)
    p.add_argument("--run-dir", required=True, help="a `dlm train-sft` run whose model samples")
    p.add_argument("--out", required=True, help="the pairs file to write (.safetensors)")
    p.add_argument("--prompts", type=int, default=512, help="training prompts")
    p.add_argument("--samples", type=int, default=8, help="samples per prompt")
    p.add_argument("--min-gap", type=float, default=0.0, help="keep a pair only when the reward gap exceeds this")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--decoding", choices=("rollout", "eval"), default="rollout",
                   help="rollout: the rollout sampler (blocks of a quarter, two tokens a step); eval: the evaluation "
                   "decoder (one token a step, the run's evaluation blocks) at --temperature (pair_decoding in dlm rl)")
    p.add_argument("--remasking", choices=("low_confidence", "random"), default="low_confidence",
                   help="which positions each step commits: the most confident, or a model-free random choice (then "
                   "a trajectory's token replay is its exact probability up to a constant; pair_remasking in dlm rl)")
    p.add_argument("--seed", type=int, default=0, help="seed of prompts and samples")


def _train(args: argparse.Namespace) -> int:
    from thrifty.dlm.sft import DlmSFTConfig, train_sft

    cfg = resolve_config(DlmSFTConfig, args, {"steps": "steps", "run_dir": "run_dir"})
    res = train_sft(cfg)
    print(f"{res['params'] / 1e3:.0f}k-parameter model at step {res['step']}: test reward {res.get('reward', 0):.3f}, "
          f"solved {res.get('solved', 0):.3f}; checkpoint and metrics.jsonl in {cfg.run_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from thrifty.dlm.sampler_eval import sampler_table

    print(sampler_table(Path(args.run_dir), args.n))
    return 0


def _rl(args: argparse.Namespace) -> int:
    import json

    from thrifty.dlm.rl.config import DlmRLConfig
    from thrifty.dlm.rl.loop import train_rl

    if args.reward:  # a list: passed as one JSON (= YAML) override
        args.overrides = [*args.overrides, f"reward_funcs={json.dumps(args.reward)}"]
    cfg = resolve_config(DlmRLConfig, args, {"algo": "algo", "init_run": "init_run", "run_dir": "run_dir",
                                              "steps": "steps", "max_wall_s": "max_wall_s", "max_cpu_s": "max_cpu_s",
                                              "seed": "seed", "hf_model": "hf_model", "prompts_file": "prompts_file",
                                              "pairs_file": "pairs_file"})
    res = train_rl(cfg)
    print(f"{cfg.algo}: step {res['step']} after {res['wall_s']:.0f} s of training: held-out reward "
          f"{res.get('eval_reward', 0):.3f}, solved {res.get('eval_solved', 0):.3f}; metrics.jsonl and checkpoint "
          f"in {cfg.run_dir}")
    return 0


def _pairs(args: argparse.Namespace) -> int:
    import torch

    from thrifty.core.errors import ConfigError
    from thrifty.dlm.rl.pairs import sample_pairs, save_pairs
    from thrifty.dlm.run import load_model

    if args.prompts < 1 or args.samples < 2 or args.temperature < 0:
        raise ConfigError("--prompts must be >= 1, --samples >= 2 and --temperature >= 0")
    cfg, task, model = load_model(args.run_dir)
    torch.set_num_threads(cfg.n_threads)
    pairs, stats = sample_pairs(model, task, args.prompts, args.samples, torch.Generator().manual_seed(args.seed),
                                args.seed, args.min_gap, args.temperature, decoding=args.decoding,
                                eval_block_len=cfg.eval_block_len, remasking=args.remasking)
    save_pairs(pairs, args.out, {"task": task.name, "init_run": str(args.run_dir), "pair_decoding": args.decoding,
                                 "pair_remasking": args.remasking})
    print(f"{len(pairs)} pairs from {args.prompts} prompts × {args.samples} samples, {args.decoding} decoding (mean reward "
          f"{stats['sample_reward']:.3f}; chosen {stats['chosen_reward']:.3f}, rejected "
          f"{stats['rejected_reward']:.3f}) -> {args.out}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from pathlib import Path

    from thrifty.core.errors import ConfigError
    from thrifty.dlm.run import load_model
    from thrifty.dlm.sampler_eval import build_sampler, sample_lines

    if args.n < 1:
        raise ConfigError("--n must be >= 1")
    if args.hf_model:
        return _sample_hf(args)
    _, task, _ = load_model(args.run_dir)
    constraints = None
    if args.min_len or args.no_special or args.valid_only:
        from thrifty.dlm.samplers.constraints import AnswerConstraints

        constraints = AnswerConstraints.from_task(task, args.min_len, args.no_special, args.valid_only)
    sampler = build_sampler(task.vocab.mask_id, task.answer_len, args.sampler, args.steps, args.threshold,
                            args.gamma, args.block_len, args.temperature, cache=args.cache,
                            cache_refresh=args.cache_refresh, constraints=constraints)
    for line in sample_lines(Path(args.run_dir), sampler, args.n, args.prompt or None, args.seed, args.show_steps):
        print(line)
    return 0


def _sample_hf(args: argparse.Namespace) -> int:
    import torch

    from thrifty.core.errors import ConfigError
    from thrifty.dlm.hf_adapter import HFMaskedDiffusion
    from thrifty.dlm.sampler_eval import build_sampler

    if not args.prompt or args.gen_len < 1:
        raise ConfigError("--hf-model needs --prompt TEXT and --gen-len >= 1")
    model = HFMaskedDiffusion.from_pretrained(args.hf_model)
    if args.cache != "none" or args.valid_only:
        raise ConfigError("--cache and --valid-only work with our model (--run-dir) only")
    constraints = None
    if args.min_len or args.no_special:
        from thrifty.dlm.samplers.constraints import AnswerConstraints

        constraints = AnswerConstraints(model.eos_id, args.min_len, model.special_ids() if args.no_special else ())
    sampler = build_sampler(model.mask_id, args.gen_len, args.sampler, args.steps, args.threshold, args.gamma, args.block_len,
                            args.temperature, constraints=constraints)
    device = next(model.parameters()).device  # the logits stay there: so do the prompt and the sampler's noise
    for text in args.prompt:
        prompt = model.encode(text).to(device)
        with torch.no_grad():
            out = sampler.sample(model, prompt, args.gen_len, torch.Generator(device=device).manual_seed(args.seed))
        answer = out.tokens[0, prompt.shape[1]:].tolist()
        if model.eos_id is not None and model.eos_id in answer:
            answer = answer[:answer.index(model.eos_id)]
        print(f"{text} -> {model.tokenizer.decode(answer)}  (NFE {out.nfe})")
        if args.show_steps:
            print("  steps: " + " ".join(str(int(v)) for v in out.step_map[0]))
    return 0
