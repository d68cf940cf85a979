"""TD3 pieces of AF-MARL against hand-computed values (paper B, Eq. 48-52, 54)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from twin_service.learn.td3 import (
    Td3Params,
    actor_loss,
    critic_loss,
    exploration_std,
    explore,
    smoothed_target_action,
    soft_update,
    td_target,
)


def test_table_v_defaults() -> None:
    p = Td3Params()
    assert (p.gamma, p.tau, p.lr_actor, p.lr_critic) == (0.99, 0.005, 1e-3, 1e-3)
    assert (p.buffer_size, p.batch_size, p.noise_std, p.noise_decay) == (100_000, 64, 0.2, 0.99)


def test_td_target_eq49_takes_the_smaller_critic() -> None:
    y = td_target(
        torch.tensor([1.0, 0.5]), torch.tensor([10.0, 4.0]), torch.tensor([8.0, 6.0]), torch.tensor([0.0, 1.0]), 0.9
    )
    # 1 + 0.9 * min(10, 8) = 8.2 ; the second agent left: 0.5
    torch.testing.assert_close(y, torch.tensor([8.2, 0.5]))


def test_critic_loss_eq48() -> None:
    q = torch.tensor([1.0, 3.0], requires_grad=True)
    loss = critic_loss(q, torch.tensor([2.0, 1.0]))
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    torch.testing.assert_close(q.grad, torch.tensor([-1.0, 2.0]))  # d/dq mean((q - y)^2) = (q - y)


def test_actor_loss_eq54_is_minus_mean_q() -> None:
    assert actor_loss(torch.tensor([[2.0], [4.0]])).item() == pytest.approx(-3.0)


def test_target_policy_smoothing_clips_noise_and_action() -> None:
    a = smoothed_target_action(torch.tensor([0.5, 0.9, 0.1]), torch.tensor([0.7, 0.3, -0.2]), noise_clip=0.5)
    torch.testing.assert_close(a, torch.tensor([1.0, 1.0, 0.0]))  # 0.5 + 0.5; 0.9 + 0.3 -> 1; 0.1 - 0.2 -> 0
    a = smoothed_target_action(torch.tensor([0.5]), torch.tensor([-0.1]), noise_clip=0.5)
    torch.testing.assert_close(a, torch.tensor([0.4]))


def test_soft_update_eq52() -> None:
    online, target = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        online.weight.fill_(1.0)
        target.weight.fill_(0.0)
    soft_update(target, online, 0.005)
    assert target.weight.item() == pytest.approx(0.005)
    soft_update(target, online, 0.005)
    assert target.weight.item() == pytest.approx(0.005 + 0.995 * 0.005)


def test_exploration_noise_decays_and_stays_in_range() -> None:
    assert exploration_std(0.2, 0.99, 0) == pytest.approx(0.2)
    assert exploration_std(0.2, 0.99, 2) == pytest.approx(0.2 * 0.9801)
    rho = explore(torch.full((1000,), 0.95), 0.2, torch.Generator().manual_seed(0))
    assert rho.min() >= 0.0 and rho.max() <= 1.0 and (rho == 1.0).any()
