"""Live traffic as a task: ``ledger:STORE[?router=NAME]`` reads the conversations a routing server recorded in
its decision ledger, so the usual pipeline (collect both models with an LLM judge → calibrate → eval) runs on a
user's own traffic.

Each distinct conversation is one example (its id is a hash of the messages; repeats count once), assigned to a
split by that hash (60/20/20) and ordered within its split by a seeded shuffle. There is no reference answer:
:meth:`LedgerTask.score` verifies nothing (value 0, ``parsed`` None), so grade with a rubric judge
(``--judge rubric --judge-model SPEC``), never the verifier. Ledgers written with ``ledger_messages: false`` hold
no conversations and give no examples.
"""

from __future__ import annotations

import random
from pathlib import Path

from thrifty.core.errors import ConfigError
from thrifty.core.types import content_hash
from thrifty.tasks.base import Example, Score, check_split, split_of


class LedgerTask:
    """Examples from a decision ledger (see the module notes)."""

    def __init__(self, path: str, router: str | None = None) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no ledger here (a run store written by `thrifty route serve --ledger`)")
        self.router = router
        self.name = f"ledger:{path}" + (f"?router={router}" if router else "")
        self._examples: dict[str, list[Example]] | None = None

    def _load(self) -> dict[str, list[Example]]:
        if self._examples is None:
            from thrifty.core.store import RunStore

            by_split: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
            seen: set[str] = set()
            with RunStore(self.path) as store:
                tags = {"router": self.router} if self.router else {}
                for rec in store.records("decision", **tags):
                    msgs = rec.value.get("messages") if isinstance(rec.value, dict) else None
                    if not msgs or not isinstance(msgs, list):
                        continue
                    key = content_hash(msgs)[:16]
                    if key in seen:
                        continue
                    seen.add(key)
                    last = next((str(m.get("content", "")) for m in reversed(msgs) if m.get("role") == "user"), "")
                    ex = Example(id=f"ledger-{key}", prompt=last, meta={"messages": msgs,
                                                                        "task": rec.value.get("task")})
                    by_split[split_of(key)].append(ex)
            self._examples = by_split
        return self._examples

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        check_split(split)
        pool = sorted(self._load()[split], key=lambda e: e.id)
        random.Random(seed).shuffle(pool)
        return pool[:n]

    def score(self, example: Example, text: str) -> Score:
        return Score(0.0, False, None, "live traffic has no reference: grade with an LLM judge")


__all__ = ["LedgerTask"]
