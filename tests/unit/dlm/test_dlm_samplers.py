"""Sampler invariants on a scripted model: prompt untouched, every mask filled, committed tokens never change,
step maps and NFE as each rule says, batched and seeded."""

from __future__ import annotations

import itertools

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.samplers import EntropyBoundedSampler, LowConfidenceSampler, ThresholdSampler
from thrifty.dlm.samplers.entropy_bounded import eb_count
from thrifty.dlm.samplers.low_confidence import tokens_per_step

MASK, V = 15, 16


class Scripted(torch.nn.Module):
    """Predicts ``target`` at every position, with per-position sharpness (higher: more confident), whatever
    the context; records every input it sees."""

    def __init__(self, target: torch.Tensor, sharp: torch.Tensor) -> None:
        super().__init__()
        self.target, self.sharp, self.seen = target, sharp, []

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.seen.append(ids.clone())
        logits = torch.zeros(*ids.shape, V)
        logits.scatter_(-1, self.target[..., None], self.sharp[..., None].float())
        return logits


def _setup(sharp_answer, b=1, prompt=(1, 2)):
    g = len(sharp_answer)
    prompt_ids = torch.tensor([list(prompt)] * b)
    target = torch.cat([prompt_ids, (torch.arange(g) % 10 + 3).expand(b, g)], dim=1)
    sharp = torch.cat([torch.full((b, len(prompt)), 50.0), torch.tensor(sharp_answer, dtype=torch.float).expand(b, g)],
                      dim=1)
    return prompt_ids, Scripted(target, sharp), target


def _never_remasked(seen):
    for before, after in itertools.pairwise(seen):
        kept = before != MASK
        assert torch.equal(after[kept], before[kept])


def test_low_confidence_blocks_commit_the_most_confident_first_in_a_fixed_number_of_steps():
    prompt, model, target = _setup([1, 9, 2, 8, 7, 3, 6, 4])
    out = LowConfidenceSampler(MASK, steps=4, block_len=4).sample(model, prompt, 8, torch.Generator())
    assert out.nfe == 4 and torch.equal(out.tokens, target) and torch.equal(out.tokens[:, :2], prompt)
    # block 1 (sharpness 1 9 2 8): 9 and 8 at step 0, then 1 and 2; block 2 (7 3 6 4): 7 and 6 at step 2
    assert out.step_map.tolist() == [[1, 0, 1, 0, 2, 3, 2, 3]]
    _never_remasked(model.seen)
    assert tokens_per_step(5, 2) == [3, 2] and tokens_per_step(4, 4) == [1, 1, 1, 1]


def test_random_remasking_is_seeded():
    prompt, model, _ = _setup([5.0] * 8)
    s = LowConfidenceSampler(MASK, steps=8, remasking="random")
    a = s.sample(model, prompt, 8, torch.Generator().manual_seed(1)).step_map
    b = s.sample(model, prompt, 8, torch.Generator().manual_seed(1)).step_map
    c = s.sample(model, prompt, 8, torch.Generator().manual_seed(2)).step_map
    assert torch.equal(a, b) and not torch.equal(a, c) and sorted(a[0].tolist()) == list(range(8))


def test_threshold_sampler_takes_every_confident_token_and_at_least_one():
    prompt, sure, target = _setup([50.0] * 8)
    out = ThresholdSampler(MASK, threshold=0.9, block_len=4).sample(sure, prompt, 8, torch.Generator())
    assert out.nfe == 2 and torch.equal(out.tokens, target)  # one step per block
    prompt, unsure, target = _setup([0.5] * 8)  # probability ≈ 0.1: never above the threshold
    out = ThresholdSampler(MASK, threshold=0.9).sample(unsure, prompt, 8, torch.Generator())
    assert out.nfe == 8 and torch.equal(out.tokens, target) and sorted(out.step_map[0].tolist()) == list(range(8))
    _never_remasked(unsure.seen)


def test_entropy_bound_by_hand_and_its_extremes():
    h = torch.tensor([[0.1, 0.2, 0.5, float("inf")]], dtype=torch.float64)
    valid = torch.isfinite(h)
    assert eb_count(h, valid, 0.25).tolist() == [2]  # sums minus max: 0, 0.1, 0.3
    assert eb_count(h, valid, 0.0).tolist() == [1] and eb_count(h, valid, 10.0).tolist() == [3]
    prompt, model, target = _setup([2.0, 3.0, 4.0, 5.0, 2.0, 3.0, 4.0, 5.0])
    one = EntropyBoundedSampler(MASK, gamma=0.0).sample(model, prompt, 8, torch.Generator())
    assert one.nfe == 8 and torch.equal(one.tokens, target)
    assert one.step_map[0].tolist()[:4] == [6, 4, 2, 0]  # lowest entropy (sharpest) first
    many = EntropyBoundedSampler(MASK, gamma=100.0, block_len=4).sample(model, prompt, 8, torch.Generator())
    assert many.nfe == 2 and torch.equal(many.tokens, target)


def test_batches_decode_each_sequence_by_its_own_confidence():
    prompt = torch.tensor([[1, 2], [1, 2]])
    target = torch.cat([prompt, torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]])], dim=1)
    sharp = torch.tensor([[50.0, 50, 50, 50, 50, 50], [50.0, 50, 0.5, 0.5, 0.5, 0.5]])
    model = Scripted(target, sharp)
    out = ThresholdSampler(MASK, threshold=0.9).sample(model, prompt, 4, torch.Generator())
    assert torch.equal(out.tokens, target) and out.nfe_per_seq.tolist() == [1, 4] and out.nfe == 4


