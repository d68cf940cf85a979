"""The small pure pieces of the trainers, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from twin_service.learn.gae import ragged_gae
from twin_service.learn.masked import MaskedCategorical
from twin_service.learn.valuenorm import ValueNorm


def test_masked_probabilities_and_entropy_by_hand():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0], [4.0, -1.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True], [False, False, True]])
    d = MaskedCategorical(logits, mask)
    e = math.e
    p0 = [1 / (1 + e), e / (1 + e), 0.0]  # softmax over the first two only
    z1 = 2 + e**5
    p1 = [1 / z1, 1 / z1, e**5 / z1]
    np.testing.assert_allclose(d.probs.numpy(), [p0, p1, [0.0, 0.0, 1.0]], rtol=1e-6, atol=1e-12)
    h0 = -sum(p * math.log(p) for p in p0[:2])
    h1 = -sum(p * math.log(p) for p in p1)
    np.testing.assert_allclose(d.entropy().numpy(), [h0, h1, 0.0], rtol=1e-6, atol=1e-7)  # one choice: 0
    np.testing.assert_allclose(d.log_prob(torch.tensor([1, 2, 2])).numpy(), np.log([p0[1], p1[2], 1.0]), rtol=1e-6)
    assert d.mode().tolist() == [1, 2, 2]  # the masked logit 3.0 of row 0 is never the mode
    samples = torch.stack([d.sample(torch.Generator().manual_seed(s)) for s in range(200)])
    assert mask[torch.arange(3), samples].all()


def test_masked_entries_get_no_gradient():
    logits = torch.tensor([[0.5, 1.5, -0.5]], requires_grad=True)
    d = MaskedCategorical(logits, torch.tensor([[True, False, True]]))
    (d.log_prob(torch.tensor([0])) + d.entropy()).sum().backward()
    assert logits.grad[0, 1] == 0.0 and logits.grad[0, 0] != 0.0


def test_ragged_gae_by_hand():
    # Agent A acts at ticks 0, 1, 2 and is cut (bootstrap 2.0); agent B acts at 0 and 1 and then leaves.
    # Flat order: A0, B0, A1, B1, A2.
    rewards = np.array([1.0, 0.5, 1.0, 2.0, 0.0])
    values = np.array([0.5, 1.0, 0.25, 0.0, 1.0])
    next_index = np.array([2, 3, 4, -1, -1])
    terminated = np.array([False, False, False, True, False])
    bootstrap = np.array([0.0, 0.0, 0.0, 0.0, 2.0])
    tick = np.array([0, 0, 1, 1, 2])
    g, lam = 0.9, 0.8
    adv, ret = ragged_gae(rewards, values, next_index, terminated, bootstrap, tick, g, lam)
    d_a2 = 0.0 + g * 2.0 - 1.0  # cut: bootstrapped, no further advantage
    d_a1 = 1.0 + g * 1.0 - 0.25
    d_a0 = 1.0 + g * 0.25 - 0.5
    d_b1 = 2.0 + 0.0 - 0.0  # left the city: its future is worth nothing
    d_b0 = 0.5 + g * 0.0 - 1.0
    a_a2 = d_a2
    a_a1 = d_a1 + g * lam * a_a2
    a_a0 = d_a0 + g * lam * a_a1
    a_b1 = d_b1
    a_b0 = d_b0 + g * lam * a_b1
    np.testing.assert_allclose(adv, [a_a0, a_b0, a_a1, a_b1, a_a2])
    np.testing.assert_allclose(ret, adv + values)


def test_value_norm_normalises_and_inverts():
    vn = ValueNorm(beta=0.99)
    rng = np.random.default_rng(0)
    for _ in range(400):
        vn.update(torch.from_numpy(rng.normal(50.0, 4.0, 256)))
    mean, var = vn.moments()
    assert float(mean) == pytest.approx(50.0, abs=0.5) and float(var.sqrt()) == pytest.approx(4.0, rel=0.05)
    x = torch.tensor([42.0, 50.0, 58.0], dtype=torch.float64)
    np.testing.assert_allclose(vn.normalize(x).numpy(), ((x - mean) / var.sqrt()).numpy())
    np.testing.assert_allclose(vn.denormalize(vn.normalize(x)).numpy(), x.numpy())
    fresh = ValueNorm()
    fresh.update(torch.tensor([10.0, 12.0]))
    assert float(fresh.moments()[0]) == pytest.approx(11.0)  # debiased from the first batch on
