"""TD3-style actor-critic pieces (paper B, Sec. VI-B, Eq. 48-52 and 54; Fujimoto et al. 2018).

Small pure functions over tensors, each pinned by a test to a value computed by hand. The trainer
(:mod:`twin_service.learn.af_marl`) composes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Td3Params:
    """Paper B Table V (AF-MARL)."""

    gamma: float = 0.99
    tau: float = 0.005
    """Soft update rate of the target networks (Eq. 50, 52)."""
    lr_actor: float = 1e-3
    lr_critic: float = 1e-3
    buffer_size: int = 100_000
    batch_size: int = 64
    noise_std: float = 0.2
    """Exploration noise on rho at the start; multiplied by ``noise_decay`` after every episode."""
    noise_decay: float = 0.99
    target_noise: float = 0.2
    """Target-policy smoothing: std of the noise added to the target actor's rho (TD3; the paper is silent)."""
    target_noise_clip: float = 0.5
    policy_delay: int = 2
    """The actor and the targets move every ``policy_delay`` critic updates (TD3)."""


class Critic(nn.Module):
    """``Q(s, a)``: Table V's two ReLU layers over the state and rho."""

    def __init__(self, state_dim: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(state_dim + 1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, action], dim=-1))


def smoothed_target_action(
    target_action: torch.Tensor, noise: torch.Tensor, noise_clip: float, low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    """Target-policy smoothing: ``clip(mu'(s') + clip(eps, -c, c), low, high)`` with ``eps`` given (TD3)."""
    return (target_action + noise.clamp(-noise_clip, noise_clip)).clamp(low, high)


def td_target(
    reward: torch.Tensor, q1_next: torch.Tensor, q2_next: torch.Tensor, done: torch.Tensor, gamma: float
) -> torch.Tensor:
    """``y = r + gamma (1 - done) min(Q'_1(s', a'), Q'_2(s', a'))`` (Eq. 49; ``done`` cuts the bootstrap when the
    agent left the network)."""
    return reward + gamma * (1.0 - done) * torch.minimum(q1_next, q2_next)


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``E[(Q_i(s, a) - y)^2]`` (Eq. 48, 55); the target carries no gradient."""
    return ((q - target.detach()) ** 2).mean()


def actor_loss(q1_of_actor: torch.Tensor) -> torch.Tensor:
    """``-E[Q_1(s, mu(s))]`` (Eq. 54): its gradient is the deterministic policy gradient of Eq. 51."""
    return -q1_of_actor.mean()


@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``theta' <- tau theta + (1 - tau) theta'`` for every parameter (Eq. 50, 52)."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(1.0 - tau).add_(o, alpha=tau)


def exploration_std(initial: float, decay: float, episode: int) -> float:
    """Exploration noise of an episode: ``initial * decay^episode`` (Table V: 0.2 decaying by 0.99)."""
    return float(initial * decay**episode)


def explore(rho: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """``clip(rho + N(0, std^2), 0, 1)``: Gaussian exploration on the deterministic action."""
    return (rho + std * torch.randn(rho.shape, generator=generator)).clamp(0.0, 1.0)


def parameters_of(*modules: nn.Module) -> Sequence[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]
