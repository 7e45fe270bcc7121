"""Atomic training checkpoints that resume exactly: module weights as safetensors, optimiser and generator states
beside them, written to a temporary folder and renamed into place (a crash never leaves half a checkpoint).
Shared by every room that trains (dlm, video); torch and safetensors are imported only when a checkpoint is used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def save_checkpoint(run: Path, step: int, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                    gen: torch.Generator, extra: dict[str, Any] | None = None) -> None:
    """``<run>/checkpoint/``: ``<name>.safetensors`` per module, ``state.pt`` (optimiser, generator, step and
    ``extra``) and ``meta.json``."""
    import torch
    from safetensors.torch import save_file

    final, tmp, old = run / "checkpoint", run / "checkpoint.tmp", run / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, module in modules.items():
        save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()},
                  str(tmp / f"{name}.safetensors"))
    torch.save({"optimizer": opt.state_dict(), "generator": gen.get_state(), "step": step, **(extra or {})},
               tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({"step": step, "modules": sorted(modules)}) + "\n")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_weights(run: Path, modules: dict[str, torch.nn.Module]) -> None:
    """Load only the module weights of ``<run>/checkpoint`` (for evaluation)."""
    from safetensors.torch import load_file

    for name, module in modules.items():
        module.load_state_dict(load_file(str(run / "checkpoint" / f"{name}.safetensors")))


def load_checkpoint(run: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                    gen: torch.Generator) -> tuple[int, dict[str, Any]]:
    """Restore what :func:`save_checkpoint` wrote: (step, the state's extra entries); (0, {}) when absent."""
    import torch

    ck = run / "checkpoint"
    if not (ck / "meta.json").is_file():
        return 0, {}
    load_weights(run, modules)
    state = torch.load(ck / "state.pt", weights_only=False)
    opt.load_state_dict(state.pop("optimizer"))
    gen.set_state(state.pop("generator"))
    return int(state.pop("step")), state


def trim_metrics(path: Path, step: int) -> None:
    """Drop what a JSON-lines log recorded after the checkpoint a resumed run starts from."""
    if path.exists():
        kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in kept))


__all__ = ["load_checkpoint", "load_weights", "save_checkpoint", "trim_metrics"]
