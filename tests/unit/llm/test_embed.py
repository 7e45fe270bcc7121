"""Sentence embeddings: a tiny random-init BERT checked against a per-text forward pass; the real model when pulled."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from thrifty.core.errors import ConfigError, ModelError
from thrifty.llm import catalog
from thrifty.llm.embed import SentenceEmbedder, load_embedder

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

WORDS = ["the", "cat", "sat", "on", "mat", "dog", "log", "a", "an", "is", "was", "good", "bad", "answer",
         "question", "math", "code", "sum", "of", "two", "and", "three"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TEXTS = [
    "the cat sat on the mat",
    "a dog",
    "good answer",
    "the sum of two and three is a math question",
    "unknownword cat",
    "",
]


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 BERT with a WordPiece vocabulary of a few words, saved locally."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny_bert")
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + WORDS + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True).save_pretrained(out)
    cfg = BertConfig(vocab_size=len(SPECIALS) + len(WORDS) + 26, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    with torch.random.fork_rng():  # the fixture's own seed; the global stream is restored afterwards
        torch.manual_seed(4321)
        model = BertModel(cfg)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir) -> SentenceEmbedder:
    return SentenceEmbedder(tiny_bert_dir)


def reference(folder: Path, text: str, max_length: int = 64) -> np.ndarray:
    """One text alone through transformers (no padding): mean over its tokens, then unit length."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    ids = tok(text, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**ids).last_hidden_state[0].double().numpy()
    mean = hidden.mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_embeddings_match_a_per_text_forward_pass(tiny, tiny_bert_dir):
    out = tiny.embed(TEXTS, batch_size=4)
    assert out.shape == (len(TEXTS), 32) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    for row, text in zip(out, TEXTS, strict=True):
        np.testing.assert_allclose(row, reference(tiny_bert_dir, text), atol=2e-5)


def test_order_and_batch_size_do_not_change_rows(tiny):
    whole = tiny.embed(TEXTS)
    np.testing.assert_allclose(tiny.embed(TEXTS, batch_size=1), whole, atol=2e-5)
    flipped = tiny.embed(TEXTS[::-1], batch_size=2)
    np.testing.assert_allclose(flipped[::-1], whole, atol=2e-5)
    np.testing.assert_array_equal(tiny.embed(TEXTS), whole)
    assert tiny.embed([]).shape == (0, 32)


def test_long_texts_are_cut_to_max_length(tiny_bert_dir):
    (tiny_bert_dir / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 6}))
    try:
        short = SentenceEmbedder(tiny_bert_dir)
    finally:
        (tiny_bert_dir / "sentence_bert_config.json").unlink()
    assert short.max_length == 6
    assert SentenceEmbedder(tiny_bert_dir, max_length=1000).max_length == 64  # the position limit
    long_text = "the cat sat on the mat and the dog sat on the log"
    np.testing.assert_allclose(short.embed([long_text])[0], reference(tiny_bert_dir, long_text, 6), atol=2e-5)
    np.testing.assert_allclose(short.embed([long_text]), short.embed(["the cat sat on"]), atol=2e-5)


def test_bad_inputs_are_one_line_errors(tiny, tmp_path):
    with pytest.raises(ConfigError, match="single string"):
        tiny.embed("the cat")
    with pytest.raises(ConfigError, match="item 1 is int"):
        tiny.embed(["the cat", 3])
    with pytest.raises(ConfigError, match="batch_size"):
        tiny.embed(["a"], batch_size=0)
    with pytest.raises(ModelError, match=r"no config\.json"):
        SentenceEmbedder(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot load encoder or tokenizer") as exc:
        SentenceEmbedder(tmp_path)
    assert "\n" not in str(exc.value)


def test_load_embedder_takes_a_folder_or_a_catalog_name(tiny_bert_dir, tmp_path, monkeypatch):
    emb = load_embedder(tiny_bert_dir)
    assert emb.model_id == tiny_bert_dir.name and emb.dim == 32
    assert load_embedder(str(tiny_bert_dir)).dim == 32
    with pytest.raises(ModelError, match="unknown embedding model 'nope'; use one of: all-minilm-l6-v2"):
        load_embedder("nope")
    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="not pulled; run `thrifty models pull all-minilm-l6-v2`"):
        load_embedder("all-minilm-l6-v2")


# ---------------------------------------------------------------- the real model


@pytest.mark.integration
def test_real_minilm_embeds_paraphrases_closer_than_unrelated_text():
    if catalog.find("all-minilm-l6-v2") is None:
        pytest.skip("all-minilm-l6-v2 is not pulled (thrifty models pull all-minilm-l6-v2)")
    emb = load_embedder("all-minilm-l6-v2")
    assert (emb.dim, emb.max_length, emb.model_id) == (384, 256, "all-minilm-l6-v2")
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "Write a Python function that reverses a list.", "Implement list reversal in Python."]
    t0 = time.perf_counter()
    out = emb.embed(texts)
    assert time.perf_counter() - t0 < 60
    assert out.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    sim = out @ out.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[3, 4] > max(sim[3, 0], sim[3, 2]) + 0.3
