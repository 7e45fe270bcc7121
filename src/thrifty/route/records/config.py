"""The record-selection fields every route verb that reads the run store shares: declared once here (default,
help, flag), validated once (:func:`check_records`).

A config declares the ones it uses, each with its own default, e.g. ``split: str = record_field("split", "val")``;
``thrifty.cli._common.add_config_flags`` turns them into the same flags with the same help on every verb.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thrifty.core.config import option
from thrifty.core.errors import ConfigError
from thrifty.tasks.base import SPLITS, check_split

_FIELDS: dict[str, dict[str, Any]] = {
    "store": {"help": "run store (store.sqlite) holding the judged records (default: <run-dir>/store.sqlite)"},
    "run_dir": {"help": "where the config, outputs and summaries go"},
    "tasks": {"help": "comma-separated task specs (as collected; see `thrifty tasks list`)"},
    "split": {"help": "which split's records", "choices": SPLITS},
    "n_per_task": {"help": "examples per task", "flag": "--n", "type": int},
    "seed": {"help": "seed of the examples drawn per task (as collected)", "type": int},
    "judge": {"help": "the judge whose grades are the labels (e.g. verifier)"},
    "n_threads": {"help": "llama.cpp threads per model", "flag": "--threads", "type": int},
}


def record_field(name: str, default: Any, help: str | None = None) -> Any:
    """The shared field ``name`` with this config's ``default`` (lists are copied per instance); ``help`` replaces
    the shared text where a verb means something narrower."""
    spec = _FIELDS[name]
    kw = {"help": help or spec["help"], "flag": spec.get("flag"), "choices": spec.get("choices")}
    if isinstance(default, list):
        return option(factory=lambda: list(default), **kw)
    return option(default, **kw)


def record_flags(*names: str, **helps: str) -> dict[str, dict[str, Any]]:
    """The command-line flags of record fields ``names`` (field → flag, help, type, choices), for
    ``thrifty.cli._common.add_field_flags``; keyword arguments replace a field's help on one verb."""
    return {n: {"flag": _FIELDS[n].get("flag") or "--" + n.replace("_", "-"), "help": helps.get(n, _FIELDS[n]["help"]),
                "type": _FIELDS[n].get("type", str), "choices": _FIELDS[n].get("choices")} for n in names}


def check_records(cfg: Any, *, tasks_required: bool = True) -> None:
    """One-line errors for the shared record fields ``cfg`` has: tasks named, a known split, n_per_task and
    n_threads >= 1."""
    if tasks_required and hasattr(cfg, "tasks") and not cfg.tasks:
        raise ConfigError("tasks must name at least one task")
    if hasattr(cfg, "split"):
        check_split(cfg.split)
    for name in ("n_per_task", "n_threads"):
        if hasattr(cfg, name) and getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")


def store_path(cfg: Any) -> Path:
    """The run store a config reads: ``store`` when given, else ``<run_dir>/store.sqlite``."""
    return Path(cfg.store) if cfg.store else Path(cfg.run_dir) / "store.sqlite"


class ReadsStore:
    """For a config with ``store`` and ``run_dir`` fields: :attr:`store_path`, the run store it reads."""

    @property
    def store_path(self) -> Path:
        return store_path(self)


__all__ = ["ReadsStore", "check_records", "record_field", "record_flags", "store_path"]
