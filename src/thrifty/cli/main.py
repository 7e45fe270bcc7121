"""Entry point of `thrifty`: builds the argparse tree from the room modules and turns errors into one line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from thrifty import __version__
from thrifty.core.errors import ThriftyError
from thrifty.core.text import one_line

# Each room module exposes ``register(subparsers)``; its handlers import heavy libraries lazily.
ROOMS = ("models", "tasks", "route", "dlm", "video", "store", "demo")


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with a one-line usage error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"thrifty: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; importing it never imports torch or llama_cpp."""
    parser = _Parser(prog="thrifty", description="Make language models spend compute where it pays.")
    parser.add_argument("--version", action="version", version=f"thrifty {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    rooms = parser.add_subparsers(dest="room", metavar="<room>", parser_class=_Parser)
    rooms.required = True
    for room in ROOMS:
        importlib.import_module(f"thrifty.cli.{room}").register(rooms)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("THRIFTY_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit flush
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("thrifty: interrupted (finished records are kept; re-run to resume)\n")
        return 130
    except ThriftyError as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"thrifty: error: {_message(exc)}\n")
        return 1
    except Exception as exc:  # unexpected: still one line unless --debug
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"thrifty: error: {type(exc).__name__}: {_message(exc)} (re-run with --debug)\n")
        return 1


def _message(exc: BaseException) -> str:
    return one_line(str(exc), limit=None) or "unknown error"


if __name__ == "__main__":
    raise SystemExit(main())
