"""MASAC (paper A's learned baseline): discrete soft actor-critic with twin critics, shared by all agents.

The discrete form of SAC (Christodoulou 2019): the critics output a Q-value for every server, so the soft
state value and the actor's loss are expectations over the action probabilities instead of samples:

* target: ``y = r + gamma (1 - done) sum_a pi(a|o') [min_k Q'_k(o', a) - alpha log pi(a|o')]``;
* critics: ``(Q_k(o, a) - y)^2`` for both k, targets updated by Polyak averaging (tau);
* actor: ``sum_a pi(a|o) [alpha log pi(a|o) - min_k Q_k(o, a)]``;
* temperature alpha tuned towards a target entropy of ``entropy_share * log(#feasible servers)``.

Probabilities and values are restricted to the feasible servers (Eq. 23) as in DM-MAPPO; the actors are the
same two architectures (``paper`` o_v MLP and ``per-server``), and each critic has the actor's shape with
one output per server. Transitions of a share of the agents go to a replay buffer; an episode's cut is not a
termination (the next observation is bootstrapped), a vehicle reaching its destination is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from twin_service.learn.masked import MaskedCategorical
from twin_service.learn.migration import (
    ActorInput,
    concat_inputs,
    selected,
    take_inputs,
)
from twin_service.learn.migration_run import BestActor, MigrationRunArgs, start


@dataclass
class Args(MigrationRunArgs):
    """MASAC's hyperparameters, model folder and budget (the run's data and inputs: MigrationRunArgs)."""

    out: str = "models/masac"
    total_ticks: int = 12_000
    train_share: float = 0.1
    """Share of the agents (by id) whose transitions enter the replay buffer."""
    buffer_size: int = 100_000
    batch_size: int = 256
    updates_per_tick: int = 1
    learning_starts: int = 64
    """Ticks collected before the first update."""
    gamma: float = 0.95
    tau: float = 0.005
    lr_actor: float = 3e-4
    lr_critic: float = 3e-4
    lr_alpha: float = 3e-4
    entropy_share: float = 0.3
    """Target entropy as a share of log(#feasible servers)."""
    reward_scale: float = 0.1
    """Rewards are multiplied by this before they enter the replay buffer (SAC is sensitive to their scale)."""
    hidden: int = 64
    val_every: int = 500
    """Ticks between validations."""


class Replay:
    """A ring buffer of transitions (actor inputs kept as they are, pairs included)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.items: list[tuple[ActorInput, int, float, ActorInput, bool]] = []
        self.position = 0

    def add(self, x: ActorInput, action: int, reward: float, x_next: ActorInput, done: bool) -> None:
        item = (x, action, reward, x_next, done)
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            self.items[self.position] = item
        self.position = (self.position + 1) % self.size

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, n: int) -> tuple[ActorInput, torch.Tensor, torch.Tensor, ActorInput, torch.Tensor]:
        idx = self.rng.integers(0, len(self.items), size=n)
        chosen = [self.items[i] for i in idx]
        return (
            concat_inputs([c[0] for c in chosen]),
            torch.tensor([c[1] for c in chosen]),
            torch.tensor([c[2] for c in chosen], dtype=torch.float32),
            concat_inputs([c[3] for c in chosen]),
            torch.tensor([c[4] for c in chosen], dtype=torch.float32),
        )


def _one(x: ActorInput, k: int) -> ActorInput:
    return take_inputs(x, np.array([k]))


def train(args: Args, command: str = "", on_update: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train MASAC, keep the best actor on the validation day, save it with its manifest and curves."""
    run = start(args)
    env, val_env, rng, gen = run.env, run.val_env, run.rng, run.gen
    policy = run.policy()
    critics = [run.policy(), run.policy()]  # twin critics: the actor's shape, one Q-value per server
    targets = [copy.deepcopy(c.actor) for c in critics]
    for c in critics:
        last = [m for m in c.actor.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.orthogonal_(last.weight, 1.0)
    actor_opt = torch.optim.Adam(policy.actor.parameters(), lr=args.lr_actor)
    critic_opt = torch.optim.Adam([p for c in critics for p in c.actor.parameters()], lr=args.lr_critic)
    log_alpha = torch.zeros((), requires_grad=True)
    alpha_opt = torch.optim.Adam([log_alpha], lr=args.lr_alpha)
    replay = Replay(args.buffer_size, rng)

    def q_values(net: nn.Module, x: ActorInput) -> torch.Tensor:
        saved, policy.actor = policy.actor, net
        try:
            return policy.logits(x)
        finally:
            policy.actor = saved

    curves: list[dict[str, float]] = []
    best = BestActor()
    batch = env.reset(args.seed)
    losses = {"q_loss": 0.0, "actor_loss": 0.0, "alpha": 0.0, "entropy": 0.0}
    n_losses, reward_sum, reward_n = 0, 0.0, 0
    for tick in range(1, args.total_ticks + 1):
        acted = policy.act(batch, "sample", gen, rng.permutation(len(batch)))
        action = acted.actions
        out = env.step(action)
        reward_sum += float(out.rewards.sum())
        reward_n += len(out.rewards)
        sel = np.flatnonzero(selected(batch.agent_ids, args.train_share, args.seed))
        nxt = out.next
        _, x_next_all = policy.next_inputs(batch.agent_ids[sel], nxt)
        x_sel = acted.inputs(sel)
        j = 0
        for i, k in enumerate(sel.tolist()):
            x = _one(x_sel, i)
            if out.alive[k]:
                assert x_next_all is not None
                replay.add(x, int(action[k]), args.reward_scale * float(out.rewards[k]), _one(x_next_all, j), False)
                j += 1
            else:  # reached its destination: no future
                replay.add(x, int(action[k]), args.reward_scale * float(out.rewards[k]), x, True)
        batch = env.reset() if out.truncated else nxt

        if tick >= args.learning_starts:
            for _ in range(args.updates_per_tick):
                xb, ab, rb, xnb, db = replay.sample(args.batch_size)
                alpha = log_alpha.exp().detach()
                with torch.no_grad():
                    nd = policy.distribution(xnb)
                    p_next, logp_next = nd.probs, torch.where(nd.mask, nd.log_probs, torch.zeros_like(nd.log_probs))
                    q_next = torch.min(q_values(targets[0], xnb), q_values(targets[1], xnb))
                    q_next = torch.where(nd.mask, q_next, torch.zeros_like(q_next))
                    soft_v = (p_next * (q_next - alpha * logp_next)).sum(-1)
                    y = rb + args.gamma * (1.0 - db) * soft_v
                q_loss = sum(
                    ((q_values(c.actor, xb).gather(-1, ab.unsqueeze(-1)).squeeze(-1) - y) ** 2).mean() for c in critics
                )
                critic_opt.zero_grad()
                q_loss.backward()
                critic_opt.step()
                d = policy.distribution(xb)
                with torch.no_grad():
                    q_min = torch.min(q_values(critics[0].actor, xb), q_values(critics[1].actor, xb))
                    q_min = torch.where(d.mask, q_min, torch.zeros_like(q_min))
                logp = torch.where(d.mask, d.log_probs, torch.zeros_like(d.log_probs))
                probs = d.probs
                actor_loss = (probs * (alpha * logp - q_min)).sum(-1).mean()
                actor_opt.zero_grad()
                actor_loss.backward()
                actor_opt.step()
                entropy = -(probs * logp).sum(-1).detach()
                target_entropy = args.entropy_share * torch.log(d.mask.sum(-1).clamp(min=1).float())
                alpha_loss = (log_alpha * (entropy - target_entropy)).mean()
                alpha_opt.zero_grad()
                alpha_loss.backward()
                alpha_opt.step()
                with torch.no_grad():
                    for c, t in zip(critics, targets, strict=True):
                        for p, tp in zip(c.actor.parameters(), t.parameters(), strict=True):
                            tp.mul_(1 - args.tau).add_(args.tau * p)
                losses["q_loss"] += float(q_loss.detach())
                losses["actor_loss"] += float(actor_loss.detach())
                losses["alpha"] += float(alpha)
                losses["entropy"] += float(entropy.mean())
                n_losses += 1
        if tick % args.val_every == 0 or tick == args.total_ticks:
            row = {
                "update": float(tick),
                "ticks": float(tick),
                "wall_s": run.elapsed_s(),
                "reward_mean": reward_sum / max(reward_n, 1),
                "latency_mean_s": float(out.kpis["latency_mean_s"]),
                "packet_loss": float(out.kpis["packet_loss"]),
                "load_variance_mb2": float(out.kpis["load_variance_mb2"]),
                **{k: v / max(n_losses, 1) for k, v in losses.items()},
            }
            losses = dict.fromkeys(losses, 0.0)
            n_losses, reward_sum, reward_n = 0, 0.0, 0
            if val_env is not None:
                best.validate(policy, val_env, row)
            curves.append(row)
            if on_update is not None:
                on_update(tick, args.total_ticks, row)
    algorithm = "MASAC" if args.dynamic_mask else "MASAC (no mask)"
    notes = "Discrete SAC with twin critics; the actor with the best validation reward."
    return run.finish(policy, best, curves, command, algorithm, notes)


__all__ = ["Args", "MaskedCategorical", "train"]
