"""Fine-tuned (hindsight-relabelled LoRA) predictor: data building, balancing, and real training on a tiny model."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from thrifty.core.errors import ConfigError, DataError
from thrifty.core.store import RunStore
from thrifty.llm.hf import HFChatModel
from thrifty.route.fit.sft import SFTConfig, device_args, train_sft
from thrifty.route.predictors.sft import (
    SFT_META,
    SFTItem,
    SFTPredictor,
    balance,
    hindsight_items,
    label_counts,
    load_sft_predictor,
    read_meta,
    target_token,
)
from thrifty.route.predictors.zero_shot import ZeroShotPredictor
from thrifty.route.records.predictions import PredictEvalConfig
from thrifty.route.replay.predict_eval import predict_eval
from thrifty.tasks.base import Example, Score

TASK = "words"


class WordsTask:
    """Prompts in the tiny tokenizer's vocabulary: even ids say "one two three", odd ids "seven eight nine"."""

    name = TASK

    def examples(self, split, n, seed=0):
        words = ("one two three", "seven eight nine")
        return [Example(id=f"{split}-{i}", prompt=words[i % 2]) for i in range(n)]

    def score(self, example, text):
        return Score(0.0, False, None, "unused")


def _item(label: str, i: int) -> SFTItem:
    return SFTItem(TASK, f"e{i}", [{"role": "user", "content": str(i)}], label)


def test_balance_oversamples_every_label_to_the_largest_and_is_seeded():
    items = [_item("bad", i) for i in range(7)] + [_item("great", i) for i in range(7, 9)]
    items.append(_item("ok", 9))
    out = balance(items, random.Random(3))
    assert label_counts(out) == {"great": 7, "ok": 7, "bad": 7}
    great = [it.example for it in out if it.label == "great"]
    assert sorted(set(great)) == ["e7", "e8"] and abs(great.count("e7") - great.count("e8")) <= 1  # 3 copies + 1
    assert [it.example for it in out] == [it.example for it in balance(items, random.Random(3))]
    assert [it.example for it in out] != [it.example for it in balance(items, random.Random(4))]
    assert balance([], random.Random(0)) == []
    assert label_counts(items) == {"great": 2, "ok": 1, "bad": 7}


def test_hindsight_items_carry_the_zero_shot_prompt_and_the_judge_label():
    ex = Example(id="x1", prompt="What is 2 + 2?")
    reader = ZeroShotPredictor(None)
    (item,) = hindsight_items([(TASK, ex, "ok")], reader)
    assert item == SFTItem(TASK, "x1", reader.prompt(ex.messages(), TASK), "ok")
    with pytest.raises(ConfigError, match="not one of"):
        hindsight_items([(TASK, ex, "unparsed")], reader)


def test_target_token_is_read_back_as_its_label(tiny_hf_dir):
    from transformers import AutoTokenizer

    from thrifty.llm.hf import label_token_ids

    tok = AutoTokenizer.from_pretrained(tiny_hf_dir, local_files_only=True)
    readable = label_token_ids(tok, ["great", "ok", "bad"])
    for label in ("great", "ok", "bad"):
        assert target_token(tok, label) in readable[label]
        assert target_token(tok, label) == tok.encode(label, add_special_tokens=False)[0]


def test_config_and_metadata_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="model"):
        SFTConfig(tasks=[TASK])
    with pytest.raises(ConfigError, match="test split"):
        SFTConfig(model="m", tasks=[TASK], split="test")
    with pytest.raises(ConfigError, match="lora_r"):
        SFTConfig(model="m", tasks=[TASK], lora_r=0)
    with pytest.raises(ConfigError, match="not a thrifty SFT adapter"):
        read_meta(tmp_path)
    (tmp_path / SFT_META).write_text("{broken")
    with pytest.raises(ConfigError, match="unreadable"):
        read_meta(tmp_path)
    (tmp_path / SFT_META).write_text(json.dumps({"model": "m"}))
    with pytest.raises(ConfigError, match="base_model"):
        read_meta(tmp_path)
    meta = {"model": "m", "base_model": "b", "prompt_version": "not-this-prompt"}
    with pytest.raises(ConfigError, match="another prediction prompt"):
        SFTPredictor(None, meta)


