"""A dlm run as the rest of the room uses it: the model config of a `dlm train-sft` run, loading its trained model,
the default (evaluation) sampler, and evaluation by reward, exact-solve rate and forward passes.

The RL loop, preference pairs, sampler evaluation and the benches read runs through this module; training itself is
:mod:`thrifty.dlm.sft`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_weights
from thrifty.core.errors import ConfigError, check_choice
from thrifty.dlm.model import DiffusionLM, DiffusionLMConfig
from thrifty.dlm.tasks import TASKS, DlmExample, DlmTask, get_task


@dataclass
class DlmSFTConfig:
    task: str = "sudoku4"
    run_dir: str = "runs/dlm_sft"
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 384
    seed: int = 0
    n_train: int = 20000  # distinct training puzzles
    n_eval: int = 128
    eval_every: int = 250
    checkpoint_every: int = 250
    n_threads: int = 1
    eval_block_len: int | None = None  # semi-autoregressive blocks for the evaluation sampler (None: one block)
    tensorboard: bool = False  # also write the metrics as TensorBoard event files under <run_dir>/tb/

    def __post_init__(self) -> None:
        check_choice("dlm task", self.task, sorted(TASKS))
        for name in ("steps", "batch_size", "n_train", "n_eval", "eval_every", "checkpoint_every", "n_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.eval_block_len is not None and self.eval_block_len < 1:
            raise ConfigError(f"eval_block_len must be >= 1, got {self.eval_block_len}")


def task_tensors(task: DlmTask, examples: list[DlmExample], with_answer: bool = True) -> torch.Tensor:
    """(N, P + 1 [+ G]) ids: prompt and separator, then the reference answer when ``with_answer``."""
    rows = [task.prompt_ids(ex) + (task.answer_ids(ex) if with_answer else []) for ex in examples]
    return torch.tensor(rows, dtype=torch.long)


def model_config(cfg: DlmSFTConfig, task: DlmTask | None = None) -> DiffusionLMConfig:
    task = task or get_task(cfg.task)
    return DiffusionLMConfig(vocab_size=task.vocab.size, d_model=cfg.d_model, n_layers=cfg.n_layers,
                             n_heads=cfg.n_heads, d_ff=cfg.d_ff, max_len=max(64, task.seq_len))


def default_sampler(task: DlmTask, block_len: int | None = None, temperature: float = 0.0) -> Any:
    """Low-confidence remasking, one token per step; greedy by default (``temperature`` > 0 draws each proposal by
    Gumbel-max at that temperature, the order still by the drawn token's confidence)."""
    from thrifty.dlm.samplers import LowConfidenceSampler

    return LowConfidenceSampler(task.vocab.mask_id, steps=task.answer_len, block_len=block_len,
                                temperature=temperature)


def evaluate(model: DiffusionLM, task: DlmTask, examples: list[DlmExample], sampler: Any = None,
             seed: int = 0) -> dict[str, float]:
    """Mean reward, exact-solve rate and forward passes of ``sampler`` (default: one token per step)."""
    sampler = sampler or default_sampler(task)
    first = next(iter(model.parameters()), None)
    prompts = task_tensors(task, examples, with_answer=False)
    prompts = prompts.to(first.device) if first is not None else prompts  # the model's device (a GPU when it is there)
    was_training = model.training
    model.eval()
    out = sampler.sample(model, prompts, task.answer_len, torch.Generator().manual_seed(seed))
    model.train(was_training)
    texts = [task.decode(row.tolist()) for row in out.tokens[:, prompts.shape[1]:]]
    rewards, solved = task.score(examples, texts)
    return {"reward": sum(rewards) / len(rewards), "solved": sum(solved) / len(solved),
            "nfe": float(out.nfe_per_seq.float().mean())}


def load_model(run_dir: str | Path) -> tuple[DlmSFTConfig, DlmTask, DiffusionLM]:
    """The config, task and trained model (eval mode) of a `dlm train-sft` run."""
    from thrifty.core.config import load_config

    run = Path(run_dir)
    if not (run / "checkpoint" / "model.safetensors").is_file():
        raise ConfigError(f"{run}: no checkpoint here; train one with `thrifty dlm train-sft`")
    cfg = load_config(DlmSFTConfig, run / "config.yaml")
    task = get_task(cfg.task)
    model = DiffusionLM(model_config(cfg, task))
    load_weights(run, {"model": model})
    return cfg, task, model.eval()


__all__ = ["DlmSFTConfig", "default_sampler", "evaluate", "load_model", "model_config", "task_tensors"]
