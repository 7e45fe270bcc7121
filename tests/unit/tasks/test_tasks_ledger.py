"""Live traffic as a task: the ledger's conversations become deduplicated, split, multi-turn examples."""

from __future__ import annotations

import pytest

from thrifty.core.errors import ConfigError
from thrifty.core.store import RunStore, record_key
from thrifty.llm.fake import FakeChatModel
from thrifty.route.records.collect import CollectConfig, collect
from thrifty.tasks.loader import load_task


def _ledger(path, n=60):
    with RunStore(path) as store:
        for i in range(n):
            msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {i % 50}"}]
            router = "a" if i % 3 else "b"
            store.put("decision", record_key("decision", {"request_id": f"r{i}"}),
                      {"request_id": f"r{i}", "router": router, "messages": msgs, "task": "t"}, {"router": router})
        store.put("decision", record_key("decision", {"request_id": "quiet"}), {"request_id": "quiet"}, {})
    return path


def test_ledger_examples_are_distinct_conversations_split_by_hash(tmp_path):
    task = load_task(f"ledger:{_ledger(tmp_path / 'l.sqlite')}")
    splits = {s: task.examples(s, 100) for s in ("train", "val", "test")}
    ids = [e.id for exs in splits.values() for e in exs]
    assert len(ids) == len(set(ids)) == 50  # 60 requests, 50 distinct conversations; the quiet one has none
    assert all(len(exs) > 0 for exs in splits.values())
    ex = splits["test"][0]
    assert ex.messages()[0] == {"role": "system", "content": "be brief"} and ex.prompt.startswith("question")
    assert task.examples("test", 3, seed=1) == load_task(task.name).examples("test", 3, seed=1)  # deterministic
    assert task.score(ex, "anything").parsed is None
    only_b = load_task(f"ledger:{tmp_path / 'l.sqlite'}?router=b")
    assert sum(len(only_b.examples(s, 100)) for s in ("train", "val", "test")) == 20


def test_ledger_task_feeds_collect_with_its_conversations(tmp_path):
    path = _ledger(tmp_path / "l.sqlite")
    spec = f"ledger:{path}"
    model = FakeChatModel(default="an answer")
    res = collect(CollectConfig(models=["m"], tasks=[spec], split="val", n_per_task=5, judge="",
                                run_dir=str(tmp_path / "run")), load_model=lambda s: model, load_task=load_task)
    assert res.new_generations == 5 and model.calls[-1].messages[0]["content"] == "be brief"


def test_bad_ledger_specs_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no ledger here"):
        load_task(f"ledger:{tmp_path / 'none.sqlite'}")
    with pytest.raises(ConfigError, match="unknown option"):
        load_task(f"ledger:{_ledger(tmp_path / 'l.sqlite')}?model=x")
    with pytest.raises(ConfigError, match="missing STORE"):
        load_task("ledger")
