"""`thrifty dlm rl`: the one training loop every algorithm plugs into — start from an SFT checkpoint, repeat
(update → log → evaluate → checkpoint) until the step, wall-time or CPU-time budget is spent, resume exactly after a kill.

An update is an object with ``update(pool, generator) -> (optimiser steps, stats)``: online policy gradient
(:class:`~thrifty.dlm.rl.diffu_grpo.PolicyGradient`: diffu-GRPO, DiFFPO), offline preference optimisation
(:class:`~thrifty.dlm.rl.dtrpo.PreferenceUpdate`: dTRPO, VRPO) or continued SFT (the equal-compute control,
:mod:`.control`). The reference is a frozen copy of the SFT model (re-synced every ``ref_sync_every`` steps when set). With ``hf_model`` the
start is a Hugging Face masked-diffusion checkpoint instead: LoRA-trained on a JSONL prompt file with the user's
reward functions, the reference being the same model with the adapter switched off, checkpoints holding the adapter
only (:mod:`thrifty.dlm.hf_train`). ``metrics.jsonl``
gets one record per update — training wall and CPU time (evaluation excluded), cumulative forward passes of the policy and
the reference (calls and sequence rows), the update's stats — and held-out reward, solve rate and NFE every
``eval_every`` steps (mirrored to TensorBoard event files under ``<run_dir>/tb/`` with ``tensorboard: true``).
The model, rollouts and update tensors live on the accelerator's device (a GPU when one is visible; records then also
carry ``peak_mem_gb``, the most GPU memory held so far). Under `accelerate launch` each process takes its share of
every update's prompts or pairs (:mod:`thrifty.dlm.launch`), gradients are averaged, all processes stop at the same
step, and the main process evaluates, logs and checkpoints; the stats logged are the main process's rows.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import torch

from thrifty.core.checkpoint import load_checkpoint, save_checkpoint
from thrifty.core.config import save_config
from thrifty.core.metrics_log import MetricsLog
from thrifty.core.progress import Progress
from thrifty.dlm.launch import Launch
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.rollout import ForwardCounter, SamplerHead, rollout_shape
from thrifty.dlm.run import default_sampler, evaluate, load_model
from thrifty.dlm.tasks import DlmExample, DlmTask


def _pairs(cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, run: Path, gen: torch.Generator,
           eval_block_len: int | None = None, launch: Launch | None = None):
    """The pairs file, the run's own pairs when it resumes, or fresh pairs. Every process samples (the shared
    generator advances alike everywhere); the main process writes them and the others read that file back, so all
    train on the same pairs. Pairs read from a file move to the accelerator's device."""
    from thrifty.dlm.rl.pairs import load_pairs as read
    from thrifty.dlm.rl.pairs import sample_pairs, save_pairs

    launch = launch or Launch()

    def load_pairs(path: str | Path) -> Any:
        pairs = read(path)
        if not is_dataclass(pairs):
            return pairs
        return replace(pairs, **{f.name: getattr(pairs, f.name).to(launch.device) for f in fields(pairs)
                                 if isinstance(getattr(pairs, f.name), torch.Tensor)})

    if cfg.pairs_file:
        return load_pairs(cfg.pairs_file), {}
    found = (run / "pairs.safetensors").is_file()
    launch.barrier()  # every process has looked before the main one writes
    if found:
        return load_pairs(run / "pairs.safetensors"), {}
    pairs, stats = sample_pairs(policy, task, cfg.pair_prompts, cfg.pair_samples, gen, cfg.seed, cfg.min_gap,
                                cfg.rollout_temperature, cfg.block_len, cfg.rollout_steps, cfg.pair_decoding,
                                eval_block_len, cfg.pair_remasking, cfg.pair_chosen)
    if launch.is_main:
        save_pairs(pairs, run / "pairs.safetensors", {"pair_decoding": cfg.pair_decoding,
                                                      "pair_remasking": cfg.pair_remasking,
                                                      "pair_chosen": cfg.pair_chosen})
    launch.barrier()
    return (pairs if launch.is_main else load_pairs(run / "pairs.safetensors")), stats


