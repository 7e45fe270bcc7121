"""Sampler answer constraints: EOS kept out of the first min_len answer positions, forbidden (special) ids never
proposed, probabilities renormalised over a task's valid ids — against models that prefer exactly what is excluded."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.samplers import EntropyBoundedSampler, LowConfidenceSampler, ThresholdSampler
from thrifty.dlm.samplers.constraints import AnswerConstraints
from thrifty.dlm.tasks import CharVocab, get_task

VOCAB = CharVocab("abcdef", eos=True)  # symbols 0..5, then SEP, MASK, EOS
SEP, MASK, EOS, V = VOCAB.sep_id, VOCAB.mask_id, VOCAB.eos_id, VOCAB.size
P, G = 3, 8


class Prefers(torch.nn.Module):
    """Fixed logits per position: ``favourite`` far ahead, then the symbols by a seeded random table."""

    def __init__(self, favourite: int, lead: float = 8.0, seed: int = 0) -> None:
        super().__init__()
        self.table = torch.randn(P + G, V, generator=torch.Generator().manual_seed(seed))
        self.table[:, favourite] += lead

    def forward(self, ids):
        return self.table[: ids.shape[1]].expand(ids.shape[0], -1, -1).clone()


def _prompts(b: int = 16) -> torch.Tensor:
    return torch.randint(0, 6, (b, P), generator=torch.Generator().manual_seed(0))


def _samplers(constraints, temperature=1.0):
    return [LowConfidenceSampler(MASK, steps=G, block_len=4, temperature=temperature, constraints=constraints),
            ThresholdSampler(MASK, threshold=0.5, temperature=temperature, constraints=constraints),
            EntropyBoundedSampler(MASK, gamma=0.5, block_len=2, temperature=temperature, constraints=constraints)]


def test_eos_is_never_chosen_before_min_len_and_still_pads_after_it():
    model, prompts = Prefers(EOS), _prompts()
    unconstrained = LowConfidenceSampler(MASK, steps=G).sample(model, prompts, G, torch.Generator())
    assert bool((unconstrained.tokens[:, P:] == EOS).all())  # the model wants an empty answer
    for sampler in _samplers(AnswerConstraints(eos_id=EOS, min_len=5)):
        out = sampler.sample(model, prompts, G, torch.Generator().manual_seed(1)).tokens[:, P:]
        assert not bool((out[:, :5] == EOS).any())
        assert bool((out[:, 5:] == EOS).all())  # the rule stops at min_len


def test_forbidden_ids_never_appear_even_when_sampled_at_high_temperature():
    model, prompts = Prefers(SEP, lead=2.0), _prompts(64)
    free = LowConfidenceSampler(MASK, steps=G, temperature=1.5).sample(model, prompts, G,
                                                                        torch.Generator().manual_seed(2))
    assert bool((free.tokens[:, P:] == SEP).any())  # without the rule the separator shows up
    for sampler in _samplers(AnswerConstraints(forbid_ids=(SEP, EOS)), temperature=1.5):
        out = sampler.sample(model, prompts, G, torch.Generator().manual_seed(2)).tokens[:, P:]
        assert not bool(((out == SEP) | (out == EOS)).any())


def test_valid_ids_renormalise_the_probabilities_by_hand():
    logits = torch.tensor([[[1.0, 2.0, 0.0, -1.0, 3.0]]])
    out = AnswerConstraints(valid_ids=(0, 1, 3)).apply(logits, 0)
    p = torch.softmax(out.double(), dim=-1)[0, 0]
    z = math.exp(1) + math.exp(2) + math.exp(-1)
    assert torch.allclose(p, torch.tensor([math.exp(1) / z, math.exp(2) / z, 0, math.exp(-1) / z, 0],
                                          dtype=torch.float64))


def test_greedy_sampler_records_the_renormalised_probability_of_valid_tokens():
    model, prompts = Prefers(SEP), _prompts(4)
    valid = (0, 1, 2)
    out = LowConfidenceSampler(MASK, steps=G, constraints=AnswerConstraints(valid_ids=valid)).sample(
        model, prompts, G, torch.Generator())
    answer = out.tokens[:, P:]
    assert bool(torch.isin(answer, torch.tensor(valid)).all())
    table = model.table[P:].double()
    want = table[:, list(valid)].max(dim=1).values - torch.logsumexp(table[:, list(valid)], dim=1)
    assert torch.allclose(out.token_logp, want.expand_as(out.token_logp), atol=1e-9)


def test_constraints_from_a_task_come_from_its_vocabulary():
    task = get_task("sudoku4")
    c = AnswerConstraints.from_task(task)
    assert c.valid_ids == tuple(task.vocab.encode("1234")) and c.forbid_ids == (task.vocab.sep_id,)
    assert c.eos_id is None and AnswerConstraints.from_task(task, valid_only=False).valid_ids is None
    cd = get_task("countdown3")
    assert AnswerConstraints.from_task(cd, min_len=2).eos_id == cd.vocab.eos_id


def test_default_samplers_are_unconstrained():
    model, prompts = Prefers(SEP), _prompts(4)
    a = LowConfidenceSampler(MASK, steps=G).sample(model, prompts, G, torch.Generator())
    b = LowConfidenceSampler(MASK, steps=G, constraints=None).sample(model, prompts, G, torch.Generator())
    assert bool((a.tokens[:, P:] == SEP).all()) and torch.equal(a.tokens, b.tokens)


def test_bad_constraints_are_one_line_errors():
    with pytest.raises(ConfigError, match="eos_id"):
        AnswerConstraints(min_len=3)
    with pytest.raises(ConfigError, match="no token"):
        AnswerConstraints(valid_ids=(1, 2), forbid_ids=(1, 2))
    with pytest.raises(ConfigError, match="no token"):
        AnswerConstraints(eos_id=EOS, min_len=1, valid_ids=(EOS,))
    with pytest.raises(ConfigError, match=">= 0"):
        AnswerConstraints(min_len=-1)
    with pytest.raises(ConfigError, match="vocabulary size"):
        AnswerConstraints(forbid_ids=(V,)).apply(torch.zeros(1, 2, V), 0)
