"""wd1's weighted-likelihood loss against hand-computed values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.wd1 import wd1_loss, wd1_weights


def test_weights_are_softmaxes_within_each_group():
    adv = torch.tensor([1.0, -1.0, 0.0, 0.0])
    w_pos, w_neg = wd1_weights(adv, 2)
    e = math.e
    assert w_pos.tolist() == pytest.approx([e / (e + 1 / e), (1 / e) / (e + 1 / e), 0.5, 0.5])
    assert w_neg.tolist() == pytest.approx([(1 / e) / (e + 1 / e), e / (e + 1 / e), 0.5, 0.5])
    with pytest.raises(ConfigError, match="groups of 3"):
        wd1_weights(adv, 3)


def test_loss_and_gradient_by_hand():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.5], [-3.0, -1.0], [-2.0, -2.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    adv = torch.tensor([0.5, -0.5, 0.0, 0.0])
    loss, stats = wd1_loss(logp, adv, mask, 2)
    s = [-3.0, -0.5, -4.0, -4.0]  # masked sums
    a = 1 / (1 + math.exp(-1.0))  # softmax(0.5, -0.5)[0]
    expected = ((1 - a) - a) * s[0] + (a - (1 - a)) * s[1]  # group 2: equal advantages, no contribution
    assert loss.item() == pytest.approx(expected / 2)
    loss.backward()
    g = logp.grad
    assert g[0].tolist() == pytest.approx([((1 - a) - a) / 2] * 2)  # the better answer's tokens go up (grad < 0)
    assert g[1].tolist() == pytest.approx([(a - (1 - a)) / 2, 0.0])  # the masked token gets no gradient
    assert g[2:].abs().max().item() == 0.0
    assert stats["w_pos_max"] == pytest.approx((a + 0.5) / 2)


def test_equal_advantages_give_a_zero_loss_and_no_gradient():
    logp = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss, _ = wd1_loss(logp, torch.zeros(4), torch.ones(4, 3), 4)
    loss.backward()
    assert loss.item() == 0.0 and logp.grad.abs().max().item() == 0.0
