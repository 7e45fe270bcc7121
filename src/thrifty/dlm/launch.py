"""One process, or the processes `accelerate launch` starts (data-parallel): who this process is, and the few calls
a training loop needs to run the same way in both.

Under `accelerate launch` (``WORLD_SIZE`` > 1) an ``accelerate.Accelerator`` wraps the model for DDP (CPU via gloo,
or GPUs) and averages gradients; otherwise nothing is imported and every call is the plain one. Loops draw each
*global* batch from one generator on every process and keep only their slice of rows, so the generators stay
identical everywhere (a checkpoint written by the main process resumes every rank) and a run on N processes follows
the single-process run with the same global batch.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from thrifty.core.errors import ConfigError


class Launch:
    def __init__(self) -> None:
        self.acc: Any = None
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import Accelerator

            self.acc = Accelerator(cpu=not torch.cuda.is_available())
        self.rank = self.acc.process_index if self.acc else 0
        self.world = self.acc.num_processes if self.acc else 1
        self.is_main = self.rank == 0

    def rows(self, batch: int) -> slice:
        """This process's rows of a global batch of ``batch``."""
        if batch % self.world:
            raise ConfigError(f"batch_size {batch} must split evenly over {self.world} processes")
        per = batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def prepare(self, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[Any, Any]:
        return self.acc.prepare(model, opt) if self.acc else (model, opt)

    def backward(self, loss: torch.Tensor) -> None:
        if self.acc:
            self.acc.backward(loss)
        else:
            loss.backward()

    def clip(self, model: Any, max_norm: float) -> None:
        if self.acc:
            self.acc.clip_grad_norm_(model.parameters(), max_norm)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    def unwrap(self, model: Any) -> torch.nn.Module:
        return self.acc.unwrap_model(model) if self.acc else model

    def mean(self, value: torch.Tensor) -> float:
        """The value averaged over processes."""
        return float(self.acc.reduce(value.detach(), reduction="mean")) if self.acc else float(value.detach())

    def average_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients over processes (for loops that call the model several times per backward, which
        DDP's wrapper does not allow)."""
        if self.acc:
            import torch.distributed as dist

            for p in params:
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.world

    def agree(self, flag: bool) -> bool:
        """True on every process when it is true on any (e.g. one process's time budget ran out)."""
        if not self.acc:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def local_generator(self, seed: int, step: int) -> torch.Generator | None:
        """A generator for this process's own rows at ``step`` (None on a single process: use the shared one)."""
        if not self.acc:
            return None
        return torch.Generator().manual_seed(seed * 1_000_003 + step * 1_009 + self.rank + 1)

    def barrier(self) -> None:
        if self.acc:
            self.acc.wait_for_everyone()


__all__ = ["Launch"]