def _evaluate(cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, head: SamplerHead | None,
              test: list[DlmExample], sampler: Any) -> dict[str, float]:
    out = {f"eval_{k}": v for k, v in evaluate(policy, task, test, sampler).items()}
    if head is not None:  # decode with the γ the head finds most likely for each prompt
        from thrifty.dlm.samplers import AdaptiveSampler

        def pick(prompts: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return head.log_probs(policy, prompts, task.answer_len, task.vocab.mask_id).argmax(dim=1)

        adaptive = AdaptiveSampler(task.vocab.mask_id, pick, grid=head.grid,
                                   block_len=rollout_shape(task.answer_len, cfg.block_len)[0])
        out.update({f"eval_adaptive_{k}": v for k, v in evaluate(policy, task, test, adaptive).items()})
    return out


def _online_update(cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, ref: torch.nn.Module,
                   head: SamplerHead | None, opt: torch.optim.Optimizer, pool: list[DlmExample], run: Path,
                   gen: torch.Generator, launch: Launch | None, eval_block_len: int | None) -> tuple[Any, dict]:
    """diffu-GRPO (d1's one-step estimator), wd1 (the same estimator, a ratio-free weighted likelihood) and DiFFPO
    (two-times mean-field, importance weights)."""
    from thrifty.dlm.rl.diffpo import two_times_estimator
    from thrifty.dlm.rl.diffu_grpo import PolicyGradient, one_step_estimator

    est = two_times_estimator() if cfg.pg_estimator() == "two_times" else one_step_estimator(cfg.prompt_mask_p)
    return PolicyGradient(cfg, task, policy, ref, opt, est, head, weighted=cfg.algo == "diffpo", launch=launch,
                          objective="wd1" if cfg.algo == "wd1" else "clipped"), {}


def _preference_update(cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, ref: torch.nn.Module,
                       head: SamplerHead | None, opt: torch.optim.Optimizer, pool: list[DlmExample], run: Path,
                       gen: torch.Generator, launch: Launch | None, eval_block_len: int | None) -> tuple[Any, dict]:
    """dTRPO and VRPO on offline pairs (built once, the same in every process)."""
    from thrifty.dlm.rl.dtrpo import PreferenceUpdate
    from thrifty.dlm.rl.pairs import decoding_block_len, pair_sampler

    pairs, stats = _pairs(cfg, task, policy, run, gen, eval_block_len, launch)
    sampler = pair_sampler(task, cfg.pair_decoding, cfg.rollout_temperature, cfg.block_len, cfg.rollout_steps,
                           eval_block_len, cfg.pair_remasking)
    return PreferenceUpdate(cfg, task, policy, ref, opt, pairs, launch,
                            block_len=decoding_block_len(sampler, task)), stats


def _control_update(cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, ref: torch.nn.Module,
                    head: SamplerHead | None, opt: torch.optim.Optimizer, pool: list[DlmExample], run: Path,
                    gen: torch.Generator, launch: Launch | None, eval_block_len: int | None) -> tuple[Any, dict]:
    """The equal-compute SFT control."""
    from thrifty.dlm.rl.control import ContinuedSFT

    return ContinuedSFT(cfg, task, policy, opt, pool, launch), {}


UPDATES: dict[str, Callable[..., tuple[Any, dict[str, float]]]] = {
    "diffu_grpo": _online_update, "diffpo": _online_update, "wd1": _online_update, "dtrpo": _preference_update,
    "vrpo": _preference_update, "sft": _control_update}
"""Each RL algorithm (``DlmRLConfig.algo``) and the builder of its update; a new algorithm is one entry."""


def build_update(cfg: DlmRLConfig, task: DlmTask, policy: torch.nn.Module, ref: torch.nn.Module,
                 head: SamplerHead | None, opt: torch.optim.Optimizer, pool: list[DlmExample], run: Path,
                 gen: torch.Generator, launch: Launch | None = None,
                 eval_block_len: int | None = None) -> tuple[Any, dict[str, float]]:
    """The update ``cfg.algo`` names (:data:`UPDATES`); ``eval_block_len`` is the SFT run's evaluation blocks
    (pairs decoded the way evaluation decodes use them)."""
    return UPDATES[cfg.algo](cfg, task, policy, ref, head, opt, pool, run, gen, launch, eval_block_len)


@dataclass
class Setup:
    """What a run trains and on what: the task, the policy and its reference, the trained parameters, the modules
    a checkpoint saves (and a hook run after each save), the training pool and the held-out examples."""

    task: DlmTask
    policy: torch.nn.Module
    ref: torch.nn.Module
    head: SamplerHead | None
    params: list[torch.nn.Parameter]
    modules: dict[str, Any]
    pool: list[DlmExample]
    test: list[DlmExample]
    eval_block_len: int | None
    after_save: Callable[[Path], Any] | None = None
    stats: dict[str, float] = field(default_factory=dict)  # logged with the step-0 evaluation


def _head(cfg: DlmRLConfig, policy: torch.nn.Module) -> SamplerHead | None:
    """DiFFPO's γ head (with ``joint_sampler``), as wide as the policy's hidden states and on its device."""
    if not (cfg.joint_sampler and cfg.algo == "diffpo"):
        return None
    return SamplerHead.for_policy(policy, cfg.gamma_grid, torch.Generator().manual_seed(cfg.seed + 3))


def _own_setup(cfg: DlmRLConfig, launch: Launch) -> Setup:
    """The small model of a `dlm train-sft` run, on the accelerator's device: the policy trains in full, the reference
    is a frozen copy."""
    sft_cfg, task, policy = load_model(cfg.init_run)
    policy.to(launch.device).train()
    ref = copy.deepcopy(policy).eval().requires_grad_(False)
    head = _head(cfg, policy)
    params = list(policy.parameters()) if cfg.train_policy else []
    policy.requires_grad_(cfg.train_policy)
    params += list(head.parameters()) if head is not None else []
    modules = {"model": policy, **({"head": head} if head is not None else {})}
    pool = task.examples("train", cfg.n_train, seed=sft_cfg.seed)
    test = task.examples("test", cfg.n_eval, seed=sft_cfg.seed + 1000)
    return Setup(task, policy, ref, head, params, modules, pool, test, sft_cfg.eval_block_len)


def _hf_setup(cfg: DlmRLConfig, launch: Launch) -> Setup:
    """A Hugging Face checkpoint with a LoRA adapter on the accelerator's device (gradient checkpointing with
    ``gradient_checkpointing``); the reference is the same model with the adapter off (:mod:`thrifty.dlm.hf_train`);
    evaluation decodes in the rollout blocks."""
    from thrifty.dlm.hf_train import hf_setup as load
    from thrifty.dlm.rl.checkpointing import checkpoint_layers

    hf = load(cfg, str(launch.device))
    checkpointed = checkpoint_layers(hf.policy.model) if cfg.gradient_checkpointing else 0
    head = _head(cfg, hf.policy)
    pool, test = hf.task.examples("train", cfg.n_train), hf.task.examples("test", cfg.n_eval)
    block = rollout_shape(hf.task.answer_len, cfg.block_len, cfg.rollout_steps)[0]
    stats = {"lora_modules": float(hf.lora_modules), "trained_params": float(sum(p.numel() for p in hf.params)),
             "prompt_len": float(hf.task.prompt_len), "prompts_truncated": float(hf.task.truncated),
             **({"checkpointing_modules": float(checkpointed)} if cfg.gradient_checkpointing else {})}
    params = hf.params + (list(head.parameters()) if head is not None else [])
    modules = {**hf.modules, **({"head": head} if head is not None else {})}
    return Setup(hf.task, hf.policy, hf.ref, head, params, modules, pool, test, block, hf.after_save, stats)


def train_rl(cfg: DlmRLConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) ``cfg``; returns the last evaluation, the step reached and the training wall time."""
    torch.set_num_threads(cfg.n_threads)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    launch = Launch()
    if launch.is_main:
        save_config(cfg, run / "config.yaml")
    s = _hf_setup(cfg, launch) if cfg.hf_model else _own_setup(cfg, launch)
    task, policy, ref, head, modules, pool, test = s.task, s.policy, s.ref, s.head, s.modules, s.pool, s.test
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(s.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, extra = load_checkpoint(run, modules, opt, gen)
    if "ref" in extra:
        ref.load_state_dict(extra["ref"])
    wall, cpu, fwd = float(extra.get("wall_s", 0.0)), float(extra.get("cpu_s", 0.0)), dict(extra.get("forward", {}))
    eval_sampler = default_sampler(task, s.eval_block_len)
    counter = ForwardCounter(policy, ref)
    t_setup, c_setup = time.perf_counter(), time.process_time()
    updater, setup_stats = build_update(cfg, task, policy, ref, head, opt, pool, run, gen, launch, s.eval_block_len)
    setup_stats = {**s.stats, **setup_stats}
    if step == 0:
        wall, cpu = wall + time.perf_counter() - t_setup, cpu + time.process_time() - c_setup
    # a fresh start (no checkpoint) also drops the step-0 line of an attempt that died before its first checkpoint
    log = MetricsLog(run, resume_step=step if step else -1, tensorboard=cfg.tensorboard) if launch.is_main else None
    bar = Progress(cfg.steps, f"dlm rl {cfg.algo}", start=step, enabled=None if progress and log is not None
                   else False).open()
    if step == 0 and log is not None:
        first = {"step": 0, "wall_s": wall, "cpu_s": cpu, **setup_stats, **_evaluate(cfg, task, policy, head, test, eval_sampler)}
        log.write(first)
        bar.advance(0, note=f"held-out reward {first['eval_reward']:.3f}, solved {first['eval_solved']:.3f}", force=True)
    last: dict[str, Any] = {}
    def spent() -> bool:
        return (cfg.max_wall_s > 0 and wall >= cfg.max_wall_s) or (cfg.max_cpu_s > 0 and cpu >= cfg.max_cpu_s)

    while not launch.agree(step >= cfg.steps or spent()):
        t0, c0 = time.perf_counter(), time.process_time()
        taken, stats = updater.update(pool, gen)
        wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
        step += taken
        fwd = {"policy_calls": fwd.get("policy_calls", 0) + counter.calls, "rows": fwd.get("rows", 0) + counter.rows}
        counter.calls = counter.rows = 0
        if cfg.ref_sync_every and step % cfg.ref_sync_every < taken:
            ref.load_state_dict(policy.state_dict())
        record = {"step": step, "wall_s": wall, "cpu_s": cpu, "forward_calls": fwd["policy_calls"], "forward_rows": fwd["rows"],
                  **stats, **launch.peak_memory_gb()}
        done = step >= cfg.steps or spent()
        if log is None:  # other processes: train, and wait for the main one's checkpoint
            if step % cfg.checkpoint_every < taken or done:
                launch.barrier()
            continue
        if step % cfg.eval_every < taken or done:
            counter.close()
            last = _evaluate(cfg, task, policy, head, test, eval_sampler)
            counter = ForwardCounter(policy, ref)
            record.update(last)
            bar.advance(taken, note=f"held-out reward {last['eval_reward']:.3f}, solved {last['eval_solved']:.3f} "
                        f"({wall:.0f} s training)", force=True)
        else:
            bar.advance(taken)
        log.write(record)
        if step % cfg.checkpoint_every < taken or done:
            log.flush()
            extra = {"wall_s": wall, "cpu_s": cpu, "forward": fwd, **({"ref": ref.state_dict()} if cfg.ref_sync_every else {})}
            save_checkpoint(run, step, modules, opt, gen, extra)
            if s.after_save is not None:
                s.after_save(run)
            launch.barrier()
    bar.close()
    if log is not None:
        log.close()
    counter.close()
    if not last and launch.is_main:  # the budget ran out before any update (e.g. spent building pairs) or the run was already done
        last = _evaluate(cfg, task, policy, head, test, eval_sampler)
    return {"step": step, "wall_s": wall, "cpu_s": cpu, **last, "forward": fwd, "config": asdict(cfg)}


__all__ = ["Setup", "build_update", "train_rl"]
