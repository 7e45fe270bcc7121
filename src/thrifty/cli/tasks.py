"""`thrifty tasks`: list the task spec forms (and reasoning-gym generators) and show examples of a spec."""

from __future__ import annotations

import argparse
import json

from thrifty.cli._common import add_verb, add_verbs


def register(rooms) -> None:
    """Add the ``tasks`` room with its verbs ``list`` and ``show``."""
    verbs = add_verbs(rooms, "tasks", "list task kinds and look at their examples")
    p = add_verb(verbs, "list", "show the task spec forms and the installed reasoning-gym generators", _list)
    p.add_argument("--json", action="store_true", help="print {forms, gym} as JSON")
    p = add_verb(verbs, "show", "print examples of a task spec (id, prompt, reference)", _show)
    p.add_argument(
        "spec", metavar="SPEC", help="task spec, e.g. gym:chain_sum or gsm8k:test.jsonl (see `list`)"
    )
    p.add_argument(
        "--split", default="test", choices=("train", "val", "test"), help="which split (default test)"
    )
    p.add_argument("--n", type=int, default=3, help="how many examples (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing and ordering examples (default 0)")
    p.add_argument("--json", action="store_true", help="print the examples as JSON (with meta)")


def _gym_names() -> list[str] | None:
    try:
        from thrifty.tasks.gym import gym_names

        return gym_names()
    except ImportError:
        return None


def _list(args: argparse.Namespace) -> int:
    from thrifty.tasks.loader import FORMS

    gym = _gym_names()
    if args.json:
        print(json.dumps({"forms": FORMS, "gym": gym}, indent=2))
        return 0
    print("task specs (KIND[:ARG][?key=value&...]):")
    for form in FORMS.values():
        spec, _, what = form.partition("  ")
        print(f"  {spec}\n      {what.strip()}")
    if gym is None:
        print("reasoning-gym is not installed (pip install reasoning-gym) — gym:NAME specs are unavailable")
    else:
        print(f"reasoning-gym generators ({len(gym)}):")
        line = "  "
        for name in gym:
            if len(line) + len(name) + 1 > 100:
                print(line.rstrip())
                line = "  "
            line += name + " "
        print(line.rstrip())
    return 0


def _show(args: argparse.Namespace) -> int:
    from thrifty.core.errors import ConfigError
    from thrifty.core.types import to_jsonable
    from thrifty.tasks.loader import load_task

    if args.n < 0:
        raise ConfigError(f"--n must be >= 0, got {args.n}")
    task = load_task(args.spec)
    examples = task.examples(args.split, args.n, args.seed)
    if args.json:
        print(json.dumps([to_jsonable(ex) for ex in examples], indent=2, ensure_ascii=False))
        return 0
    print(f"{task.name}  split={args.split}  seed={args.seed}  showing {len(examples)}")
    for ex in examples:
        print(f"\n=== {ex.id}")
        if ex.system:
            print(f"[system] {ex.system}")
        print(ex.prompt)
        print(
            f"--- reference: {ex.reference if ex.reference is not None else '(none: checked by a verifier)'}"
        )
    return 0
