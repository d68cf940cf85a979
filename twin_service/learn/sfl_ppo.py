"""SFL-PPO baseline of paper B (Sec. VII-C): PPO trained by synchronous federated learning.

* PPO (Schulman et al. 2017) with a Gaussian policy on the logit of rho (``rho = sigmoid(u)``, ``u ~ N(mu(o), s^2)``),
  a value function V(o), GAE (lambda 0.95) along each vehicle's own trajectory, clipped ratio 0.2, a few epochs
  over each rollout.
* Synchronous FL (FedSGD): every vehicle with data in the rollout is a client; in every optimisation step the
  server waits for all of them and averages their gradients weighted by |D_n| (Eq. 34). With one local step per
  round that average equals the gradient of the mean loss over all clients' samples, which is how it is computed
  here (one backward pass instead of one per vehicle; ``test_fedsgd_equals_pooled_gradient`` checks the identity).

Served as the plain ``mlp`` actor: at serving time rho = sigmoid(mu(o)), the policy's mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twin_service.envs.offload import OffloadBatch, OffloadStep
from twin_service.learn.checkpoint import Checkpoint, Generator
from twin_service.learn.offload_common import EpisodeLog, next_rows
from twin_service.learn.offload_loop import OffloadRunArgs, OffloadTrainer, Served, served_mlp
from twin_service.policies.torch_policy import MlpActor


@dataclass
class SflPpoArgs(OffloadRunArgs):
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 1e-3
    rollout_ticks: int = 30
    """Ticks per synchronous round (every vehicle's data of the round, then the update)."""
    epochs: int = 4
    minibatches: int = 4
    clip: float = 0.2
    entropy: float = 0.0
    log_std: float = -0.5
    """Initial log standard deviation of the logit (learned)."""
    hidden: int = 64


def fedsgd_gradient(
    per_client_losses: list[torch.Tensor], sizes: list[int], params: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Eq. 34 on gradients: ``sum_n |D_n| grad L_n / sum_n |D_n|`` (each L_n the mean over client n's samples)."""
    total = float(sum(sizes))
    grads = [torch.zeros_like(p) for p in params]
    for loss, n in zip(per_client_losses, sizes, strict=True):
        for g, gi in zip(grads, torch.autograd.grad(loss, params, retain_graph=True), strict=True):
            g += (n / total) * gi
    return grads


class SflPpoTrainer(OffloadTrainer[SflPpoArgs]):
    algorithm = "SFL-PPO"
    plot_title = "SFL-PPO"
    curve_columns = ("cost", "success", "policy_loss", "value_loss")

    def build(self) -> None:
        args, obs_dim = self.args, self.core.feature_dim
        self.actor = MlpActor(obs_dim, 1, (args.hidden, args.hidden), "tanh")
        with torch.no_grad():
            self.actor.net[-1].bias.fill_(-2.0)
        self.critic = MlpActor(obs_dim, 1, (args.hidden, args.hidden), "tanh")
        self.log_std = torch.nn.Parameter(torch.tensor(args.log_std))
        self.opt = torch.optim.Adam([*self.actor.parameters(), *self.critic.parameters(), self.log_std], lr=args.lr)
        self.modules = {"actor": self.actor, "critic": self.critic}
        self.optimizers = {"opt": self.opt}

    def generators(self) -> dict[str, Generator]:
        return {"torch": self.gen, "env": self.core.rng}  # PPO draws nothing from numpy

    def begin_episode(self, episode: int, batch: OffloadBatch) -> dict[str, float]:
        self.pl: list[float] = []
        self.vl: list[float] = []
        self.rounds = 0
        self.ticks: list[tuple] = []  # per tick: obs, u, logp, reward, done, value, rows into the next tick
        return {}

    def tick(self, batch: OffloadBatch) -> OffloadStep:
        """One tick of the round's rollout; the round's update once it holds ``rollout_ticks`` (or the day ends)."""
        actor, log_std = self.actor, self.log_std
        obs = torch.from_numpy(batch.obs)
        with torch.no_grad():
            mu = actor(obs)[:, 0]
            u = mu + log_std.exp() * torch.randn(mu.shape, generator=self.gen)
            logp = torch.distributions.Normal(mu, log_std.exp()).log_prob(u)
            value = self.critic(obs)[:, 0]
        step = self.core.step(torch.sigmoid(u).double().numpy())
        rows, alive = next_rows(batch, step.next)
        self.ticks.append((batch.obs, u, logp, step.rewards.astype(np.float32), ~alive, value, rows))
        if len(self.ticks) == self.args.rollout_ticks or self.core.done:
            self.update(step.next)
            self.ticks = []
            self.rounds += 1
        return step

    def update(self, last: OffloadBatch) -> None:
        """The synchronous round: GAE along each vehicle's trajectory, then PPO's clipped epochs (FedSGD)."""
        args, actor, critic, log_std, ticks = self.args, self.actor, self.critic, self.log_std, self.ticks
        with torch.no_grad():
            last_value = critic(torch.from_numpy(last.obs))[:, 0] if len(last) else torch.zeros(0)
        # GAE along each vehicle's trajectory (rows map an agent to its row at the next tick)
        advs, rets = [None] * len(ticks), [None] * len(ticks)
        next_adv, next_val = torch.zeros(len(last)), last_value
        for t in reversed(range(len(ticks))):
            _, _, _, rew, done, value, rows = ticks[t]
            done_t = torch.from_numpy(done.astype(np.float32))
            nv = next_val[rows] if len(next_val) else torch.zeros(len(rew))
            na = next_adv[rows] if len(next_adv) else torch.zeros(len(rew))
            delta = torch.from_numpy(rew) + args.gamma * (1 - done_t) * nv - value
            adv = delta + args.gamma * args.gae_lambda * (1 - done_t) * na
            advs[t], rets[t] = adv, adv + value
            next_adv, next_val = adv, value
        obs = torch.from_numpy(np.concatenate([t[0] for t in ticks]))
        u = torch.cat([t[1] for t in ticks])
        logp_old = torch.cat([t[2] for t in ticks])
        adv = torch.cat(advs)
        ret = torch.cat(rets)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        n = len(obs)
        perm_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=self.gen)))
        for _ in range(args.epochs):
            perm = torch.randperm(n, generator=perm_gen)
            for idx in perm.chunk(args.minibatches):
                dist = torch.distributions.Normal(actor(obs[idx])[:, 0], log_std.exp())
                ratio = torch.exp(dist.log_prob(u[idx]) - logp_old[idx])
                l_pi = -torch.min(ratio * adv[idx], ratio.clamp(1 - args.clip, 1 + args.clip) * adv[idx]).mean()
                l_v = ((critic(obs[idx])[:, 0] - ret[idx]) ** 2).mean()
                loss = l_pi + 0.5 * l_v - args.entropy * dist.entropy().mean()
                self.opt.zero_grad()
                loss.backward()  # = FedSGD over every vehicle of the round, weighted by |D_n| (module docstring)
                torch.nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters()], 0.5)
                self.opt.step()
                self.pl.append(l_pi.item())
                self.vl.append(l_v.item())

    def end_episode(self, row: dict[str, Any], batch: OffloadBatch, log: EpisodeLog) -> dict[str, Any]:
        row |= {"wall_s": self.timer.elapsed_s, "rounds": self.rounds}
        if self.pl:
            row |= {
                "policy_loss": float(np.mean(self.pl)),
                "value_loss": float(np.mean(self.vl)),
                "log_std": float(self.log_std.detach()),
            }
        return row

    def save_state(self, ck: Checkpoint) -> None:
        ck.tensors["log_std"] = self.log_std.detach().clone()

    def load_state(self, ck: Checkpoint) -> None:
        with torch.no_grad():
            self.log_std.copy_(ck.tensors["log_std"])

    def served(self) -> Served:
        notes = "paper B baseline: PPO trained by synchronous federated learning (FedSGD weighted by |D_n|)"
        return served_mlp(self.actor, self.args.hidden, notes)


def train(args: SflPpoArgs) -> Path:
    """Train SFL-PPO; returns the model folder (weights, manifest, curves)."""
    return SflPpoTrainer(args).run()
