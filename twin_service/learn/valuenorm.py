"""Running normalisation of value targets, as MAPPO's ValueNorm (marlbenchmark/on-policy).

The critic learns normalised returns; its outputs are denormalised for GAE. Exponentially weighted moments
with a debiasing term, so the first batches are not dragged towards the initial zero.
"""

from __future__ import annotations

import torch


class ValueNorm:
    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5) -> None:
        self.beta = beta
        self.epsilon = epsilon
        self.mean = torch.zeros((), dtype=torch.float64)
        self.mean_sq = torch.zeros((), dtype=torch.float64)
        self.debias = torch.zeros((), dtype=torch.float64)

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        debias = self.debias.clamp(min=self.epsilon)
        mean = self.mean / debias
        var = (self.mean_sq / debias - mean**2).clamp(min=1e-2)
        return mean, var

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double().reshape(-1)
        if x.numel() == 0:
            return
        w = self.beta
        self.mean.mul_(w).add_(x.mean() * (1 - w))
        self.mean_sq.mul_(w).add_((x**2).mean() * (1 - w))
        self.debias.mul_(w).add_(1 - w)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.moments()
        return ((x.double() - mean) / var.sqrt()).to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.moments()
        return (x.double() * var.sqrt() + mean).to(x.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "mean_sq": self.mean_sq, "debias": self.debias}
