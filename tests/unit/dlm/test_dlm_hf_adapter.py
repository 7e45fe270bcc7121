"""The Hugging Face adapter on a tiny random masked LM written to a temporary directory (no hub, no weights)."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.hf_adapter import HFMaskedDiffusion, resolve_eos_id, resolve_mask_id
from thrifty.dlm.likelihood import one_step_mean_field
from thrifty.dlm.samplers import EntropyBoundedSampler, LowConfidenceSampler

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d", "[MASK]", "[EOS]"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny_mlm")
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, mask_token="[MASK]", pad_token="[PAD]", unk_token="[UNK]",
                                   eos_token="[EOS]")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32)
    BertForMaskedLM(cfg).save_pretrained(path)
    return path


def test_ids_come_from_the_tokenizer_and_samplers_and_estimators_run(tiny_dir):
    m = HFMaskedDiffusion.from_pretrained(tiny_dir, device="cpu")
    assert (m.mask_id, m.eos_id) == (WORDS.index("[MASK]"), WORDS.index("[EOS]"))
    prompt = m.encode("a b c")
    assert prompt.tolist() == [[4, 5, 6]]
    for sampler in (LowConfidenceSampler(m.mask_id, steps=4, block_len=2), EntropyBoundedSampler(m.mask_id, 0.5)):
        out = sampler.sample(m, prompt.expand(2, -1), 4, torch.Generator().manual_seed(0))
        assert torch.equal(out.tokens[:, :3], prompt.expand(2, -1)) and bool((out.tokens != m.mask_id).all())
    lp, passes = one_step_mean_field(m, prompt, out.tokens[:1, 3:], m.mask_id)
    assert lp.shape == (1, 4) and passes == 1 and bool((lp <= 0).all())


def test_shifted_models_score_each_token_at_its_own_position(tiny_dir):
    plain = HFMaskedDiffusion.from_pretrained(tiny_dir, device="cpu")
    shifted = HFMaskedDiffusion.from_pretrained(tiny_dir, device="cpu", shift_logits=True)
    ids = torch.tensor([[4, 5, 8, 8]])
    a, b = plain(ids), shifted(ids)
    assert torch.allclose(b[:, 1:], a[:, :-1]) and torch.allclose(b[:, 0], a[:, 0])


def test_missing_directories_and_mask_tokens_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"no config\.json"):
        HFMaskedDiffusion.from_pretrained(tmp_path / "absent")

    class Tok:
        mask_token_id = None

        def get_vocab(self):
            return {"<|mdm_mask|>": 7, "x": 0}

    class Cfg:
        mask_token_id = None
        eos_token_id = (3, 4)

    assert resolve_mask_id(Tok(), Cfg()) == 7 and resolve_eos_id(Tok(), Cfg()) == 3
    Tok.get_vocab = lambda self: {"x": 0}
    with pytest.raises(ConfigError, match="no mask token"):
        resolve_mask_id(Tok(), Cfg())


def test_dlm_sample_runs_a_local_hugging_face_model(tiny_dir, capsys):
    from thrifty.cli.main import main

    assert main(["dlm", "sample", "--hf-model", str(tiny_dir), "--prompt", "a b c", "--gen-len", "4",
                 "--sampler", "entropy_bounded", "--show-steps"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("a b c -> ") and "NFE" in out[0] and len(out[1].split()) == 5
    assert main(["dlm", "sample", "--hf-model", str(tiny_dir), "--gen-len", "4"]) == 1
    assert "needs --prompt" in capsys.readouterr().err
