"""Live-traffic audits: the small model's own answers from the ledger, judged and turned into a report card."""

from __future__ import annotations

import json
import re

import pytest
from _serve_fakes import ask, service

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore
from thrifty.llm.base import GenParams
from thrifty.llm.fake import FakeChatModel
from thrifty.route.fit.audit import LIVE_TASK, AuditConfig, audit
from thrifty.route.predictors import build_report_card
from thrifty.route.serve.ledger import Ledger


def _judge_model():
    """A rubric judge model that grades every answer 'ok'."""

    def respond(prompt: str) -> str:
        nonce = re.match(r"Fence code: ([0-9a-f]+)", prompt).group(1)
        ids = re.findall(rf"\u27e6BEGIN ANSWER (\d+) {nonce}\u27e7", prompt)
        return json.dumps({"nonce": nonce, "grades": [{"answer": int(i), "rationale": "fine", "label": "ok"}
                                                      for i in ids]})

    return FakeChatModel(rules=[(lambda t: t.startswith("Fence code: "), respond)])


def test_audit_judges_a_sample_of_the_small_models_answers_and_feeds_a_card(tmp_path):
    ledger = tmp_path / "ledger.sqlite"
    svc, _ = service(tmp_path, ledger=Ledger(ledger))
    for i in range(6):
        svc.complete(ask(f"easy {i}"), "thrifty/demo", GenParams(max_tokens=8), task="t" if i % 2 else None)
    svc.complete(ask("hard one"), "thrifty/demo", GenParams(max_tokens=8))  # answered by the large tier
    svc.close()
    judge = _judge_model()
    cfg = AuditConfig(ledger=str(ledger), model="s", judge_model="j", n=4)
    res = audit(cfg, load_model=lambda spec: judge)
    assert (res["pool"], res["audited"], res["new"], res["labels"]) == (6, 4, 4, {"ok": 4})
    calls = len(judge.calls)
    assert audit(cfg, load_model=lambda spec: judge)["new"] == 0 and len(judge.calls) == calls  # cached
    with RunStore(ledger) as store:
        card = build_report_card(store, "s", judge="rubric_isolated")
    assert set(card.tasks) <= {"t", LIVE_TASK} and sum(c.n for c in card.tasks.values()) == 4


def test_audit_refuses_what_it_cannot_judge(tmp_path):
    with pytest.raises(ConfigError, match="no reference"):
        AuditConfig(ledger="x", model="s", judge="verifier", judge_model="j")
    with pytest.raises(ConfigError, match="no ledger"):
        audit(AuditConfig(ledger=str(tmp_path / "none"), model="s", judge_model="j"), load_model=lambda s: None)
    ledger = tmp_path / "quiet.sqlite"
    svc, _ = service(tmp_path, ledger=Ledger(ledger), ledger_messages=False)
    svc.complete(ask("easy"), "thrifty/demo", GenParams(max_tokens=8))
    svc.close()
    with pytest.raises(DataError, match="conversation kept"):
        audit(AuditConfig(ledger=str(ledger), model="s", judge_model="j"), load_model=lambda s: _judge_model())
