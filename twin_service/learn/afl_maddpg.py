"""AFL-MADDPG baseline of paper B (Sec. VII-C): MADDPG with a centralised critic, trained by asynchronous FL.

* MADDPG (Lowe et al. 2017): each vehicle's deterministic actor sees only its own observation; the critic is
  centralised: ``Q(s, o_n, rho_n, rho_-n)`` over the global state s (``OffloadCore.state``: every server's share
  of twins and offloaders, its CPU, the time), the agent's observation and action, and the actions of the
  other vehicles on the same host (their summed rho, the only way they touch its outcome: the CPU share, C.6).
* Asynchronous FL (FedAsync, Xie et al. 2019, the AFL of paper B's [23]): selected vehicles compute a local update
  (one DDPG step, Eq. 41) from the global model they last received; each upload reaches the server after a
  random delay of 0-``max_delay_ticks`` ticks and is mixed in at once, ``w <- (1 - a_t) w + a_t w_n`` with
  ``a_t = alpha (1 + staleness)^-1/2``. No aggregation trigger, no client selection beyond the data a vehicle has.

Served as the plain ``mlp`` actor (rho = sigmoid(actor(o))).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from twin_service.envs.offload import OffloadBatch, OffloadStep
from twin_service.federated.aggregate import async_mix, staleness_weight
from twin_service.learn.checkpoint import Checkpoint
from twin_service.learn.offload_common import (
    EpisodeLog,
    ReplayBuffer,
    behaviour_rho,
    co_hosted_rho,
    own_minibatch,
    select_clients,
    transition,
)
from twin_service.learn.offload_loop import OffloadRunArgs, OffloadTrainer, Served, served_mlp
from twin_service.learn.td3 import Critic, actor_loss, critic_loss, exploration_std, soft_update, td_target
from twin_service.policies.torch_policy import MlpActor


@dataclass
class AflMaddpgArgs(OffloadRunArgs):
    gamma: float = 0.99
    tau: float = 0.005
    lr_actor: float = 1e-3
    lr_critic: float = 1e-3
    buffer_size: int = 100_000
    batch_size: int = 64
    noise_std: float = 0.2
    noise_decay: float = 0.99
    exploration_rate: float = 0.15
    """Share of vehicles taking a uniformly random rho each tick (as AF-MARL, Table V)."""
    clients_per_tick: int = 8
    """Vehicles computing a local update per tick."""
    lr_local: float = 0.01
    alpha: float = 0.6
    """FedAsync mixing weight before the staleness discount."""
    max_delay_ticks: int = 3
    """Uploads arrive 0-this many ticks after they were computed (asynchrony)."""
    min_local_samples: int = 4
    learning_starts: int = 5_000
    hidden: int = 64
    critic_hidden: int = 128


class CentralCritic(nn.Module):
    """``Q(s, o_n, rho_n, sum of the co-hosted vehicles' rho)``."""

    def __init__(self, state_dim: int, obs_dim: int, hidden: int):
        super().__init__()
        self.q = Critic(state_dim + obs_dim + 1, hidden)

    def forward(self, state: torch.Tensor, obs: torch.Tensor, others: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([state, obs, others], dim=-1), act)[..., 0]


class AflMaddpgTrainer(OffloadTrainer[AflMaddpgArgs]):
    algorithm = "AFL-MADDPG"
    plot_title = "AFL-MADDPG"
    curve_columns = ("cost", "success", "critic_loss", "actor_loss")

    def build(self) -> None:
        args, core = self.args, self.core
        obs_dim, self.state_dim = core.feature_dim, core.state_dim
        self.actor = MlpActor(obs_dim, 1, (args.hidden, args.hidden), "tanh")
        with torch.no_grad():
            self.actor.net[-1].bias.fill_(-2.0)  # start near local computing, as AF-MARL's actor
        self.critic = CentralCritic(self.state_dim, obs_dim, args.critic_hidden)
        self.actor_t, self.critic_t = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        # obs columns hold o_n and, after it, the co-hosted rho (one extra column) for the critic
        self.buffer = ReplayBuffer(args.buffer_size, obs_dim + 1, state_dim=self.state_dim)
        self.in_flight: list[tuple[int, int, list[torch.Tensor]]] = []  # (arrival tick, base version, local model)
        self.version, self.tick_n = 0, 0
        self.shapes = [p.shape for m in (self.actor, self.critic) for p in m.parameters()]
        self.modules = {"actor": self.actor, "critic": self.critic, "actor_t": self.actor_t, "critic_t": self.critic_t}

    def state(self) -> dict[str, Any]:
        return {"version": self.version, "tick": self.tick_n}

    def save_state(self, ck: Checkpoint) -> None:
        ck.arrays = self.buffer.state_dict()
        # uploads still on their way (they arrive in the next episode's first ticks): one flat model per row
        in_flight = self.in_flight
        ck.arrays["in_flight_ticks"] = np.array([[u[0], u[1]] for u in in_flight], np.int64).reshape(-1, 2)
        ck.tensors["in_flight_models"] = (
            torch.stack([torch.cat([w.reshape(-1) for w in u[2]]) for u in in_flight])
            if in_flight
            else torch.zeros(0, sum(s.numel() for s in self.shapes))
        )

    def load_state(self, ck: Checkpoint) -> None:
        self.buffer.load_state_dict(ck.arrays)
        self.version, self.tick_n = int(ck.state["version"]), int(ck.state["tick"])
        shapes = self.shapes
        for (arrive, base), flat in zip(
            ck.arrays["in_flight_ticks"].tolist(), ck.tensors["in_flight_models"], strict=True
        ):
            parts = flat.split([s.numel() for s in shapes])
            self.in_flight.append((arrive, base, [w.reshape(s) for w, s in zip(parts, shapes, strict=True)]))

    def local_model(self, idx: np.ndarray) -> tuple[list[torch.Tensor], float, float]:
        """One DDPG step (Eq. 41) on a copy of the global model with the client's minibatch."""
        a_loc, c_loc = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        b = self.buffer.tensors(idx)
        obs, others, nxt, nxt_others = b["obs"][:, :-1], b["obs"][:, -1:], b["next_obs"][:, :-1], b["next_obs"][:, -1:]
        with torch.no_grad():
            a_next = torch.sigmoid(self.actor_t(nxt))
            q_next = self.critic_t(b["next_state"], nxt, nxt_others, a_next)
            y = td_target(b["rew"], q_next, q_next, b["done"], self.args.gamma)
        l_q = critic_loss(c_loc(b["state"], obs, others, b["act"]), y)
        c_loc.zero_grad()
        l_q.backward()
        l_pi = actor_loss(c_loc(b["state"], obs, others, torch.sigmoid(a_loc(obs))))
        a_loc.zero_grad()
        for p in c_loc.parameters():
            p.requires_grad_(False)
        l_pi.backward()
        with torch.no_grad():
            for m in (a_loc, c_loc):
                for p in m.parameters():
                    if p.grad is not None:
                        p -= self.args.lr_local * p.grad
        return [p.detach().clone() for m in (a_loc, c_loc) for p in m.parameters()], l_q.item(), l_pi.item()

    def begin_episode(self, episode: int, batch: OffloadBatch) -> dict[str, float]:
        self.std = exploration_std(self.args.noise_std, self.args.noise_decay, episode)
        self.lq: list[float] = []
        self.lpi: list[float] = []
        self.mixes: list[float] = []
        return {"exploration_std": self.std}

    def tick(self, batch: OffloadBatch) -> OffloadStep:
        args, rng = self.args, self.rng
        with torch.no_grad():
            chosen = torch.sigmoid(self.actor(torch.from_numpy(batch.obs)))[:, 0]
        rho = behaviour_rho(chosen, self.std, args.exploration_rate, self.gen, rng)
        step = self.core.step(rho)
        next_obs, done, rew = transition(batch, step)
        others = co_hosted_rho(batch.host, rho)[:, None]
        # the next tick's co-hosted rho is unknown before the others act: the critic sees the current one
        self.buffer.add(
            np.concatenate([batch.obs, others], 1),
            rho,
            rew,
            np.concatenate([next_obs, others], 1),
            done,
            batch.agent_ids,
            np.broadcast_to(batch.state, (len(batch), self.state_dim)),
            np.broadcast_to(step.next.state, (len(batch), self.state_dim)),
        )
        if self.buffer.size >= args.learning_starts:
            self.learn(batch)
        self.tick_n += 1
        return step

    def learn(self, batch: OffloadBatch) -> None:
        """Selected vehicles upload local models after a random delay; each arrival is mixed in (FedAsync)."""
        args, rng, tick = self.args, self.rng, self.tick_n
        with_data = batch.agent_ids[self.buffer.dataset_sizes(batch.agent_ids) >= args.min_local_samples]
        for a in select_clients(with_data, args.clients_per_tick, rng):
            weights, l1, l2 = self.local_model(own_minibatch(self.buffer, int(a), args.batch_size, rng))
            self.lq.append(l1)
            self.lpi.append(l2)
            self.in_flight.append((tick + int(rng.integers(0, args.max_delay_ticks + 1)), self.version, weights))
        arrived = [u for u in self.in_flight if u[0] <= tick]
        self.in_flight = [u for u in self.in_flight if u[0] > tick]
        params = [p for m in (self.actor, self.critic) for p in m.parameters()]
        for _, base, weights in arrived:
            mix = staleness_weight(args.alpha, self.version - base)
            new = async_mix([p.detach().numpy() for p in params], [w.numpy() for w in weights], mix)
            with torch.no_grad():
                for p, w in zip(params, new, strict=True):
                    p.copy_(torch.from_numpy(np.asarray(w, dtype=np.float32)))
            self.version += 1
            self.mixes.append(mix)
            soft_update(self.actor_t, self.actor, args.tau)
            soft_update(self.critic_t, self.critic, args.tau)

    def end_episode(self, row: dict[str, Any], batch: OffloadBatch, log: EpisodeLog) -> dict[str, Any]:
        row["wall_s"] = self.timer.elapsed_s
        if self.lq:
            row |= {
                "critic_loss": float(np.mean(self.lq)),
                "actor_loss": float(np.mean(self.lpi)),
                "mix_mean": float(np.mean(self.mixes)),
            }
        return row

    def served(self) -> Served:
        notes = "paper B baseline: MADDPG (centralised critic) trained by asynchronous federated learning (FedAsync)"
        return served_mlp(self.actor, self.args.hidden, notes)


def train(args: AflMaddpgArgs) -> Path:
    """Train AFL-MADDPG; returns the model folder (weights, manifest, curves)."""
    return AflMaddpgTrainer(args).run()
