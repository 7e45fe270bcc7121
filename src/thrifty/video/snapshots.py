"""Resumable training snapshots of the tiny video models: weights as safetensors, optimiser and generator state
beside them, built in a temporary folder and swapped into ``<run>/checkpoint/`` by rename (never half-written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch


def save_snapshot(run: Path, step: int, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                  gen: torch.Generator) -> None:
    """Write ``<name>.safetensors`` per module, ``state.pt`` (optimiser, generator, step) and ``meta.json``."""
    from safetensors.torch import save_file

    final, tmp, old = run / "checkpoint", run / "checkpoint.tmp", run / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, module in modules.items():
        save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()},
                  str(tmp / f"{name}.safetensors"))
    torch.save({"optimizer": opt.state_dict(), "generator": gen.get_state(), "step": step}, tmp / "state.pt")
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


def load_snapshot(run: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                  gen: torch.Generator) -> int:
    """Restore a snapshot in place and return its step (0 when the run has none)."""
    ck = run / "checkpoint"
    if not (ck / "meta.json").is_file():
        return 0
    load_weights(run, modules)
    state: dict[str, Any] = torch.load(ck / "state.pt", weights_only=False)
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    return int(state["step"])


def cut_log(path: Path, step: int) -> None:
    """Keep only the records of ``path`` (JSON lines with a "step") up to ``step``: a resumed run rewrites the rest."""
    if path.exists():
        kept = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in kept))