def test_device_precision_and_loggers_come_from_the_config():
    cfg = SFTConfig(model="m", tasks=[TASK])  # the defaults: CPU, fp32, no logger
    assert device_args(cfg) == {"use_cpu": True, "bf16": False, "fp16": False, "report_to": []}
    gpu = SFTConfig(model="m", tasks=[TASK], device="cuda", precision="bf16", report_to=["tensorboard"])
    assert device_args(gpu, cuda_available=True) == {"use_cpu": False, "bf16": True, "fp16": False,
                                                     "report_to": ["tensorboard"]}
    auto = SFTConfig(model="m", tasks=[TASK], device="auto", precision="fp16")
    assert device_args(auto, cuda_available=True)["use_cpu"] is False and device_args(auto, True)["fp16"]
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        device_args(auto, cuda_available=False)
    assert device_args(SFTConfig(model="m", tasks=[TASK], device="auto"), cuda_available=False)["use_cpu"]
    with pytest.raises(ConfigError, match="no CUDA device"):
        device_args(gpu, cuda_available=False)
    for bad, match in (({"device": "tpu"}, "device must be one of"), ({"precision": "int8"}, "precision must be"),
                       ({"report_to": [""]}, "report_to")):
        with pytest.raises(ConfigError, match=match):
            SFTConfig(model="m", tasks=[TASK], **bad)


def test_the_trainer_takes_the_mapped_arguments(tmp_path):
    from trl import SFTConfig as TRLConfig

    cfg = SFTConfig(model="m", tasks=[TASK], precision="bf16", report_to=["tensorboard"])
    args = TRLConfig(output_dir=str(tmp_path), **device_args(cfg))
    assert args.use_cpu and args.bf16 and not args.fp16 and args.report_to == ["tensorboard"]
    assert str(args.device) == "cpu"


def _store_with_grades(path, n: int) -> None:
    """Judge grades of model "tiny" on the train split: even examples great, odd ones bad (plus noise rows)."""
    with RunStore(path) as store:
        for ex in WordsTask().examples("train", n):
            label = "great" if int(ex.id.split("-")[1]) % 2 == 0 else "bad"
            tags = {"task": TASK, "example": ex.id, "split": "train", "judge": "verifier"}
            store.put("grade", ex.id, {"tiny": {"label": label}}, tags)
        store.put("grade", "other", {"someone-else": {"label": "ok"}},
                  {"task": TASK, "example": "train-0", "split": "train", "judge": "verifier"})


def _digest(folder) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.safetensors")))).hexdigest()


def test_training_teaches_the_tiny_model_the_grade_of_each_prompt_and_leaves_base_weights(tmp_path, tiny_hf_dir):
    store = tmp_path / "store.sqlite"
    _store_with_grades(store, 8)
    before = _digest(tiny_hf_dir)
    cfg = SFTConfig(store=str(store), run_dir=str(tmp_path / "run"), model="tiny", hf_model=str(tiny_hf_dir),
                    tasks=[TASK], n_per_task=8, lora_r=4, lora_alpha=8, learning_rate=0.05, max_steps=30,
                    batch_size=4, seed=1)
    meta = train_sft(cfg, load_task=lambda spec: WordsTask())
    assert meta["labels"] == {"great": 4, "ok": 0, "bad": 4} and meta["n_items"] == 8
    assert len(meta["losses"]) == 30 and meta["losses"][-1] < meta["losses"][0] / 4
    assert meta["wall_s"] > 0 and meta["peak_rss_mb"] > 0 and len(meta["version"]) == 12
    assert _digest(tiny_hf_dir) == before  # base weights untouched; only the adapter was written

    predictor = load_sft_predictor(cfg.out_dir)
    base = SFTPredictor(HFChatModel(tiny_hf_dir))  # the same prompt without the adapter
    for ex in WordsTask().examples("test", 4):
        want = "great" if int(ex.id.split("-")[1]) % 2 == 0 else "bad"
        tuned = predictor.predict(ex.messages(), task=TASK)
        assert tuned.label == want and tuned.probs[want] > 0.9
        assert base.predict(ex.messages(), task=TASK).probs[want] < 0.9  # the adapter, not the base, knows

    # served through predict-eval: test-split grades of "tiny" are the gold labels
    with RunStore(store) as st:
        for ex in WordsTask().examples("test", 4):
            label = "great" if int(ex.id.split("-")[1]) % 2 == 0 else "bad"
            st.put("grade", f"t/{ex.id}", {"tiny": {"label": label}},
                   {"task": TASK, "example": ex.id, "split": "test", "judge": "verifier"})
    pe = PredictEvalConfig(store=str(store), run_dir=str(tmp_path / "pe"), model="tiny", tasks=[TASK],
                           n_per_task=4, predictors=["sft"], adapter=str(cfg.out_dir), n_boot=50)
    res = predict_eval(pe, load_model=lambda spec: pytest.fail("sft loads its own model"),
                       load_task=lambda spec: WordsTask())
    assert res["metrics"]["sft"]["ALL"]["accuracy"] == 1.0 and res["versions"]["sft"] == meta["version"]
    with pytest.raises(ConfigError, match="not 'other'"):
        predict_eval(PredictEvalConfig(**{**pe.__dict__, "model": "other"}), load_task=lambda spec: WordsTask())


