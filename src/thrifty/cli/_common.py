"""Helpers shared by CLI room modules: adding verbs and common options."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_verbs(rooms, name: str, help_text: str) -> argparse._SubParsersAction:
    """Add room ``name`` and return its verb subparsers (a verb is required)."""
    room = rooms.add_parser(name, help=help_text, description=help_text)
    verbs = room.add_subparsers(dest="verb", metavar="<verb>", parser_class=type(room))
    verbs.required = True
    return verbs


def add_verb(verbs, name: str, help_text: str, func: Callable[[argparse.Namespace], int | None]):
    """Add one verb whose handler is ``func(args)``; returns its parser to add options to."""
    p = verbs.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(func=func)
    return p


def add_config_args(p: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and repeatable ``--set key=value`` overrides to a verb."""
    p.add_argument("--config", metavar="FILE", help="YAML file with config fields (defaults otherwise)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config field (nested: a.b=value); repeatable")


def resolve_config(cls, args: argparse.Namespace, flags: dict[str, str] | None = None):
    """Load ``cls`` from --config, then --set overrides, then the dedicated flags given on the command line.

    ``flags`` maps an argparse destination to the config field it sets (e.g. ``{"n": "n_per_task"}``); flags
    added by :func:`add_field_flags` are mapped already. Flags left unset (None) do not override anything.
    """
    from thrifty.core.config import load_config

    flags = {**getattr(args, "_config_flags", {}), **(flags or {})}
    extra = [f"{field}={getattr(args, dest)}" for dest, field in flags.items() if getattr(args, dest) is not None]
    return load_config(cls, args.config, [*args.overrides, *extra])


def add_field_flags(p: argparse.ArgumentParser, specs: dict[str, dict]) -> None:
    """Add one flag per config field from its spec (``flag``, ``help``, ``type``, ``choices``: e.g.
    ``thrifty.route.records.config.record_flags``); :func:`resolve_config` sets the field from it."""
    mapping = dict(p.get_default("_config_flags") or {})
    for name, spec in specs.items():
        kw = {"help": spec["help"], "type": spec.get("type", str)}
        if spec.get("choices"):
            kw["choices"] = list(spec["choices"])
        mapping[p.add_argument(spec["flag"], **kw).dest] = name
    p.set_defaults(_config_flags=mapping)
