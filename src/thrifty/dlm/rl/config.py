"""The one config of `thrifty dlm rl`: which algorithm, the SFT run it starts from, and every switch the algorithms
expose (each documented where it is defined; YAML files under configs/dlm/ set them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from thrifty.core.errors import ConfigError

ALGOS = ("diffu_grpo", "diffpo", "dtrpo", "vrpo", "sft")
ESTIMATORS = ("auto", "one_step", "two_times")
PREF_ESTIMATORS = ("auto", "block", "replay", "elbo")
PAIR_DECODINGS = ("rollout", "eval")  # how preference pairs are decoded (thrifty.dlm.rl.pairs.pair_sampler)


@dataclass
class DlmRLConfig:
    algo: str = "diffu_grpo"  # diffu_grpo | diffpo | dtrpo | vrpo | sft (the equal-compute SFT-only control)
    init_run: str = "runs/dlm_sudoku4"  # a `dlm train-sft` run: its checkpoint is the policy's start and the reference
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
    agg: str = "sequence"  # per-sequence token mean then batch mean | "token": mean over all batch tokens
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
    dpo_beta: float = 0.1
    pref_estimator: str = "auto"  # auto (dtrpo: block, vrpo: elbo) | block | replay | elbo
    mc_n: int = 8  # MC-ELBO samples (VRPO)
    pairs_file: str = ""  # reuse pairs written by `thrifty dlm pairs` (default: build them at the start)
    # how pairs are decoded: rollout (the rollout sampler: block_len blocks, rollout_steps steps) | eval (the
    # evaluation decoder: low-confidence, one token a step, the SFT run's eval blocks); both draw tokens at
    # rollout_temperature. dTRPO's blocks follow the pairs' decoding blocks.
    pair_decoding: str = "rollout"
    # SFT control
    sft_batch: int = 64

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown algo {self.algo!r}; choose one of {', '.join(ALGOS)}")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {self.estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        if self.pref_estimator not in PREF_ESTIMATORS:
            raise ConfigError(f"unknown pref_estimator {self.pref_estimator!r}; choose one of "
                              f"{', '.join(PREF_ESTIMATORS)}")
        if self.pair_decoding not in PAIR_DECODINGS:
            raise ConfigError(f"unknown pair_decoding {self.pair_decoding!r}; choose one of {', '.join(PAIR_DECODINGS)}")
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

    def pg_estimator(self) -> str:
        if self.estimator != "auto":
            return self.estimator
        return "two_times" if self.algo == "diffpo" else "one_step"

    def preference_estimator(self) -> str:
        if self.pref_estimator != "auto":
            return self.pref_estimator
        return "elbo" if self.algo == "vrpo" else "block"


__all__ = ["ALGOS", "PAIR_DECODINGS", "DlmRLConfig"]
