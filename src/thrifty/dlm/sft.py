"""`thrifty dlm train-sft`: train the small masked-diffusion model from scratch on a task, with checkpoints that
resume exactly.

The task (a name in :data:`thrifty.dlm.tasks.TASKS`) gives (prompt, answer) token sequences; the ELBO loss masks
only answer tokens (the prompt is never noised). Every ``eval_every`` steps the model answers ``n_eval`` held-out
test examples with the low-confidence sampler (one token per step) and the mean reward and exact-solve rate are
logged to ``metrics.jsonl`` with wall time (and mirrored to TensorBoard event files under ``<run_dir>/tb/`` with
``tensorboard: true``; :mod:`thrifty.core.metrics_log`). Checkpoints go to ``<run_dir>/checkpoint/``
(:mod:`thrifty.core.checkpoint`: weights as safetensors, optimiser and generator states beside them, written
atomically). A run started again in the same folder resumes from it and continues exactly as if it had never
stopped (same batches, same weights). Under `accelerate launch` the processes share each global batch of
``batch_size`` rows (:mod:`thrifty.dlm.launch`); the main process evaluates, logs and checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_checkpoint, load_weights, save_checkpoint
from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError
from thrifty.core.metrics_log import MetricsLog
from thrifty.core.progress import Progress
from thrifty.dlm.launch import Launch
from thrifty.dlm.loss import elbo_loss
from thrifty.dlm.masking import forward_mask, sample_times
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
        if self.task not in TASKS:
            raise ConfigError(f"unknown dlm task {self.task!r}; choose one of {', '.join(sorted(TASKS))}")
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
    prompts = task_tensors(task, examples, with_answer=False)
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


def train_sft(cfg: DlmSFTConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) the run ``cfg`` describes; returns the last evaluation and timings."""
    torch.set_num_threads(cfg.n_threads)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    task = get_task(cfg.task)
    launch = Launch()
    if launch.is_main:
        save_config(cfg, run / "config.yaml")
    train = task_tensors(task, task.examples("train", cfg.n_train, seed=cfg.seed))
    test = task.examples("test", cfg.n_eval, seed=cfg.seed)
    sampler = default_sampler(task, cfg.eval_block_len)
    model = DiffusionLM(model_config(cfg, task), torch.Generator().manual_seed(cfg.seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step, _ = load_checkpoint(run, {"model": model}, opt, gen)
    model, opt = launch.prepare(model, opt)
    mine = launch.rows(cfg.batch_size)
    maskable = torch.zeros(cfg.batch_size, train.shape[1], dtype=torch.bool)
    maskable[:, task.prompt_len + 1:] = True
    log = MetricsLog(run, resume_step=step, tensorboard=cfg.tensorboard) if launch.is_main else None
    t0, last = time.perf_counter(), {}
    bar = Progress(cfg.steps, f"dlm sft {cfg.task}", start=step, enabled=None if progress and launch.is_main
                   else False).open()
    model.train()
    while step < cfg.steps:
        x0 = train[torch.randint(len(train), (cfg.batch_size,), generator=gen)]  # the global batch, on every rank
        t = sample_times(cfg.batch_size, gen)
        xt, masked = forward_mask(x0, t, task.vocab.mask_id, gen, maskable=maskable)
        loss = elbo_loss(model(xt[mine]), x0[mine], masked[mine], t[mine], maskable=maskable[mine], norm="sequence")
        opt.zero_grad()
        launch.backward(loss)
        launch.clip(model, 1.0)
        opt.step()
        step += 1
        record: dict[str, Any] = {"step": step, "loss": launch.mean(loss), "wall_s": time.perf_counter() - t0}
        if launch.is_main and (step % cfg.eval_every == 0 or step == cfg.steps):
            last = evaluate(launch.unwrap(model), task, test, sampler)
            record.update({f"eval_{k}": v for k, v in last.items()})
            bar.advance(note=f"loss {record['loss']:.3f}, test reward {last['reward']:.3f}, solved "
                        f"{last['solved']:.3f}", force=True)
        else:
            bar.advance()
        if log is not None:
            log.write(record)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            if log is not None:
                log.flush()
                save_checkpoint(run, step, {"model": launch.unwrap(model)}, opt, gen)
            launch.barrier()
    bar.close()
    if log is not None:
        log.close()
    return {"step": step, **last, "params": launch.unwrap(model).num_params(), "config": asdict(cfg),
            "processes": launch.world}


__all__ = ["DlmSFTConfig", "default_sampler", "evaluate", "load_model", "model_config", "task_tensors", "train_sft"]
