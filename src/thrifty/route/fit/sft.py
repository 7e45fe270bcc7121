"""`thrifty route sft`: fine-tune a LoRA grade predictor by hindsight relabelling (TRL + PEFT, CPU-friendly).

Data: the judged ``split`` examples of ``tasks`` for ``model`` (from the run store), each labelled with the
judge's grade of the model's own answer (:func:`~thrifty.route.predictors.sft.hindsight_items`), optionally
class-balanced by oversampling. Every item is one pre-tokenised sequence — the zero-shot prediction prompt
exactly as the ``hf`` backend renders it, then the label's token — with a completion mask on the label token
only, so TRL's SFTTrainer computes cross-entropy on that one token and nothing else (no EOS, no template).

The base model is a local Hugging Face directory; for a bundled GGUF it is exported once
(:func:`thrifty.llm.gguf_export.export_hf`). Only the LoRA weights train; the base weights stay as they were.
The adapter is written with :data:`~thrifty.route.predictors.sft.SFT_META` (base model, prompt version, data
counts, hyperparameters, loss history, wall time and peak memory), so ``predict-eval`` and the ``hf`` backend
can serve it.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError, DataError
from thrifty.core.progress import Progress, peak_rss_mb
from thrifty.core.rng import derive_seed
from thrifty.core.store import RunStore
from thrifty.route.predictors.base import DEFAULT_PREFIX
from thrifty.route.records.config import ReadsStore, check_records, record_field
from thrifty.tasks.base import Task

DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class SFTConfig(ReadsStore):
    """What to fine-tune: ``model``'s grade predictor on its judged ``split`` answers to ``tasks``."""

    store: str = record_field("store", "")  # default: <run_dir>/store.sqlite
    run_dir: str = record_field("run_dir", "runs/sft")
    model: str = ""  # the model whose judged answers label the data (as named in the store)
    hf_model: str = ""  # local HF directory of that model; default: export of the bundled/GGUF ``model``
    tasks: list[str] = record_field("tasks", [])
    split: str = record_field("split", "train")
    n_per_task: int = record_field("n_per_task", 100)
    seed: int = record_field("seed", 0)
    judge: str = record_field("judge", "verifier")
    balance: bool = True
    instruction: str = "brief"  # prompt style: brief (reply format only) or full (the zero-shot rubric)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 4
    grad_accum: int = 1
    n_threads: int = record_field("n_threads", 1)
    device: str = "cpu"  # cpu, cuda, or auto (cuda when one is visible)
    precision: str = "fp32"  # fp32, or bf16 / fp16 mixed precision (fp16 only on cuda)
    report_to: list[str] = field(default_factory=list)  # trainer loggers, e.g. [tensorboard]; none by default
    out: str = ""  # adapter directory; default: <run_dir>/adapter

    def __post_init__(self) -> None:
        check_records(self)
        if not self.model:
            raise ConfigError("model must name the model whose judged answers label the training data")
        if self.split == "test":
            raise ConfigError("fine-tune on the train (or val) split; the test split is for evaluation")
        positive = {"lora_r": self.lora_r, "batch_size": self.batch_size, "grad_accum": self.grad_accum}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not self.learning_rate > 0 or not self.epochs > 0 or self.max_steps < 0 or self.lora_alpha <= 0:
            raise ConfigError("learning_rate, epochs and lora_alpha must be > 0 and max_steps >= 0")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        from thrifty.route.predictors.sft import INSTRUCTIONS

        if self.instruction not in INSTRUCTIONS:
            raise ConfigError(f"instruction must be one of {', '.join(INSTRUCTIONS)}, got {self.instruction!r}")
        if not self.target_modules:
            raise ConfigError("target_modules must name at least one module (e.g. q_proj)")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if any(not isinstance(r, str) or not r.strip() for r in self.report_to):
            raise ConfigError(f"report_to must list logger names (e.g. tensorboard), got {self.report_to!r}")

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if self.out else Path(self.run_dir) / "adapter"


def device_args(cfg: SFTConfig, cuda_available: bool | None = None) -> dict[str, Any]:
    """The trainer arguments ``cfg`` sets: the device (``use_cpu``), mixed precision (``bf16``/``fp16``) and the
    loggers (``report_to``). ``cuda_available`` defaults to what torch sees."""
    if cuda_available is None:
        cuda_available = False
        if cfg.device != "cpu":
            import torch

            cuda_available = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda_available:
        raise ConfigError("device cuda: no CUDA device is visible; use device cpu or auto")
    on_gpu = cfg.device != "cpu" and cuda_available
    if cfg.precision == "fp16" and not on_gpu:
        raise ConfigError("precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return {"use_cpu": not on_gpu, "bf16": cfg.precision == "bf16", "fp16": cfg.precision == "fp16",
            "report_to": list(cfg.report_to)}


def base_model_dir(cfg: SFTConfig) -> Path:
    """The HF directory to fine-tune: ``hf_model`` if given, else an export of the GGUF ``model`` names."""
    if cfg.hf_model:
        path = Path(cfg.hf_model).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path}: not a Hugging Face model directory (no config.json)")
        return path
    from thrifty.llm import catalog
    from thrifty.llm.gguf_export import export_hf

    return export_hf(catalog.resolve(cfg.model), notify=lambda line: print(f"sft: {line}", file=sys.stderr,
                                                                           flush=True))[0]


