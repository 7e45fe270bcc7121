"""Atomic checkpoints that resume exactly: module weights as safetensors, optimiser and generator states beside
them, written to a temporary folder and renamed into place (a crash never leaves half a checkpoint)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(run: Path, step: int, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                    gen: torch.Generator, extra: dict[str, Any] | None = None) -> None:
    """``<run>/checkpoint/``: ``<name>.safetensors`` per module (the first is the model), ``state.pt``, ``meta.json``."""
    from safetensors.torch import save_file

    final, tmp, old = run / "checkpoint", run / "checkpoint.tmp", run / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, module in modules.items():
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp / f"{name}.safetensors"))
    torch.save({"optimizer": opt.state_dict(), "generator": gen.get_state(), "step": step, **(extra or {})},
               tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps({"step": step}) + "\n")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(run: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                    gen: torch.Generator) -> tuple[int, dict[str, Any]]:
    """Restore what :func:`save_checkpoint` wrote: (step, the state dict's extra entries); (0, {}) when absent."""
    from safetensors.torch import load_file

    ck = run / "checkpoint"
    if not (ck / "meta.json").is_file():
        return 0, {}
    for name, module in modules.items():
        module.load_state_dict(load_file(str(ck / f"{name}.safetensors")))
    state = torch.load(ck / "state.pt", weights_only=False)
    opt.load_state_dict(state.pop("optimizer"))
    gen.set_state(state.pop("generator"))
    return int(state.pop("step")), state


def trim_metrics(path: Path, step: int) -> None:
    """Drop what a log recorded after the checkpoint a resumed run starts from."""
    if path.exists():
        kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in kept))


__all__ = ["load_checkpoint", "save_checkpoint", "trim_metrics"]
