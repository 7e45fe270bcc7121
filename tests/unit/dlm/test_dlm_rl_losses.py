"""The RL losses against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.losses import (
    clipped_pg_loss,
    dpo_loss,
    group_advantages,
    importance_weights,
    k3_kl,
    nfe_priced_reward,
)


def test_group_advantages_subtract_the_group_mean_without_std_by_default():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    assert torch.allclose(group_advantages(r, 3), torch.tensor([2 / 3, -1 / 3, -1 / 3, 0.0, 0.0, 0.0]))
    # scaled: group 1 has std sqrt(1/3) (unbiased), group 2 std 0 -> advantages stay 0
    scaled = group_advantages(r, 3, scale=True)
    assert torch.allclose(scaled[:3], torch.tensor([2 / 3, -1 / 3, -1 / 3]) / (math.sqrt(1 / 3) + 1e-4))
    assert torch.equal(scaled[3:], torch.zeros(3))
    with pytest.raises(ConfigError, match="groups of 4"):
        group_advantages(r, 4)


def test_k3_kl_by_hand_and_zero_when_equal():
    # logp 0, ref log 0.5: exp(-0.693) + 0.693 - 1 = 0.5 + 0.6931 - 1
    assert k3_kl(torch.tensor([0.0]), torch.tensor([math.log(0.5)])).item() == pytest.approx(0.5 + math.log(2) - 1)
    x = torch.tensor([-0.3, -2.0])
    assert torch.equal(k3_kl(x, x), torch.zeros(2))


def test_clipped_objective_by_hand():
    logp = torch.tensor([[math.log(1.5), math.log(0.5)]])
    old, mask = torch.zeros(1, 2), torch.ones(1, 2)
    # A = +1: min(1.5, 1.2) = 1.2 and min(0.5, 0.8) = 0.5 -> loss -(1.2 + 0.5)/2
    loss, stats = clipped_pg_loss(logp, old, torch.tensor([1.0]), mask, eps=0.2)
    assert loss.item() == pytest.approx(-0.85) and stats["clip_frac"] == 1.0
    # A = -1: min(-1.5, -1.2) = -1.5 and min(-0.5, -0.8) = -0.8 -> loss (1.5 + 0.8)/2
    loss, _ = clipped_pg_loss(logp, old, torch.tensor([-1.0]), mask, eps=0.2)
    assert loss.item() == pytest.approx(1.15)


def test_gradient_at_ratio_one_is_minus_the_advantage_and_kl_adds_its_penalty():
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = clipped_pg_loss(logp, torch.zeros(1, 2), torch.tensor([2.0]), torch.ones(1, 2))
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([[-1.0, -1.0]]))  # d/dlogp of -(ratio*A)/2 at ratio 1
    ref = torch.full((1, 2), math.log(0.5))
    loss_kl, stats = clipped_pg_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0.0]), torch.ones(1, 2),
                                     beta=0.1, ref_logp=ref)
    assert loss_kl.item() == pytest.approx(0.1 * (0.5 + math.log(2) - 1))
    assert stats["kl"] == pytest.approx(0.5 + math.log(2) - 1)
    with pytest.raises(ConfigError, match="reference"):
        clipped_pg_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2), beta=0.1)


def test_sequence_and_token_aggregation_differ_as_they_should():
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.tensor([1.0, 3.0])  # per-token loss -A at ratio 1: row 1 [-1, -1], row 2 [-3]
    seq, _ = clipped_pg_loss(logp, logp, adv, mask, agg="sequence")
    tok, _ = clipped_pg_loss(logp, logp, adv, mask, agg="token")
    assert seq.item() == pytest.approx((-1 + -3) / 2) and tok.item() == pytest.approx((-1 - 1 - 3) / 3)
    # d1 averages over every completion token of the batch: the default, in the loss and in the RL config
    assert clipped_pg_loss(logp, logp, adv, mask)[0].item() == pytest.approx(tok.item())
    assert DlmRLConfig().agg == "token"
    with pytest.raises(ConfigError, match="aggregation"):
        clipped_pg_loss(logp, logp, adv, mask, agg="batchwise")


def test_importance_weights_are_one_when_surrogate_equals_behaviour_and_capped_otherwise():
    beh = torch.tensor([[-0.2, -1.0, -3.0]])
    mask = torch.ones(1, 3)
    assert torch.equal(importance_weights(beh, beh, mask), torch.ones(1, 3))
    assert torch.equal(importance_weights(beh, beh, mask, level="sequence"), torch.ones(1, 3))
    old = beh + torch.tensor([[math.log(3.0), math.log(0.5), 0.0]])
    w = importance_weights(old, beh, mask, cap=2.0)
    assert torch.allclose(w, torch.tensor([[2.0, 0.5, 1.0]]))  # 3 capped at 2
    seq = importance_weights(old, beh, torch.tensor([[1.0, 1.0, 0.0]]), cap=5.0, level="sequence")
    assert torch.allclose(seq, torch.full((1, 3), 1.5))  # exp(log 3 + log 0.5) over the masked tokens
    # the weight scales the clipped term and carries no gradient
    logp = torch.zeros(1, 3, requires_grad=True)
    loss, stats = clipped_pg_loss(logp, torch.zeros(1, 3), torch.tensor([1.0]), mask, weights=w)
    loss.backward()
    assert torch.allclose(logp.grad, -w / 3) and stats["is_weight_mean"] == pytest.approx(3.5 / 3)


def test_dpo_loss_by_hand():
    one, zero = torch.tensor([1.0], requires_grad=True), torch.tensor([0.0])
    loss, stats = dpo_loss(one, zero, zero, zero, beta=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)))  # -log sigmoid(1)
    loss.backward()
    assert one.grad.item() == pytest.approx(-1 / (1 + math.e))  # -(1 - sigmoid(1))
    assert stats["pref_acc"] == 1.0 and stats["margin"] == 1.0
    # the reference cancels: shifting both by the same ref changes nothing
    same, _ = dpo_loss(torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([0.0]), beta=1.0)
    assert same.item() == pytest.approx(math.log(2))  # margin 0
    with pytest.raises(ConfigError, match="beta"):
        dpo_loss(one, zero, zero, zero, beta=0.0)


def test_nfe_priced_reward():
    r = nfe_priced_reward(torch.tensor([1.0, 0.5]), torch.tensor([16, 4]), nfe_max=16, price=0.2)
    assert torch.allclose(r, torch.tensor([0.8, 0.45]))