def training_items(cfg: SFTConfig, store: RunStore, load_task: Callable[[str], Task]) -> list[Any]:
    """The hindsight-relabelled items of ``cfg`` (unbalanced), in task then example order."""
    from thrifty.route.predictors import labelled_examples
    from thrifty.route.predictors.sft import SFTPredictor, hindsight_items

    examples = {spec: load_task(spec).examples(cfg.split, cfg.n_per_task, cfg.seed) for spec in cfg.tasks}
    labelled = labelled_examples(store, cfg.model, examples, cfg.split, cfg.judge)
    if not labelled:
        raise DataError(f"no {cfg.judge!r} grades of {cfg.model!r} on the {cfg.split} split of these tasks in "
                        f"{cfg.store_path}; run `thrifty route collect --split {cfg.split}` with a judge first")
    return hindsight_items(labelled, SFTPredictor(None, instruction=cfg.instruction))


def train_sft(cfg: SFTConfig, load_task: Callable[[str], Task] | None = None) -> dict[str, Any]:
    """Train the adapter described by ``cfg``; returns (and writes into the adapter) its metadata."""
    from thrifty.route.predictors.base import prompt_version
    from thrifty.route.predictors.sft import SFT_META, SFT_VERSION, SFTPredictor, balance, label_counts

    if load_task is None:
        from thrifty.tasks.loader import load_task
    if not cfg.store_path.exists():
        raise ConfigError(f"{cfg.store_path}: no run store here; collect the {cfg.split} split with a judge first")
    with RunStore(cfg.store_path) as store:
        items = training_items(cfg, store, load_task)
    counts = label_counts(items)
    data = balance(items, random.Random(derive_seed(cfg.seed, "sft-balance"))) if cfg.balance else list(items)
    base = base_model_dir(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "sft_config.yaml")
    t0 = time.perf_counter()
    losses = _fit(cfg, base, data)
    wall = time.perf_counter() - t0
    reader = SFTPredictor(None, instruction=cfg.instruction)
    weights = cfg.out_dir / "adapter_model.safetensors"
    meta = {
        "v": SFT_VERSION, "model": cfg.model, "base_model": str(base.resolve()),
        "prompt_version": prompt_version(reader, SFT_VERSION), "prefix": reader.prefix,
        "instruction": cfg.instruction, "judge": cfg.judge,
        "tasks": list(cfg.tasks), "split": cfg.split, "labels": counts, "n_items": len(items),
        "n_trained": len(data), "balanced": cfg.balance, "hyperparameters": _hyper(cfg), "losses": losses,
        "wall_s": round(wall, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
        "version": _file_hash(weights)[:12],
    }
    (cfg.out_dir / SFT_META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _hyper(cfg: SFTConfig) -> dict[str, Any]:
    keep = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "epochs", "max_steps",
            "batch_size", "grad_accum", "seed", "n_threads")
    return {k: v for k, v in asdict(cfg).items() if k in keep}


def _fit(cfg: SFTConfig, base: Path, data: list[Any]) -> list[float]:
    """Run TRL's SFTTrainer with a LoRA config on the pre-tokenised items; saves the adapter; returns losses."""
    import warnings

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig as TRLConfig
    from trl import SFTTrainer

    from thrifty.llm.hf import chat_prompt_ids
    from thrifty.route.predictors.sft import target_token

    torch.set_num_threads(cfg.n_threads)
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    targets = {lab: target_token(tokenizer, lab) for lab in {it.label for it in data}}
    rows = []
    for it in data:
        ids = chat_prompt_ids(tokenizer, it.prompt, DEFAULT_PREFIX)
        rows.append({"input_ids": [*ids, targets[it.label]], "completion_mask": [0] * len(ids) + [1]})
    model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype=torch.float32)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    losses: list[float] = []
    progress = _make_progress_callback()(losses)
    with warnings.catch_warnings():  # peft/transformers deprecation notices that are not ours to fix
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        args = TRLConfig(
            output_dir=str(Path(cfg.run_dir) / "trainer"), per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
            num_train_epochs=cfg.epochs, max_steps=cfg.max_steps or -1, logging_steps=1, save_strategy="no",
            **device_args(cfg), seed=cfg.seed, data_seed=cfg.seed,
            completion_only_loss=True, disable_tqdm=True, dataloader_num_workers=0, max_length=None,
            lr_scheduler_type="linear", warmup_steps=0,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer, peft_config=lora, callbacks=[progress])
        trainer.remove_callback(PrinterCallback)  # thrifty's progress line replaces its log dicts
        try:
            trainer.train()
        finally:
            progress.close()
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    trainer.model.save_pretrained(cfg.out_dir)
    tokenizer.save_pretrained(cfg.out_dir)
    return losses


def _make_progress_callback() -> type:
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Shows training steps with the running loss through thrifty's progress line; keeps the losses."""

        def __init__(self, losses: list[float]) -> None:
            self.losses, self.bar = losses, None

        def on_train_begin(self, args, state, control, **kw):
            self.bar = Progress(max(1, state.max_steps), "sft").__enter__()

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(round(float(logs["loss"]), 5))

        def on_step_end(self, args, state, control, **kw):
            if self.bar is not None:
                self.bar.advance(note=f"loss {self.losses[-1]:.3f}" if self.losses else "")

        def close(self) -> None:
            if self.bar is not None:
                self.bar.__exit__(None, None, None)
                self.bar = None

    return ProgressCallback


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
