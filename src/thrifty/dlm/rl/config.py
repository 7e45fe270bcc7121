"""The one config of `thrifty dlm rl`: which algorithm, the SFT run or Hugging Face checkpoint it starts from, and every
switch the algorithms expose (each documented where it is defined; YAML files under configs/dlm/ set them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from thrifty.core.errors import ConfigError, check_choice

ALGOS = ("diffu_grpo", "diffpo", "wd1", "dtrpo", "vrpo", "sft")
ESTIMATORS = ("auto", "one_step", "two_times")
PREF_ESTIMATORS = ("auto", "block", "replay", "elbo")
PAIR_DECODINGS = ("rollout", "eval")  # how preference pairs are decoded (thrifty.dlm.rl.pairs.pair_sampler)
PAIR_CHOSEN = ("self", "gold")  # the chosen side of a pair (thrifty.dlm.rl.pairs.build_pair_sets)
HF_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class DlmRLConfig:
    algo: str = "diffu_grpo"  # diffu_grpo | diffpo | dtrpo | vrpo | sft (the equal-compute SFT-only control)
    init_run: str = "runs/dlm_sudoku4"  # a `dlm train-sft` run: its checkpoint is the policy's start and the reference
    # (or hf_model below: a Hugging Face checkpoint)
    run_dir: str = "runs/dlm_rl"
    seed: int = 0
    steps: int = 200  # optimiser steps (an online rollout takes `mu` of them)
    max_wall_s: float = 0.0  # > 0: also stop after this much training time (evaluation excluded) — equal-compute runs
    max_cpu_s: float = 0.0  # > 0: the same in process CPU seconds (fair when other jobs share the machine)
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 0.2
    n_threads: int = 1
    n_train: int = 5000  # the pool of training prompts
    n_eval: int = 256
    eval_every: int = 50
    checkpoint_every: int = 50
    ref_sync_every: int = 0  # > 0: copy the policy into the reference every this many steps (d1: 64)
    tensorboard: bool = False  # also write metrics.jsonl's records as TensorBoard event files under <run_dir>/tb/
    # online policy gradient (diffu_grpo, diffpo)
    prompts_per_step: int = 16
    group_size: int = 8
    mu: int = 4  # gradient steps per rollout batch, one mask seed each
    eps: float = 0.5  # PPO clip
    beta: float = 0.04  # k3 KL weight
    scale_rewards: bool = False  # d1: advantages are not divided by the group std
    agg: str = "token"  # d1: mean over all the batch's completion tokens | "sequence": per-sequence, then batch
    estimator: str = "auto"  # auto (diffu_grpo: one_step, diffpo: two_times) | one_step | two_times
    prompt_mask_p: float = 0.15  # one-step mean-field: each prompt token masked with this probability
    random_masking: bool = True  # fresh mask seeds per rollout batch (False: seed 42 always, as d1's option)
    rollout_steps: int = 0  # low-confidence sampler steps for rollouts (0: half the answer length)
    rollout_temperature: float = 1.0
    block_len: int = 0  # semi-autoregressive blocks for rollouts and dTRPO's blocks (0: answer_len / 4)
    # DiFFPO
    is_level: str = "token"  # importance weight between surrogate and sampler: token | sequence | none
    is_cap: float = 2.0
    joint_sampler: bool = False  # learn a per-prompt entropy bound γ over `gamma_grid` with the policy
    gamma_grid: list[float] = field(default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0])
    nfe_price: float = 0.0  # λ in r = correctness − λ · NFE / NFE_max
    train_policy: bool = True  # False with joint_sampler: train the sampler head only
    # offline preference (dtrpo, vrpo)
    pair_prompts: int = 512  # prompts whose own samples are ranked into (chosen, rejected) pairs
    pair_samples: int = 8  # samples per prompt
    min_gap: float = 0.0  # a pair needs reward(chosen) − reward(rejected) > min_gap
    pair_batch: int = 16
    dpo_beta: float = 3.0  # chosen on validation for dTRPO and VRPO (bench/dlm_beta_sweep.py; 0.1 and 0.3 fall below the start)
    pref_estimator: str = "auto"  # auto (dtrpo: block, vrpo: elbo) | block | replay | elbo
    mc_n: int = 8  # MC-ELBO samples (VRPO)
    pairs_file: str = ""  # reuse pairs written by `thrifty dlm pairs` (default: build them at the start), or with
    # hf_model a .jsonl of {"prompt", "chosen", "rejected"} text rows (dTRPO orders them by the reference's confidence)
    # how pairs are decoded: rollout (the rollout sampler: block_len blocks, rollout_steps steps) | eval (the
    # evaluation decoder: low-confidence, one token a step, the SFT run's eval blocks); both draw tokens at
    # rollout_temperature. dTRPO's blocks follow the pairs' decoding blocks.
    pair_decoding: str = "rollout"
    pair_remasking: str = "low_confidence"  # pair order: low_confidence | random (token replay exact up to a constant)
    trajectory_terms: str = "auto"  # tokens | tokens+positions | auto (dTRPO scores: +positions; DiFFPO μ: tokens)
    pair_chosen: str = "self"  # self (best sample) | gold (the reference answer) against the worst sample
    rpo_alpha: float = 0.0  # RPO: + α · NLL(chosen) per answer token (the policy's score of the chosen side)
    # SFT control
    sft_batch: int = 64
    # rollouts decoded this many rows at a time (0: all of a step's rows at once; a large model's logits may not fit)
    rollout_micro_batch: int = 0
    # a Hugging Face masked-diffusion checkpoint (LLaDA/Dream style) instead of a `dlm train-sft` run
    # (thrifty.dlm.hf_train): LoRA-trained, the reference is the same model with the adapter switched off
    hf_model: str = ""  # a local model directory; init_run is then unused
    prompts_file: str = ""  # JSONL, one {"prompt": text or chat messages, other columns...} per line; or the same
    # columns in a .csv, a .parquet or a folder written by datasets' save_to_disk
    eval_file: str = ""  # held-out prompts in the same format (default: n_eval rows drawn out of prompts_file)
    reward_funcs: list[str] = field(default_factory=list)  # module:function or file.py:function, each
    # f(prompts, completions, **columns) -> list[float | None]; summed per completion
    reward_weights: list[float] = field(default_factory=list)  # one per reward function (default: all 1)
    gen_len: int = 256  # answer tokens (d1: max_completion 256)
    max_prompt_len: int = 200  # longer prompts keep their last tokens (d1: 200)
    chat_template: bool = True  # apply the tokenizer's chat template when it has one
    lora_r: int = 128  # d1: r 128, alpha 64 (d1's LoRA dropout 0.05 is not used: the model trains without dropout)
    lora_alpha: float = 64.0
    lora_target_modules: list[str] = field(default_factory=list)  # module names; empty: every linear layer but
    # the output head (PEFT's "all-linear")
    hf_dtype: str = "auto"  # auto (bfloat16 on a GPU that supports it, else float32) | float32 | bfloat16 | float16
    gradient_checkpointing: bool = False  # hf_model: recompute each layer's activations in the backward pass (less
    # memory, about one more forward pass of compute)

    def __post_init__(self) -> None:
        from thrifty.dlm.rl.trajectory import TRAJECTORY_TERMS
        from thrifty.dlm.samplers.low_confidence import REMASKING

        for name, allowed in (("algo", ALGOS), ("estimator", ESTIMATORS), ("pref_estimator", PREF_ESTIMATORS),
                              ("pair_decoding", PAIR_DECODINGS), ("pair_remasking", REMASKING),
                              ("trajectory_terms", TRAJECTORY_TERMS), ("pair_chosen", PAIR_CHOSEN)):
            check_choice(name, getattr(self, name), allowed)
        if self.rpo_alpha < 0:
            raise ConfigError(f"rpo_alpha must be >= 0, got {self.rpo_alpha}")
        if self.is_level not in ("token", "sequence", "none"):
            raise ConfigError(f"is_level must be token, sequence or none, got {self.is_level!r}")
        for name in ("steps", "n_threads", "n_train", "n_eval", "eval_every", "checkpoint_every", "prompts_per_step",
                     "group_size", "mu", "pair_prompts", "pair_samples", "pair_batch", "mc_n", "sft_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2 and self.algo in ("diffu_grpo", "diffpo"):
            raise ConfigError("group_size must be >= 2: advantages compare samples of one prompt")
        if not self.lr > 0 or self.rollout_temperature < 0 or self.is_cap <= 0 or self.dpo_beta <= 0:
            raise ConfigError("lr, is_cap and dpo_beta must be > 0 and rollout_temperature >= 0")
        if not self.gamma_grid or any(g < 0 for g in self.gamma_grid):
            raise ConfigError("gamma_grid must list non-negative entropy bounds")
        if not self.train_policy and not self.joint_sampler:
            raise ConfigError("train_policy: false leaves nothing to train unless joint_sampler is on")
        if self.algo == "wd1" and self.joint_sampler:
            raise ConfigError("wd1 has no importance weights or sampler head: use joint_sampler with diffpo")
        if self.rollout_micro_batch < 0:
            raise ConfigError(f"rollout_micro_batch must be >= 0, got {self.rollout_micro_batch}")
        if self.hf_model:
            self._check_hf()
        elif self.gradient_checkpointing:
            raise ConfigError("gradient_checkpointing is for hf_model runs (the small model needs no memory saving)")

    def _check_hf(self) -> None:
        if self.algo == "sft":
            raise ConfigError("hf_model: prompt files carry no reference answers, so the SFT control does not apply")
        if not self.train_policy:
            raise ConfigError("hf_model: train_policy stays on (the LoRA adapter always trains)")
        if self.ref_sync_every:
            raise ConfigError("hf_model: the reference is the base model (LoRA switched off); ref_sync_every must be 0")
        if not self.prompts_file or not self.reward_funcs:
            raise ConfigError("hf_model needs prompts_file (JSONL) and at least one reward_funcs entry")
        if self.reward_weights and len(self.reward_weights) != len(self.reward_funcs):
            raise ConfigError(f"reward_weights has {len(self.reward_weights)} entries for "
                              f"{len(self.reward_funcs)} reward_funcs")
        if self.gen_len < 1 or self.max_prompt_len < 1 or self.lora_r < 1 or not self.lora_alpha > 0:
            raise ConfigError("gen_len, max_prompt_len and lora_r must be >= 1 and lora_alpha > 0")
        check_choice("hf_dtype", self.hf_dtype, HF_DTYPES)

    def pg_estimator(self) -> str:
        if self.estimator != "auto":
            return self.estimator
        return "two_times" if self.algo == "diffpo" else "one_step"

    def preference_estimator(self) -> str:
        if self.pref_estimator != "auto":
            return self.pref_estimator
        return "elbo" if self.algo == "vrpo" else "block"


__all__ = ["ALGOS", "HF_DTYPES", "PAIR_CHOSEN", "PAIR_DECODINGS", "DlmRLConfig"]
