"""DDQN baseline of paper B (Sec. VII-C): one Q-network, no federation, rho discretised (van Hasselt et al. 2016).

A single agent's network decides every vehicle's fraction from its observation (parameter sharing, no
coordination, no federated learning). Double Q-learning target: ``y = r + gamma Q'(s', argmax_a Q(s', a))``;
epsilon-greedy exploration decaying per episode; served as architecture kind ``q-bins``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twin_service.envs.offload import OffloadBatch, OffloadStep
from twin_service.learn.checkpoint import Checkpoint
from twin_service.learn.offload_common import EpisodeLog, ReplayBuffer, transition
from twin_service.learn.offload_loop import OffloadRunArgs, OffloadTrainer, Served
from twin_service.learn.td3 import soft_update
from twin_service.policies.q_offload import KIND, rho_bins
from twin_service.policies.torch_policy import MlpActor


@dataclass
class DdqnArgs(OffloadRunArgs):
    """DDQN's run (Table V's shared values: gamma, tau, lr, buffer, batch)."""

    bins: int = 11
    """Discrete fractions 0, 0.1, ..., 1."""
    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 1e-3
    buffer_size: int = 100_000
    batch_size: int = 64
    updates_per_tick: int = 8
    """Gradient steps per tick (so that every trainer sees about as many samples per tick)."""
    epsilon: float = 0.2
    """Exploration rate at the start, decaying by ``epsilon_decay`` per episode."""
    epsilon_decay: float = 0.95
    learning_starts: int = 5_000
    hidden: int = 64


class DdqnTrainer(OffloadTrainer[DdqnArgs]):
    algorithm = "DDQN"
    plot_title = "DDQN training"
    curve_columns = ("cost", "success", "q_loss")

    def build(self) -> None:
        args = self.args
        self.bins = rho_bins(args.bins)
        self.q = MlpActor(self.core.feature_dim, args.bins, (args.hidden, args.hidden), "tanh")
        self.q_target = copy.deepcopy(self.q)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=args.lr)
        self.buffer = ReplayBuffer(args.buffer_size, self.core.feature_dim)
        self.modules = {"q": self.q, "q_target": self.q_target}
        self.optimizers = {"opt": self.opt}

    def begin_episode(self, episode: int, batch: OffloadBatch) -> dict[str, float]:
        self.losses: list[float] = []
        self.eps = self.args.epsilon * self.args.epsilon_decay**episode
        return {"epsilon": self.eps}

    def tick(self, batch: OffloadBatch) -> OffloadStep:
        args, rng, buffer = self.args, self.rng, self.buffer
        with torch.no_grad():
            greedy = self.q(torch.from_numpy(batch.obs)).argmax(dim=-1).numpy()
        explore = rng.random(len(batch)) < self.eps
        action = np.where(explore, rng.integers(0, args.bins, len(batch)), greedy)
        step = self.core.step(self.bins[action])
        next_obs, done, rew = transition(batch, step)
        buffer.add(batch.obs, action.astype(np.float32), rew, next_obs, done, batch.agent_ids)
        if buffer.size >= args.learning_starts:
            for _ in range(args.updates_per_tick):
                self.update(buffer.tensors(buffer.sample(rng, args.batch_size)))
        return step

    def update(self, b: dict[str, torch.Tensor]) -> None:
        """One double-Q step: the online network picks a', the target network values it (van Hasselt et al.)."""
        q, q_target = self.q, self.q_target
        with torch.no_grad():
            a_next = q(b["next_obs"]).argmax(dim=-1, keepdim=True)
            y = b["rew"] + self.args.gamma * (1 - b["done"]) * q_target(b["next_obs"]).gather(1, a_next)[:, 0]
        q_sa = q(b["obs"]).gather(1, b["act"].long())[:, 0]
        loss = torch.nn.functional.smooth_l1_loss(q_sa, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        soft_update(q_target, q, self.args.tau)
        self.losses.append(loss.item())

    def end_episode(self, row: dict[str, Any], batch: OffloadBatch, log: EpisodeLog) -> dict[str, Any]:
        row["wall_s"] = self.timer.elapsed_s
        if self.losses:
            row["q_loss"] = float(np.mean(self.losses))
        return row

    def save_state(self, ck: Checkpoint) -> None:
        ck.arrays = self.buffer.state_dict()

    def load_state(self, ck: Checkpoint) -> None:
        self.buffer.load_state_dict(ck.arrays)

    def served(self) -> Served:
        bins_t = torch.from_numpy(self.bins).float()

        def act(obs: torch.Tensor) -> torch.Tensor:
            return bins_t[self.q(obs).argmax(dim=-1)]

        return Served(
            self.q.state_dict(),
            act,
            KIND,
            "paper B baseline: single-agent double DQN over discretised rho, no federation",
            {"bins": self.args.bins},
            (self.args.hidden, self.args.hidden),
        )


def train(args: DdqnArgs) -> Path:
    """Train DDQN; returns the model folder (weights, manifest, curves)."""
    return DdqnTrainer(args).run()
