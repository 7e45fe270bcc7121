"""The forward process and the ELBO loss of masked diffusion, against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.loss import elbo_loss
from thrifty.dlm.masking import forward_mask, keep_prob, loss_weight, mask_prob, sample_times

MASK = 9


def test_schedules_and_weights_by_hand():
    t = torch.tensor([0.5, 1.0])
    assert mask_prob(t, "linear", eps=0.1).tolist() == pytest.approx([0.55, 1.0])  # (1 − ε)t + ε
    assert loss_weight(t, "linear", eps=0.1).tolist() == pytest.approx([1 / 0.55, 1.0])
    assert loss_weight(torch.tensor([0.25]), "linear", eps=0.0).item() == pytest.approx(4.0)  # exactly 1/t
    assert keep_prob(t, "cosine").tolist() == pytest.approx([math.cos(math.pi / 4), 0.0], abs=1e-7)
    # cosine: w = (π/2) sin(π/4) / (1 − cos(π/4)) = 1.1107 / 0.2929 = 3.7922
    assert loss_weight(torch.tensor([0.5]), "cosine").item() == pytest.approx(3.7922, abs=1e-4)
    # the cosine weight is −α′/(1 − α): check against a finite difference
    h = 1e-4
    a = lambda x: keep_prob(torch.tensor([x], dtype=torch.float64), "cosine").item()  # noqa: E731
    fd = -(a(0.3 + h) - a(0.3 - h)) / (2 * h) / (1 - a(0.3))
    assert loss_weight(torch.tensor([0.3], dtype=torch.float64), "cosine").item() == pytest.approx(fd, rel=1e-6)
    with pytest.raises(ConfigError, match="schedule"):
        mask_prob(t, "cubic")
    with pytest.raises(ConfigError, match="eps"):
        mask_prob(t, "linear", eps=1.0)


def test_low_discrepancy_times_put_one_time_in_each_stratum():
    for seed in range(5):
        t = sample_times(8, torch.Generator().manual_seed(seed))
        strata = sorted(int(x * 8) for x in t.tolist())
        assert strata == list(range(8))
    iid = sample_times(1000, torch.Generator().manual_seed(0), low_discrepancy=False)
    assert 0.45 < iid.mean().item() < 0.55 and iid.min().item() >= 1e-5
    a = sample_times(4, torch.Generator().manual_seed(3))
    assert torch.equal(a, sample_times(4, torch.Generator().manual_seed(3)))  # seeded, no global RNG


def test_forward_mask_never_touches_the_prompt_and_masks_at_the_scheduled_rate():
    x0 = torch.arange(2 * 5000).reshape(2, 5000) % 7
    maskable = torch.ones_like(x0, dtype=torch.bool)
    maskable[:, :1000] = False  # the prompt
    t = torch.tensor([0.2, 0.8])
    xt, masked = forward_mask(x0, t, MASK, torch.Generator().manual_seed(0), eps=0.0, maskable=maskable)
    assert not masked[:, :1000].any() and torch.equal(xt[:, :1000], x0[:, :1000])
    assert torch.equal(xt[masked], torch.full_like(xt[masked], MASK)) and torch.equal(xt[~masked], x0[~masked])
    rates = masked[:, 1000:].float().mean(dim=1).tolist()
    assert rates[0] == pytest.approx(0.2, abs=0.02) and rates[1] == pytest.approx(0.8, abs=0.02)
    with pytest.raises(ConfigError, match="shape"):
        forward_mask(x0, t, MASK, torch.Generator(), maskable=maskable[:, :10])


def _logits(p_rows):
    """Logits whose softmax is the given probability rows (B, L, V)."""
    return torch.log(torch.tensor(p_rows, dtype=torch.float32))


def test_elbo_loss_by_hand_with_each_normalisation():
    # B = 2 sequences of L = 2 tokens, vocabulary 3; the model gives the right token probability 0.5 / 0.25
    logits = _logits([[[0.5, 0.25, 0.25], [0.25, 0.5, 0.25]], [[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]]])
    x0 = torch.tensor([[0, 1], [0, 0]])
    masked = torch.tensor([[True, False], [True, True]])
    maskable = torch.tensor([[True, True], [False, True]])
    masked = masked & maskable  # sequence 1's first token is prompt: never masked
    t = torch.tensor([0.5, 0.25])
    ce1, ce2 = -math.log(0.5), -math.log(0.5)  # seq 0 token 0 (p 0.5); seq 1 token 1 (p 0.5)
    s0, s1 = 2.0 * ce1, 4.0 * ce2  # weights 1/t
    kw = {"maskable": maskable, "eps": 0.0}
    assert elbo_loss(logits, x0, masked, t, norm="token", **kw).item() == pytest.approx((s0 + s1) / 3)
    assert elbo_loss(logits, x0, masked, t, norm="sequence", **kw).item() == pytest.approx((s0 / 2 + s1 / 1) / 2)
    assert elbo_loss(logits, x0, masked, t, norm="batch", **kw).item() == pytest.approx((s0 + s1) / 2)
    assert elbo_loss(logits, x0, masked, t, weight="uniform", norm="batch", **kw).item() == pytest.approx(
        (ce1 + ce2) / 2)
    with pytest.raises(ConfigError, match="prompt must never be masked"):
        elbo_loss(logits, x0, torch.ones_like(masked), t, **kw)
    with pytest.raises(ConfigError, match="norm"):
        elbo_loss(logits, x0, masked, t, norm="mean", **kw)


def test_the_loss_bounds_the_exact_nll_of_a_factorised_model():
    """For a model whose prediction at every masked position is a fixed distribution q over the vocabulary
    (independent of the context), the expected linear-schedule ELBO loss over t ~ U(0, 1) equals the exact
    NLL Σ_i −log q(x_i) per token: E_t[(1/t)·E|masked ∩ CE|] = Σ_i CE_i · E_t[(1/t)·t] = Σ_i CE_i."""
    q = torch.tensor([0.6, 0.3, 0.1])
    x0 = torch.tensor([[0, 1, 2, 0, 1, 0]])
    nll = -torch.log(q[x0]).mean().item()
    gen = torch.Generator().manual_seed(0)
    logits = torch.log(q).expand(1, x0.shape[1], 3)
    losses = []
    for _ in range(4000):
        t = sample_times(1, gen, low_discrepancy=False)
        _, masked = forward_mask(x0, t, MASK, gen, eps=0.0)
        losses.append(elbo_loss(logits, x0, masked, t, eps=0.0).item())
    assert sum(losses) / len(losses) == pytest.approx(nll, rel=0.05)
