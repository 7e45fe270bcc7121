"""The small bidirectional diffusion transformer: shapes, bidirectionality, attention masks, 2-D positions,
seeded initialisation, and that it learns to fill masked tokens from scratch."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.loss import elbo_loss
from thrifty.dlm.masking import forward_mask, sample_times
from thrifty.dlm.model import DiffusionLM, DiffusionLMConfig

CFG = DiffusionLMConfig(vocab_size=12, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=64)


def _model(seed=0):
    return DiffusionLM(CFG, torch.Generator().manual_seed(seed)).eval()


def test_shapes_seeded_init_and_bad_input():
    m = _model()
    ids = torch.randint(0, 12, (3, 7), generator=torch.Generator().manual_seed(1))
    assert m(ids).shape == (3, 7, 12)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), _model().state_dict().values(),
                                                 strict=True))
    assert not torch.equal(m.embed.weight, _model(seed=1).embed.weight)
    with pytest.raises(ConfigError, match="max_len"):
        m(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(ConfigError, match="heads"):
        DiffusionLMConfig(vocab_size=10, d_model=30, n_heads=4)


def test_attention_is_bidirectional_and_a_mask_cuts_it():
    m = _model()
    a = torch.tensor([[1, 2, 3, 4]])
    b = torch.tensor([[1, 2, 3, 5]])  # only the last token differs
    with torch.no_grad():
        assert not torch.allclose(m(a)[0, 0], m(b)[0, 0])  # the first position sees the last: not causal
        blocks = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
        assert torch.allclose(m(a, attn_mask=blocks)[0, :2], m(b, attn_mask=blocks)[0, :2], atol=1e-6)
        assert not torch.allclose(m(a, attn_mask=blocks)[0, 2], m(b, attn_mask=blocks)[0, 2])


def test_two_dimensional_positions_tell_rows_from_columns():
    m = _model()
    ids = torch.tensor([[1, 2, 3, 4]])
    grid = torch.tensor([[[0, 0], [0, 1], [1, 0], [1, 1]]])
    transposed = torch.tensor([[[0, 0], [1, 0], [0, 1], [1, 1]]])
    with torch.no_grad():
        assert m(ids, positions=grid).shape == (1, 4, 12)
        assert not torch.allclose(m(ids, positions=grid), m(ids, positions=transposed))


def test_it_learns_to_fill_masked_tokens_of_a_copy_task():
    """Sequences [a b c d | a b c d]: with half of them masked, the second copy determines the first."""
    gen = torch.Generator().manual_seed(0)
    model = DiffusionLM(CFG, torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mask_id = 11

    def batch(n):
        half = torch.randint(0, 10, (n, 4), generator=gen)
        return torch.cat([half, half], dim=1)

    def accuracy(m):
        x0 = batch(256)
        xt = x0.clone()
        xt[:, :4] = mask_id  # the first copy hidden, the second shown
        with torch.no_grad():
            return (m(xt)[:, :4].argmax(-1) == x0[:, :4]).float().mean().item()

    before = accuracy(model.eval())
    model.train()
    for _ in range(300):
        x0 = batch(32)
        t = sample_times(32, gen)
        xt, masked = forward_mask(x0, t, mask_id, gen)
        loss = elbo_loss(model(xt), x0, masked, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before < 0.3 and accuracy(model.eval()) > 0.9
