"""Report cards: built from collected train-split grades, counted by hand, versioned, saved, rendered, injected."""

from __future__ import annotations

import json
import re

import pytest

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore, record_key
from thrifty.llm.fake import FakeChatModel
from thrifty.route.predictors import (
    CardStats,
    ReportCard,
    ReportCardPredictor,
    build_report_card,
    categories_of,
    summarise,
)
from thrifty.route.records.collect import CollectConfig, collect
from thrifty.tasks.base import Example, Score


class CountTask:
    """Five examples per split: answer i + 1; off by one scores 0.5 (judged ok), otherwise 0 (bad)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def examples(self, split, n, seed=0):
        return [Example(id=f"{split}-{i}", prompt=f"Item {i}: what is {i} plus one?", reference=str(i + 1),
                        meta={"category": "small" if i < 2 else "big"}) for i in range(n)]

    def score(self, example, text):
        m = re.search(r"Answer:\s*(-?\d+)", text)
        got = int(m.group(1)) if m else None
        ref = int(example.reference)
        value = 1.0 if got == ref else 0.5 if got is not None and abs(got - ref) == 1 else 0.0
        return Score(value, value == 1.0, None if got is None else str(got), "scripted")


def _reply(msg: str) -> str:
    i = int(re.search(r"Item (\d+)", msg).group(1))
    return {3: "Answer: 3", 4: "Answer: 99"}.get(i, f"Answer: {i + 1}")  # 0-2 right, 3 off by one, 4 wrong


@pytest.fixture()
def store_path(tmp_path):
    model = FakeChatModel(rules=[(lambda m: True, _reply)])
    for split in ("train", "test"):
        cfg = CollectConfig(models=["tiny"], tasks=["count"], split=split, n_per_task=5,
                            run_dir=str(tmp_path / "run"))
        collect(cfg, load_model=lambda s: model, load_task=CountTask)
    return tmp_path / "run" / "store.sqlite"


def test_card_from_collected_train_records(store_path):
    with RunStore(store_path) as store:
        card = build_report_card(store, "tiny")
    stats = card.tasks["count"]
    assert stats.n == 5  # the 5 test-split grades are not counted
    assert stats.counts == {"great": 3, "ok": 1, "bad": 1}
    assert stats.mode == "great"
    assert stats.distribution["great"] == pytest.approx(0.6)
    assert stats.accuracy == pytest.approx(3 / 5)
    assert card.judge == "verifier" and card.split == "train" and card.model == "tiny"
    text = card.render()
    assert "count (n=5): great 60% | ok 20% | bad 20%; most often great; correct 60%." in text
    assert "5 graded past answers" in text


def test_only_train_split_and_known_models(store_path):
    with RunStore(store_path) as store:
        with pytest.raises(ConfigError, match="train split"):
            build_report_card(store, "tiny", split="test")
        with pytest.raises(ConfigError, match="no graded train records"):
            build_report_card(store, "someone-else")


def _put_grade(store, model, task, example, label, judge="verifier"):
    store.put("grade", record_key("grade", [model, task, example, judge]),
              {model: {"label": label, "rationale": "", "raw": "", "info": {}}},
              {"judge": judge, "task": task, "split": "train", "example": example})


def test_categories_and_several_judges(store_path):
    with RunStore(store_path) as store:
        _put_grade(store, "tiny", "count", "train-0", "bad", judge="other")
        with pytest.raises(ConfigError, match="several judges"):
            build_report_card(store, "tiny")
        other = build_report_card(store, "tiny", judge="other",
                                  categories=categories_of(CountTask("count").examples("train", 5)))
    assert other.tasks["count"].counts == {"bad": 1} and other.judge == "other"
    # accuracy counts every scored train answer of the cell (train-0 and train-1 are both right)
    assert other.categories == {"count": {"small": CardStats({"bad": 1}, 2, 2)}}
    assert "  - category small (n=1): great 0% | ok 0% | bad 100%; most often bad; correct 100%." in other.render()


def test_example_tagged_grades_are_deduplicated(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store:
        _put_grade(store, "m", "t", "e1", "bad")
        store.put("grade", "other-key", {"m": {"label": "great"}},
                  {"judge": "verifier", "task": "t", "split": "train", "example": "e1"})  # a later regrade
        _put_grade(store, "m", "t", "e2", "unparsed")
        card = build_report_card(store, "m")
    assert card.tasks["t"].counts == {"great": 1, "unparsed": 1}
    assert card.tasks["t"].accuracy is None and card.tasks["t"].mode == "great"
    assert "unreadable 50%" in card.render()


def test_mode_ties_go_to_the_worse_grade():
    assert CardStats({"great": 2, "ok": 2, "bad": 1}).mode == "ok"
    assert CardStats({"unparsed": 3}).mode is None


def _card(**kw):
    base = dict(model="m", tasks={"a": CardStats({"great": 1, "bad": 3}, 1, 4), "b": CardStats({"ok": 2})})
    return ReportCard(**{**base, **kw})


def test_version_changes_iff_content_changes():
    assert _card().version == _card().version and len(_card().version) == 12
    assert _card(prose="Weak at a.").version != _card().version
    assert _card(tasks={"a": CardStats({"great": 2, "bad": 3}, 1, 4)}).version != _card().version


def test_save_load_round_trip_and_malformed_files(tmp_path):
    card = _card(prose="Mostly bad on a.")
    path = card.save(tmp_path / "card.json")
    again = ReportCard.load(path)
    assert again == card and again.version == card.version
    assert json.loads(path.read_text())["version"] == card.version
    bad_files = {
        "nojson.json": "{not json",
        "notcard.json": json.dumps({"hello": 1}),
        "negative.json": json.dumps({**card.to_dict(), "tasks": {"a": {"counts": {"great": -1}}}}),
        "label.json": json.dumps({**card.to_dict(), "tasks": {"a": {"counts": {"fine": 1}}}}),
        "edited.json": json.dumps({**card.to_dict(), "prose": "changed", "version": card.version}),
    }
    for name, text in bad_files.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError) as err:
            ReportCard.load(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match="not found"):
        ReportCard.load(tmp_path / "missing.json")


def test_render_per_task_and_size():
    card = _card()
    full, only_a = card.render(), card.render("a")
    assert "a (n=4): great 25% | ok 0% | bad 75%; most often bad; correct 25%." in full
    assert "b (n=2)" in full and "b (n=2)" not in only_a and "a (n=4)" in only_a
    assert "Overall: great 17% | ok 33% | bad 50%; most often bad; correct 25%." in only_a
    assert card.render("unknown-task") == full  # unknown tag → the global card
    assert len(full.split()) < 150


def test_report_card_predictor_puts_the_card_in_context():
    model = FakeChatModel(label_default={"great": 1.0, "bad": 3.0})
    card = _card()
    p = ReportCardPredictor(model, card).predict([{"role": "user", "content": "q"}], task="a")
    assert p.p_bad == pytest.approx(0.75)
    instruction = model.calls[-1].messages[0]["content"]
    assert card.render("a") in instruction and "b (n=2)" not in instruction
    ReportCardPredictor(model, card).predict([{"role": "user", "content": "q"}])
    assert card.render() in model.calls[-1].messages[0]["content"]
    with pytest.raises(ConfigError):
        ReportCardPredictor(model, {"a": 1})


def test_summarise_adds_prose_from_a_chat_model():
    writer = FakeChatModel(default="You do well on b.\n  You often fail a.")
    card = summarise(_card(), writer)
    assert card.prose == "You do well on b. You often fail a." and card.version != _card().version
    assert "a (n=4)" in writer.calls[-1].messages[0]["content"]
    assert card.render().endswith("Summary: You do well on b. You often fail a.")
    with pytest.raises(ConfigError, match="empty"):
        summarise(_card(), FakeChatModel(default=""))