def test_bad_settings_are_one_line_errors():
    prompt, model, _ = _setup([1.0] * 8)
    with pytest.raises(ConfigError, match="multiple of block_len"):
        ThresholdSampler(MASK, block_len=3).sample(model, prompt, 8, torch.Generator())
    with pytest.raises(ConfigError, match="split evenly"):
        LowConfidenceSampler(MASK, steps=3, block_len=4).sample(model, prompt, 8, torch.Generator())
    with pytest.raises(ConfigError, match="threshold"):
        ThresholdSampler(MASK, threshold=0.0)
    with pytest.raises(ConfigError, match="gamma"):
        EntropyBoundedSampler(MASK, gamma=-1)


def test_the_mask_token_is_never_proposed_even_when_the_model_prefers_it():
    prompt = torch.tensor([[1, 2]])
    target = torch.tensor([[1, 2, MASK, 4, MASK, 6]])  # the model's favourite at two answer positions is MASK
    model = Scripted(target, torch.full((1, 6), 5.0))
    out = LowConfidenceSampler(MASK, steps=4).sample(model, prompt, 4, torch.Generator())
    assert out.nfe == 4 and not bool((out.tokens == MASK).any()) and out.tokens[0, 3].item() == 4


def test_adaptive_sampler_spends_steps_where_its_predictor_says():
    from thrifty.dlm.samplers import AdaptiveSampler

    prompt = torch.tensor([[1, 2], [3, 4]])
    target = torch.cat([prompt, torch.tensor([[5, 6, 7, 8], [5, 6, 7, 8]])], dim=1)
    model = Scripted(target, torch.full((2, 6), 2.0))  # unsure everywhere: entropy well above 0
    careful_first = AdaptiveSampler(MASK, predictor=lambda p: torch.tensor([0, 1]), grid=[0.0, 100.0])
    out = careful_first.sample(model, prompt, 4, torch.Generator())
    assert torch.equal(out.tokens, target) and out.nfe_per_seq.tolist() == [4, 1]  # γ 0: one a step; γ 100: all
    direct = AdaptiveSampler(MASK, predictor=lambda p: torch.tensor([100.0, 0.0]))
    assert direct.sample(model, prompt, 4, torch.Generator()).nfe_per_seq.tolist() == [1, 4]
    with pytest.raises(ConfigError, match="out of range"):
        AdaptiveSampler(MASK, predictor=lambda p: torch.tensor([0, 5]), grid=[0.0, 1.0]).sample(
            model, prompt, 4, torch.Generator())
    with pytest.raises(ConfigError, match="one value per prompt"):
        AdaptiveSampler(MASK, predictor=lambda p: torch.tensor([0.1])).sample(model, prompt, 4, torch.Generator())


def test_samplers_record_the_behaviour_log_prob_of_every_committed_token():
    prompt_ids, model, _ = _setup([0.5, 1.0, 2.0, 3.0], b=3)
    for temperature in (0.0, 1.0, 0.5):
        out = EntropyBoundedSampler(MASK, gamma=0.5, temperature=temperature).sample(
            model, prompt_ids, 4, torch.Generator().manual_seed(1))
        logits = model(out.tokens).double()  # context-free: the same distribution at every step
        logits[..., MASK] = float("-inf")
        scale = temperature if temperature > 0 else 1.0
        expect = torch.log_softmax(logits / scale, dim=-1)[:, 2:].gather(-1, out.tokens[:, 2:, None]).squeeze(-1)
        assert out.token_logp is not None and torch.allclose(out.token_logp, expect)


def test_classifier_free_guidance_mixes_the_prompt_masked_pass_by_the_formula():
    class PromptSensitive(torch.nn.Module):
        """Token 3 is likelier with the prompt visible, token 4 with it masked."""

        def __init__(self) -> None:
            super().__init__()
            self.seen = []

        def forward(self, ids):
            self.seen.append(ids.clone())
            logits = torch.zeros(*ids.shape, V)
            visible = (ids[:, :1] != MASK).float()[:, :, None]
            logits[..., 3] = 2.0 * visible[..., 0]
            logits[..., 4] = 1.0 + 0.0 * visible[..., 0]
            return logits

    model = PromptSensitive()
    sampler = LowConfidenceSampler(MASK, steps=2, cfg_scale=1.0)
    prompt = torch.tensor([[1, 2]])
    out = sampler.sample(model, prompt, 2, torch.Generator())
    assert out.nfe == 2 and all(x.shape[0] == 2 for x in model.seen)  # cond and uncond in one call
    assert bool((model.seen[0][1, :2] == MASK).all()) and torch.equal(model.seen[0][0, :2], prompt[0])
    # cond: token 3 logit 2, token 4 logit 1; uncond: 0 and 1 -> guided = un + 2 (cond - un): 4 and 1 -> token 3
    assert out.tokens[0, 2:].tolist() == [3, 3]
    logits = sampler.logits(model, torch.tensor([[1, 2, MASK, MASK]]), 2)
    assert logits[0, 2, 3].item() == 4.0 and logits[0, 2, 4].item() == 1.0
    with pytest.raises(ConfigError, match="cfg_scale"):
        LowConfidenceSampler(MASK, steps=2, cfg_scale=-1.0)
