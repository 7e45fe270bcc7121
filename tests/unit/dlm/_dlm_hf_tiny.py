"""A tiny random Hugging Face masked LM (BERT, hidden 32, 2 layers) with a word-level tokenizer that has mask, pad
and EOS tokens and a chat template, a JSONL prompt file with an extra column, and a reward module — all written
offline to a folder, as a user would bring them to `thrifty dlm rl --hf-model`."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ["a", "b", "c", "d", "e", "f", "g", "h"]
SPECIALS = ["[PAD]", "[UNK]", "[MASK]", "[EOS]", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
REWARDS = '''
def match_target(prompts, completions, target, **_):
    """Fraction of the completion's words equal to the row's target word."""
    out = []
    for text, t in zip(completions, target):
        words = text.split()
        out.append(sum(w == t for w in words) / 4)
    return out


def skip_all(prompts, completions, **_):
    return [None] * len(completions)


not_a_function = 3
'''


def tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(WordLevel({w: i for i, w in enumerate(SPECIALS + WORDS)}, unk_token="[UNK]"))
    raw.pre_tokenizer = WhitespaceSplit()
    raw.add_special_tokens(SPECIALS)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, mask_token="[MASK]", pad_token="[PAD]", unk_token="[UNK]",
                                  eos_token="[EOS]", additional_special_tokens=SPECIALS[4:])
    tok.chat_template = TEMPLATE
    return tok


def save_model(path: Path, seed: int = 0) -> Path:
    """The tokenizer and a random BertForMaskedLM (BERT's default dropout, which training must switch off)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    tokenizer().save_pretrained(path)
    torch.manual_seed(seed)  # test-side weight init only; the library never touches the global RNG
    cfg = BertConfig(vocab_size=len(SPECIALS) + len(WORDS), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)  # dropout 0.1
    BertForMaskedLM(cfg).save_pretrained(path)
    return path


def write_data(folder: Path, n: int = 10) -> tuple[Path, Path]:
    """(prompts.jsonl with ``prompt`` and ``target`` columns, rewards.py)."""
    rows = [{"prompt": " ".join(WORDS[(i + k) % 8] for k in range(1 + i % 3)), "target": WORDS[i % 4]}
            for i in range(n)]
    rows[1]["prompt"] = [{"role": "user", "content": "c d"}]  # chat messages work too
    prompts = folder / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rewards = folder / "my_rewards.py"
    rewards.write_text(REWARDS)
    return prompts, rewards


def write_user_files(folder: Path) -> tuple[Path, Path, Path]:
    """(model folder, prompts.jsonl, rewards.py) written to ``folder``."""
    return (save_model(folder / "model"), *write_data(folder))


def rl_config(files: tuple[Path, ...], run: Path, **fields):
    """A `dlm rl --hf-model` config on ``files`` (model, prompts, rewards, …) rewarded by ``match_target``."""
    from thrifty.dlm.rl.config import DlmRLConfig

    model, prompts, rewards = files[:3]
    return DlmRLConfig(hf_model=str(model), prompts_file=str(prompts), run_dir=str(run),
                       reward_funcs=[f"{rewards}:match_target"], **fields)
