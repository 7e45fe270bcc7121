"""The Hugging Face adapter with the samplers' opt-in extras: special ids for answer constraints come from the
tokenizer, and the key/value cache option is refused (the adapter has no partial forward)."""

from __future__ import annotations

import pytest
import torch
from _dlm_hf_tiny import SPECIALS, save_model

from thrifty.core.errors import ConfigError
from thrifty.dlm.hf_adapter import HFMaskedDiffusion
from thrifty.dlm.samplers import LowConfidenceSampler
from thrifty.dlm.samplers.constraints import AnswerConstraints


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return HFMaskedDiffusion.from_pretrained(save_model(tmp_path_factory.mktemp("tiny_hf")), device="cpu")


def test_special_ids_come_from_the_tokenizer_and_never_appear_in_constrained_answers(tiny):
    specials = {tiny.tokenizer.convert_tokens_to_ids(t) for t in SPECIALS}
    assert set(tiny.special_ids()) == specials - {tiny.eos_id}
    assert set(tiny.special_ids(keep_eos=False)) == specials
    prompt = tiny.encode("a b c").expand(32, -1)
    free = LowConfidenceSampler(tiny.mask_id, steps=6, temperature=3.0).sample(tiny, prompt, 6,
                                                                              torch.Generator().manual_seed(0))
    assert bool(torch.isin(free.tokens[:, 3:], torch.tensor(tiny.special_ids())).any())  # they do show up unasked
    sampler = LowConfidenceSampler(tiny.mask_id, steps=6, temperature=3.0,
                                   constraints=AnswerConstraints(forbid_ids=tiny.special_ids()))
    answer = sampler.sample(tiny, prompt, 6, torch.Generator().manual_seed(0)).tokens[:, 3:]
    allowed = torch.tensor(sorted(set(range(len(tiny.tokenizer))) - set(tiny.special_ids())))
    assert bool(torch.isin(answer, allowed).all())


def test_the_cache_option_is_refused_for_hugging_face_models(tiny):
    with pytest.raises(ConfigError, match="forward_kv"):
        LowConfidenceSampler(tiny.mask_id, steps=4, cache="prefix").sample(tiny, tiny.encode("a b"), 4,
                                                                            torch.Generator())