def test_brief_and_full_prompts_differ_and_an_adapter_is_read_only_at_its_own(tmp_path):
    from thrifty.route.predictors.base import prompt_version
    from thrifty.route.predictors.sft import SFT_VERSION

    msgs = [{"role": "user", "content": "one two"}]
    brief, full = SFTPredictor(None), SFTPredictor(None, instruction="full")
    assert len(brief.prompt(msgs)[0]["content"]) < len(full.prompt(msgs)[0]["content"]) / 3
    assert full.prompt(msgs) == ZeroShotPredictor(None).prompt(msgs)
    assert "Grade: <label>" in brief.prompt(msgs)[0]["content"]
    meta = {"model": "m", "base_model": "b", "prompt_version": prompt_version(full, SFT_VERSION),
            "instruction": "full"}
    assert SFTPredictor(None, meta).style == "full"
    with pytest.raises(ConfigError, match="another prediction prompt"):
        SFTPredictor(None, {**meta, "instruction": "brief"})
    with pytest.raises(ConfigError, match="instruction style"):
        SFTPredictor(None, instruction="long")


def test_unbalanced_training_follows_the_majority_and_balanced_training_does_not(tmp_path, tiny_hf_dir):
    store = tmp_path / "store.sqlite"
    with RunStore(store) as st:  # one prompt only, graded bad 6 times out of 8: only the label prior is learnable
        for i in range(8):
            tags = {"task": TASK, "example": f"train-{2 * i}", "split": "train", "judge": "verifier"}
            st.put("grade", str(i), {"tiny": {"label": "bad" if i < 6 else "great"}}, tags)
    results = {}
    for balanced in (False, True):
        cfg = SFTConfig(store=str(store), run_dir=str(tmp_path / f"run{balanced}"), model="tiny",
                        hf_model=str(tiny_hf_dir), tasks=[TASK], n_per_task=16, lora_r=4, lora_alpha=8,
                        learning_rate=0.05, max_steps=25, batch_size=8, balance=balanced, seed=2)
        train_sft(cfg, load_task=lambda spec: WordsTask())
        ex = WordsTask().examples("test", 1)[0]
        results[balanced] = load_sft_predictor(cfg.out_dir).predict(ex.messages(), task=TASK)
    assert results[False].p_bad > 0.6 and results[False].label == "bad"
    assert abs(results[True].p_bad - results[True].p_great) < 0.25 and results[True].p_ok < 0.1


def test_training_without_grades_says_what_to_run(tmp_path, tiny_hf_dir):
    store = tmp_path / "store.sqlite"
    RunStore(store).close()
    cfg = SFTConfig(store=str(store), run_dir=str(tmp_path), model="tiny", hf_model=str(tiny_hf_dir),
                    tasks=[TASK])
    with pytest.raises(DataError, match="route collect"):
        train_sft(cfg, load_task=lambda spec: WordsTask())
    with pytest.raises(ConfigError, match="no run store"):
        train_sft(SFTConfig(store=str(tmp_path / "none.sqlite"), model="tiny", tasks=[TASK]))
