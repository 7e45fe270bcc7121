"""`thrifty dlm train-sft`: train the small masked-diffusion model from scratch on a task, with checkpoints that
resume exactly.

The task (a name in :data:`thrifty.dlm.tasks.TASKS`) gives (prompt, answer) token sequences; the ELBO loss masks
only answer tokens (the prompt is never noised). Every ``eval_every`` steps the model answers ``n_eval`` held-out
test examples with the low-confidence sampler (one token per step) and the mean reward and exact-solve rate are
logged to ``metrics.jsonl`` with wall time (and mirrored to TensorBoard event files under ``<run_dir>/tb/`` with
``tensorboard: true``; :mod:`thrifty.core.metrics_log`). Checkpoints go to ``<run_dir>/checkpoint/``
(:mod:`thrifty.core.checkpoint`: weights as safetensors, optimiser and generator states beside them, written
atomically). A run started again in the same folder resumes from it and continues exactly as if it had never
stopped (same batches, same weights). Batches are drawn on the CPU (the same on any hardware) and trained on the
accelerator's device (a GPU when one is visible). Under `accelerate launch` the processes share each global batch of
``batch_size`` rows (:mod:`thrifty.dlm.launch`: DDP averages the gradients); the main process evaluates, logs and
checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_checkpoint, save_checkpoint
from thrifty.core.config import save_config
from thrifty.core.metrics_log import MetricsLog
from thrifty.core.progress import Progress
from thrifty.dlm.launch import Launch
from thrifty.dlm.loss import elbo_loss
from thrifty.dlm.masking import forward_mask, sample_times
from thrifty.dlm.model import DiffusionLM
from thrifty.dlm.run import DlmSFTConfig, default_sampler, evaluate, model_config, task_tensors
from thrifty.dlm.tasks import get_task


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
    mine, dev = launch.rows(cfg.batch_size), launch.device
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
        xt, x0, masked, t, rows_maskable = (v[mine].to(dev) for v in (xt, x0, masked, t, maskable))
        loss = elbo_loss(model(xt), x0, masked, t, maskable=rows_maskable, norm="sequence")
        opt.zero_grad()
        launch.backward(loss)
        launch.clip(model, 1.0)
        opt.step()
        step += 1
        record: dict[str, Any] = {"step": step, "loss": launch.mean(loss), "wall_s": time.perf_counter() - t0,
                                  **launch.peak_memory_gb()}
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


__all__ = ["DlmSFTConfig", "train_sft"]
