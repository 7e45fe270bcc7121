"""Fixtures shared by every test: offline mode, and a tiny random-init Hugging Face model on disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

TINY_SENTENCES = [
    "the cat sat on the mat and the dog sat on the log",
    "great ok bad good fine poor answer grade score",
    "Great Ok Bad Good",
    "hello world how are you today i am fine thank you",
    "one two three four five six seven eight nine ten",
]
TINY_SPECIALS = ["[UNK]", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TINY_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def _build_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(TINY_SENTENCES, trainers.WordLevelTrainer(special_tokens=TINY_SPECIALS))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="[UNK]", pad_token="</s>"
    )
    tok.chat_template = TINY_TEMPLATE
    return tok


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory) -> Path:
    """A 2-layer, hidden-32 Llama-style model with a word-level tokenizer and chat template, saved locally."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny_llama")
    tok = _build_tokenizer()
    tok.save_pretrained(out)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, initializer_range=0.3,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():  # the fixture's own seed; the global stream is restored afterwards
        torch.manual_seed(1234)
        model = LlamaForCausalLM(cfg)
    model.save_pretrained(out)
    return out
