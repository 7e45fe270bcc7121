"""Rewards in the user's own format: plain callables ``f(prompts, completions, **columns) -> list[float | None]``
named in a config as ``module:function`` (or ``path/to/file.py:function``), several summed with weights.

One call scores a batch: ``prompts`` are the JSONL rows' ``prompt`` values (a string, or a list of chat messages),
``completions`` the decoded answers (strings), and every other column of the rows arrives as a keyword argument
holding one value per row (so ``f(prompts, completions, answer, **_)`` reads an ``answer`` column). A function
returns one number per row, or ``None`` for a row it does not judge; ``None`` adds nothing to that row's sum (TRL's
convention for reward functions that apply to only some rows). Nothing is imported until a reward is loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError

RewardFn = Callable[..., Sequence[float | None]]


def _module(name: str, spec: str) -> Any:
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"reward {spec!r}: no file {path}")
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        mod_name = f"thrifty_user_reward_{path.stem}_{digest}"
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        found = importlib.util.spec_from_file_location(mod_name, path)
        if found is None or found.loader is None:
            raise ConfigError(f"reward {spec!r}: cannot load {path} as Python")
        module = importlib.util.module_from_spec(found)
        sys.modules[mod_name] = module
        try:
            found.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ConfigError(f"reward {spec!r}: importing {path} failed: {type(exc).__name__}: {exc}") from None
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"reward {spec!r}: no module named {exc.name!r} (is it on PYTHONPATH? a file path "
                          "ending in .py works too)") from None
    except Exception as exc:
        raise ConfigError(f"reward {spec!r}: importing {name} failed: {type(exc).__name__}: {exc}") from None


def load_callable(spec: str) -> Callable[..., Any]:
    """The function ``spec`` names: ``package.module:function`` or ``path/to/file.py:function`` (the attribute part
    may be dotted, e.g. ``module:Class.method``); a bad name is a one-line :class:`ConfigError`."""
    name, sep, attr = spec.strip().rpartition(":")
    if not sep or not name or not attr:
        raise ConfigError(f"reward {spec!r} must look like module:function or path/to/file.py:function")
    obj: Any = _module(name, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"reward {spec!r}: {name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"reward {spec!r}: {attr} is a {type(obj).__name__}, not a function")
    return obj


class RewardSum:
    """Σ_f weight_f · f(prompts, completions, **columns) per row, ``None`` counting as nothing."""

    def __init__(self, specs: Sequence[str], weights: Sequence[float] = ()) -> None:
        if not specs:
            raise ConfigError("no reward functions: name at least one as module:function (reward_funcs)")
        if weights and len(weights) != len(specs):
            raise ConfigError(f"reward_weights has {len(weights)} entries for {len(specs)} reward_funcs")
        self.names = [s.strip() for s in specs]
        self.funcs = [load_callable(s) for s in specs]
        self.weights = [float(w) for w in weights] if weights else [1.0] * len(specs)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[str], **columns: Sequence[Any]) -> list[float]:
        n = len(completions)
        total = [0.0] * n
        for name, fn, w in zip(self.names, self.funcs, self.weights, strict=True):
            values = fn(list(prompts), list(completions), **{k: list(v) for k, v in columns.items()})
            if values is None or len(values) != n:
                got = "None" if values is None else f"{len(values)} values"
                raise ConfigError(f"reward {name!r} returned {got} for {n} completions (one number or None each)")
            for i, v in enumerate(values):
                if v is None:
                    continue
                v = float(v)
                if math.isnan(v):
                    continue
                total[i] += w * v
        return total


__all__ = ["RewardFn", "RewardSum", "load_callable"]
