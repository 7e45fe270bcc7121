"""One process, or the processes `accelerate launch` starts (data-parallel): who this process is, where its tensors
live, and the few calls a training loop needs to run the same way in both.

There is always an ``accelerate.Accelerator`` (imported when a loop starts, never by the CLI): on a GPU when one is
visible, else on the CPU (gloo between processes). With one process it is a thin pass-through, so a single-process run
computes exactly what plain PyTorch would. Loops draw each *global* batch from one generator on every process and keep
only their slice of rows, so the generators stay identical everywhere (a checkpoint written by the main process
resumes every rank) and a run on N processes follows the single-process run with the same global batch.

Gradients are averaged by the library: :meth:`Launch.prepare` wraps a model for DDP (one forward per backward, as in
SFT), and :meth:`Launch.average_grads` reduces all gradients at once as one flat tensor for the RL updates, which
call the policy several times before one backward (old, reference and surrogate passes, the sampler head) — a pattern
DDP's hooks do not support.

Several CPU processes (gloo) come from ``torchrun --nproc_per_node N``; `accelerate launch --cpu` starts only one.
"""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.errors import ConfigError


class Launch:
    def __init__(self) -> None:
        from accelerate import Accelerator

        self.acc: Any = Accelerator(cpu=not torch.cuda.is_available())
        self.device: torch.device = self.acc.device
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.is_main = self.acc.is_main_process
        # an FSDP or DeepSpeed config: the loops still keep a whole model per process (see prepare and wrap)
        self.sharded = self.acc.distributed_type.value in ("FSDP", "DEEPSPEED")

    def rows(self, batch: int) -> slice:
        """This process's rows of a global batch of ``batch``."""
        if batch % self.world:
            raise ConfigError(f"batch_size {batch} must split evenly over {self.world} processes")
        per = batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def prepare(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[Any, Any]:
        """The model on this process's device (wrapped for DDP on several processes) and its optimiser."""
        if self.sharded:
            raise ConfigError("dlm train-sft shards nothing: launch the small model with plain data parallel "
                              "(configs/accelerate/ddp.yaml, or --num_processes N)")
        return self.acc.prepare(model, opt)

    def wrap(self, model: torch.nn.Module) -> Any:
        """``model`` wrapped for DDP when several processes train it with plain data parallel and it has trainable
        weights (gradients are then averaged in its backward); ``model`` itself otherwise, whose gradients
        :meth:`average_grads` averages. The wrapper shares the model's parameters."""
        if self.world == 1 or self.sharded or not any(p.requires_grad for p in model.parameters()):
            return model
        return self.acc.prepare_model(model)

    def backward(self, loss: torch.Tensor) -> None:
        self.acc.backward(loss)

    def clip(self, model: Any, max_norm: float) -> None:
        self.acc.clip_grad_norm_(model.parameters(), max_norm)

    def unwrap(self, model: Any) -> torch.nn.Module:
        return self.acc.unwrap_model(model)

    def mean(self, value: torch.Tensor) -> float:
        """The value averaged over processes."""
        return float(self.acc.reduce(value.detach(), reduction="mean"))

    def average_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients over processes, one all-reduce per dtype over the flattened gradients. For updates
        that call the model several times per backward (DDP's wrapper expects one call)."""
        if self.world == 1:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for p in params:
            if p.grad is not None:
                by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
        for grads in by_dtype.values():
            flat = self.acc.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
            for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                g.copy_(part.view_as(g))

    def agree(self, flag: bool) -> bool:
        """True on every process when it is true on any (e.g. one process's time budget ran out)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        return bool(self.acc.reduce(t, reduction="max").item() > 0)

    def local_generator(self, seed: int, step: int) -> torch.Generator | None:
        """A generator for this process's own rows at ``step`` (None on a single process: use the shared one)."""
        if self.world == 1:
            return None
        return torch.Generator().manual_seed(seed * 1_000_003 + step * 1_009 + self.rank + 1)

    def barrier(self) -> None:
        self.acc.wait_for_everyone()

    def peak_memory_gb(self) -> dict[str, float]:
        """``{"peak_mem_gb": …}``: the most GPU memory this process's tensors have held so far (empty off CUDA)."""
        if self.device.type != "cuda":
            return {}
        return {"peak_mem_gb": torch.cuda.max_memory_allocated(self.device) / 2**30}


__all__ = ["Launch"]
