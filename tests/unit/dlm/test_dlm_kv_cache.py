"""Key/value caching for block decoding: the model's partial forward against cached keys/values, the block cache's
exact cases (refresh every step, unchanged prefix, one layer), that its approximation is real for deeper models,
and that the default (uncached) sampler is untouched."""

from __future__ import annotations

import pytest
import torch
from _toy_models import PositionTable

from thrifty.core.errors import ConfigError
from thrifty.dlm.kv_cache import BlockKVCache
from thrifty.dlm.model import DiffusionLM, DiffusionLMConfig
from thrifty.dlm.samplers import LowConfidenceSampler, ThresholdSampler

V, MASK, P, G = 12, 11, 6, 12


def _model(layers: int = 2, seed: int = 0) -> DiffusionLM:
    cfg = DiffusionLMConfig(vocab_size=V, d_model=32, n_layers=layers, n_heads=2, d_ff=64, max_len=64)
    return DiffusionLM(cfg, torch.Generator().manual_seed(seed)).eval()


def _seq(b: int = 3, seed: int = 1) -> torch.Tensor:
    prompt = torch.randint(0, MASK, (b, P), generator=torch.Generator().manual_seed(seed))
    return torch.cat([prompt, torch.full((b, G), MASK)], dim=1)


def _prompts(b: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, MASK, (b, P), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_forward_kv_without_context_is_the_plain_forward():
    model, x = _model(), _seq()
    logits, kv = model.forward_kv(x)
    assert torch.allclose(logits, model(x), atol=1e-5)
    assert len(kv) == 2 and kv[0][0].shape == (3, 2, P + G, 16)


@torch.no_grad()
def test_cached_logits_equal_a_full_forward_when_nothing_changed():
    model, x = _model(), _seq()
    x[:, P:P + 2] = 3  # a committed first block
    full, kv = model.forward_kv(x)
    n = x.shape[1]
    pos = torch.arange(n).expand(x.shape[0], n)
    lo, hi = P + 4, P + 8
    prefix = [(k[:, :, :lo], v[:, :, :lo]) for k, v in kv]
    got, _ = model.forward_kv(x[:, lo:], pos[:, lo:], prefix)
    assert torch.allclose(got, full[:, lo:], atol=1e-5)
    dual = [(torch.cat([k[:, :, :lo], k[:, :, hi:]], 2), torch.cat([v[:, :, :lo], v[:, :, hi:]], 2)) for k, v in kv]
    got, _ = model.forward_kv(x[:, lo:hi], pos[:, lo:hi], dual)
    assert torch.allclose(got, full[:, lo:hi], atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_one_layer_cache_stays_exact_after_the_block_changes_and_deeper_ones_do_not(mode):
    block = (P + 4, P + 8)
    for layers, exact in ((1, True), (3, False)):
        model, x = _model(layers), _seq()
        cache = BlockKVCache(model, mode)
        first = cache.logits(x, block, 0)
        assert torch.allclose(first, model(x)[:, block[0]:block[1]], atol=1e-5)  # the refresh is a full forward
        x[:, block[0]] = 2  # commit a token in the block: cached keys above layer 1 go stale
        x[:, block[0] + 2] = 7
        got, want = cache.logits(x, block, 1), model(x)[:, block[0]:block[1]]
        gap = float((got - want).abs().max())
        assert (gap < 1e-5) == exact, (layers, gap)


@torch.no_grad()
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_refreshing_every_step_over_one_block_gives_the_uncached_logits(mode):
    model, x = _model(), _seq()
    cache = BlockKVCache(model, mode, refresh=1)
    block = (P, P + G)
    gen = torch.Generator().manual_seed(0)
    for step in range(4):
        want = model(x)[:, P:]
        assert torch.allclose(cache.logits(x, block, step), want, atol=1e-5)
        x[:, P + torch.randperm(G, generator=gen)[:3]] = step + 1
    assert cache.forwards == 4 and cache.partial == 0


def test_cached_sampler_with_a_refresh_each_step_decodes_like_the_uncached_one():
    model, prompts = _model(), _prompts()
    plain = LowConfidenceSampler(MASK, steps=G, temperature=0.0).sample(model, prompts, G, torch.Generator())
    for mode in ("prefix", "dual"):
        s = LowConfidenceSampler(MASK, steps=G, cache=mode, cache_refresh=1).sample(model, prompts, G,
                                                                                      torch.Generator())
        assert torch.equal(s.tokens, plain.tokens) and torch.equal(s.step_map, plain.step_map)
        assert torch.allclose(s.token_logp, plain.token_logp, atol=1e-5)


class _Spy(torch.nn.Module):
    """A model that records how many positions each cached call runs."""

    def __init__(self, model: DiffusionLM) -> None:
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, ids):
        raise AssertionError("a cached sampler must go through forward_kv")

    def forward_kv(self, ids, positions=None, context=None):
        self.calls.append((ids.shape[1], int(positions[0, 0]) if positions is not None else 0, context is None))
        return self.model.forward_kv(ids, positions, context)


def test_cached_block_sampling_runs_fewer_positions_and_refreshes_at_each_block():
    n, size = P + G, 4
    for mode, live in (("prefix", lambda lo: n - lo), ("dual", lambda lo: size)):
        spy = _Spy(_model())
        s = LowConfidenceSampler(MASK, steps=G, block_len=size, cache=mode).sample(spy, _prompts(), G,
                                                                                     torch.Generator())
        assert s.nfe == G and not bool((s.tokens == MASK).any())
        want = []
        for b in range(G // size):
            lo = P + b * size
            want += [(n, 0, True)] + [(live(lo), lo, False)] * (size - 1)  # 1 token a step: `size` steps a block
        assert spy.calls == want, mode


def test_default_sampling_is_unchanged_by_the_cache_option():
    model, prompts = _model(), _prompts()
    for make in (lambda **kw: LowConfidenceSampler(MASK, steps=G, block_len=4, temperature=0.7, **kw),
                 lambda **kw: ThresholdSampler(MASK, threshold=0.5, block_len=6, temperature=1.0, cfg_scale=0.5, **kw)):
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        a, b = make().sample(model, prompts, G, g1), make(cache="none").sample(model, prompts, G, g2)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.step_map, b.step_map)
        assert torch.equal(a.token_logp, b.token_logp) and torch.equal(a.position_logp, b.position_logp)
        assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))  # same random stream after


def test_guided_cached_sampling_with_a_refresh_each_step_matches_the_uncached():
    model, prompts = _model(), _prompts()
    plain = ThresholdSampler(MASK, threshold=0.3, cfg_scale=1.0).sample(model, prompts, G, torch.Generator())
    cached = ThresholdSampler(MASK, threshold=0.3, cfg_scale=1.0, cache="dual", cache_refresh=1).sample(
        model, prompts, G, torch.Generator())
    assert torch.equal(cached.tokens, plain.tokens)


def test_bad_cache_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown cache"):
        LowConfidenceSampler(MASK, steps=4, cache="full")
    with pytest.raises(ConfigError, match="cache_refresh"):
        LowConfidenceSampler(MASK, steps=4, cache="dual", cache_refresh=-1)
    with pytest.raises(ConfigError, match="forward_kv"):
        LowConfidenceSampler(MASK, steps=G, cache="prefix").sample(PositionTable(V, P + G), _prompts(), G,
                                                                    torch.Generator())
    with pytest.raises(ConfigError, match="outside"):
        BlockKVCache(_model(), "dual").logits(_seq(), (P, P + G + 1), 0)
