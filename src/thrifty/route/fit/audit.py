"""`thrifty route audit`: judge a sample of the answers the small tier gave to live traffic, so its report card
can be refreshed from the traffic it really serves.

From a decision ledger (a run store written by ``thrifty route serve --ledger``) the requests the small model
answered itself (action ``answer`` or ``repair``, answering model ``model``, conversation kept) are sampled
(``n``, seeded), and an LLM judge grades each answer against its conversation (no reference: live traffic has
none). The grades are stored in ``store`` (default: the ledger itself) as train-split grade records tagged with
the request's task tag (``live`` when it had none) and its request id — exactly what ``thrifty route report-card
build --store STORE --model MODEL --judge JUDGE`` reads, so the rebuilt card reflects live traffic. Cached: a
re-run judges only requests it has not judged yet.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore
from thrifty.tasks.base import Example

LIVE_TASK = "live"


@dataclass
class AuditConfig:
    ledger: str = ""
    model: str = ""  # the small tier's model id, as the ledger names it
    judge: str = "rubric_isolated"
    judge_model: str = ""
    n: int = 50
    seed: int = 0
    router: str = ""  # only this router's traffic ('' = all)
    store: str = ""  # where the grades go (default: the ledger)

    def __post_init__(self) -> None:
        if not self.ledger or not self.model:
            raise ConfigError("audit needs ledger (a run store from `route serve --ledger`) and model")
        if self.judge == "verifier":
            raise ConfigError("live traffic has no reference: audit with an LLM judge (rubric, rubric_isolated)")
        if not self.judge_model:
            raise ConfigError(f"judge {self.judge!r} needs judge_model (a model spec)")
        if self.n < 1:
            raise ConfigError(f"n must be >= 1, got {self.n}")


def answered_by(ledger: RunStore, model: str, router: str = "") -> list[dict[str, Any]]:
    """The ledger's decisions where ``model`` answered itself, with the conversation and the answer kept."""
    tags = {"model": model, **({"router": router} if router else {})}
    return [r.value for r in ledger.records("decision", **tags)
            if isinstance(r.value, dict) and r.value.get("action") in ("answer", "repair")
            and r.value.get("messages") and isinstance(r.value.get("answer"), str)]


def audit(cfg: AuditConfig, load_model: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Judge a seeded sample of the small model's live answers; returns counts and the grade mix."""
    from thrifty.judge import CachedJudge, make_judge

    path = Path(cfg.ledger)
    if not path.is_file():
        raise ConfigError(f"{path}: no ledger here (a run store written by `thrifty route serve --ledger`)")
    with RunStore(path) as ledger:
        pool = answered_by(ledger, cfg.model, cfg.router)
    if not pool:
        raise DataError(f"{path}: no requests answered by {cfg.model!r} with their conversation kept "
                        "(serve with ledger_messages on)")
    pool.sort(key=lambda d: d["request_id"])
    sample = random.Random(cfg.seed).sample(pool, min(cfg.n, len(pool)))
    if load_model is None:
        from thrifty.llm.factory import load_model
    judge = make_judge(cfg.judge, model=load_model(cfg.judge_model))
    labels: Counter[str] = Counter()
    hits = 0
    with RunStore(cfg.store or path) as store:
        for d in sample:
            msgs = d["messages"]
            last = next((str(m.get("content", "")) for m in reversed(msgs) if m.get("role") == "user"), "")
            example = Example(id=str(d["request_id"]), prompt=last, meta={"messages": msgs})
            tags = {"task": d.get("task") or LIVE_TASK, "split": "train", "example": example.id}
            cached = CachedJudge(judge, store, tags)
            grade = cached.grade(example, {cfg.model: d["answer"]})[cfg.model]
            labels[grade.label] += 1
            hits += cached.hits
    return {"pool": len(pool), "audited": len(sample), "new": len(sample) - hits, "labels": dict(labels),
            "store": str(cfg.store or path), "judge": cfg.judge}


__all__ = ["LIVE_TASK", "AuditConfig", "answered_by", "audit"]
