"""DM-MAPPO (paper A, Alg. 2): masked multi-agent PPO with a centralised critic, trained on recorded days.

Every vehicle present is an agent; all share one actor (parameter sharing), and a centralised critic values
each agent from the environment's global state together with the agent's own features. The recipe is the one
the best-regarded MAPPO implementation (marlbenchmark/on-policy) measured:

* masked logits (infeasible servers, Eq. 23, get a large negative logit) and the entropy over feasible
  servers only (``learn.masked``); the dynamic mask can be switched off for paper A's ablation (Fig. 9);
* GAE (lambda 0.95) over agents that come and go: a vehicle that reaches its destination ends its
  trajectory, one still driving when a rollout is cut is bootstrapped (``learn.gae``);
* value normalisation of the critic's targets (``learn.valuenorm``), advantages normalised over the active
  agents only, the PPO clip, orthogonal initialisation, gradient clipping, few epochs over large batches.

Two actors (``--arch``): ``paper``, an MLP over o_v (Eq. 19) with one logit per server of the training layout,
as paper A; ``per-server``, ours, one shared network over each (vehicle, server) pair
(``policies.per_server``), which serves any layout. All agents act every tick; the transitions of a fixed
share of them (chosen by agent id, so the same ones tick after tick) are learned from, which keeps the batch
large and the update cheap. The reward is Eq. 22 with z-scores over fixed moments, those of the reference
heuristic on the training days (recorded in the manifest). The best actor on the validation day is saved.

    twin-service train dm-mappo --recordings data/recordings/city-s{1..6}.npz \\
        --val-recordings data/recordings/city-s7.npz --out models/dm-mappo-city
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from twin_service.envs import MigrationBatch
from twin_service.envs.parallel import follow_agents
from twin_service.learn.gae import ragged_gae
from twin_service.learn.migration import (
    ActorInput,
    concat_inputs,
    orthogonal_init,
    selected,
    take_inputs,
    validate,
)
from twin_service.learn.migration_run import BestActor, MigrationRunArgs, start
from twin_service.learn.valuenorm import ValueNorm


@dataclass
class Args(MigrationRunArgs):
    """DM-MAPPO's hyperparameters, model folder and budget (the run's data and inputs: MigrationRunArgs); every field
    is recorded in the manifest."""

    out: str = "models/dm-mappo"
    """Model folder (its name is the model's name)."""
    total_ticks: int = 12_288
    """Environment ticks of training (every agent present acts in each)."""
    rollout_ticks: int = 64
    """Ticks per PPO update, over all environments."""
    n_envs: int = 4
    """Environments stepped in turn, each in its own episode: every update sees several days and hours."""
    train_share: float = 0.25
    """Share of the agents (chosen by id) whose transitions are learned from; all act."""
    gamma: float = 0.95
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 5
    minibatches: int = 4
    lr_actor: float = 3e-4
    lr_critic: float = 5e-4
    entropy_coef: float = 0.01
    max_grad_norm: float = 10.0
    hidden: int = 64
    """Width of the paper actor and of the critic; the per-server actor uses half of it."""
    reward: Literal["shaped", "unshaped"] = "shaped"
    val_every: int = 10
    """Updates between validations."""


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


class Critic(nn.Module):
    """V(global state, own features) -> one normalised value per agent."""

    def __init__(self, state_dim: int, own_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(state_dim + own_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, 1),
        )
        orthogonal_init(self.net)
        nn.init.orthogonal_(self.net[-1].weight, 1.0)

    def forward(self, state: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, own], dim=-1)).squeeze(-1)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def train(args: Args, command: str = "", on_update: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train, validate, save the best actor with its manifest and curves; returns the model folder."""
    run = start(args, args.reward, baseline_policies=("sticky-nearest",))
    env, val_env, rng, gen = run.env, run.val_env, run.rng, run.gen
    policy = run.policy()
    critic = Critic(env.state_dim, policy.own_dim, args.hidden)
    actor_opt = torch.optim.Adam(policy.actor.parameters(), lr=args.lr_actor, eps=1e-5)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=args.lr_critic, eps=1e-5)
    value_norm = ValueNorm()

    curves: list[dict[str, float]] = []
    best = BestActor()
    n_updates = max(args.total_ticks // args.rollout_ticks, 1)
    # Several environments, each in its own episode (another day, another hour): an update learns from all of
    # them at once, not from one stretch of one day (which drifts the policy with the time of day).
    envs = [env] + [run.training_env(args.seed + k) for k in range(1, args.n_envs)]
    batches = [e.reset(args.seed + 1000 * k) for k, e in enumerate(envs)]
    per_env = max(args.rollout_ticks // len(envs), 1)
    ticks_done = 0
    if val_env is not None:  # the untrained actor, for the curves and as the bar learning has to clear
        curves.append(
            {"update": 0.0, "ticks": 0.0, "wall_s": run.elapsed_s()}
            | validate(policy, val_env, "argmax", "val_")
            | validate(policy, val_env, "sample", "val_sample_")
        )
    for update in range(1, n_updates + 1):
        # ---- rollout: every agent acts; the selected ones' transitions are kept -------------------
        inputs: list[ActorInput] = []
        actions, logps, values, rewards, terminated, agent_ids, tick_of, states = [], [], [], [], [], [], [], []
        next_index: list[NDArray[np.int64]] = []
        bootstrap_rows: list[tuple[int, NDArray[np.intp], MigrationBatch]] = []
        prev_first = 0
        n_stored = 0
        kpi_sums: dict[str, float] = {"latency_total_s": 0.0, "vehicles": 0.0, "packet_loss_n": 0.0, "var": 0.0}
        segments = [(k, t) for k in range(len(envs)) for t in range(per_env)]
        for g, (k, t) in enumerate(segments):
            env_k = envs[k]
            batch = batches[k]
            if t == 0:
                prev_ids = np.zeros(0, dtype=np.int64)
            acted = policy.act(batch, "sample", gen, rng.permutation(len(batch)))
            sel = np.flatnonzero(selected(batch.agent_ids, args.train_share, args.seed))
            x_sel = acted.inputs(sel)
            state = np.broadcast_to(batch.state, (len(sel), batch.state.shape[0]))
            with torch.no_grad():
                value = value_norm.denormalize(critic(torch.from_numpy(np.ascontiguousarray(state)),
                                                      torch.from_numpy(x_sel.own)))  # fmt: skip
            out = env_k.step(acted.actions)
            inputs.append(x_sel)
            actions.append(acted.actions[sel])
            logps.append(acted.logp[sel])
            values.append(value.numpy())
            rewards.append(out.rewards[sel])
            terminated.append(out.terminated[sel])
            ids = batch.agent_ids[sel]
            agent_ids.append(ids)
            tick_of.append(np.full(len(sel), g))
            states.append(np.ascontiguousarray(state))
            next_index.append(np.full(len(sel), -1, dtype=np.int64))
            # Link last tick's transitions of the same agents to these (same episode only).
            if len(prev_ids) and t > 0:
                rows_now, hit = follow_agents(prev_ids, ids)
                next_index[-2][hit] = n_stored + rows_now[hit]
            prev_first = n_stored
            n_stored += len(sel)
            kpi_sums["latency_total_s"] += out.kpis["latency_total_s"]
            kpi_sums["vehicles"] += out.kpis["vehicles"]
            kpi_sums["packet_loss_n"] += out.kpis["packet_loss"] * out.kpis["vehicles"]
            kpi_sums["var"] += out.kpis["load_variance_mb2"]
            ticks_done += 1
            if out.truncated or t == per_env - 1:
                # Cut: the survivors' futures are the critic's value of their next observation.
                bootstrap_rows.append((prev_first, sel, out.next))
                batches[k] = env_k.reset() if out.truncated else out.next
                prev_ids = np.zeros(0, dtype=np.int64)
            else:
                batches[k] = out.next
                prev_ids = ids

        # ---- advantages ----------------------------------------------------------------------------
        rew = np.concatenate(rewards)
        val = np.concatenate(values).astype(np.float64)
        term = np.concatenate(terminated)
        nxt = np.concatenate(next_index)
        ids_all = np.concatenate(agent_ids)
        boot = np.zeros(n_stored)
        for first, sel, nb in bootstrap_rows:
            # The agents stored at that tick, found again in the next batch.
            alive, x_next = policy.next_inputs(ids_all[first : first + len(sel)], nb)
            if x_next is not None:
                s_next = np.broadcast_to(nb.state, (len(alive), nb.state.shape[0]))
                with torch.no_grad():
                    v_next = value_norm.denormalize(
                        critic(torch.from_numpy(np.ascontiguousarray(s_next)), torch.from_numpy(x_next.own))
                    )
                boot[first + alive] = v_next.numpy()
        adv, ret = ragged_gae(rew, val, nxt, term, boot, np.concatenate(tick_of), args.gamma, args.gae_lambda)
        value_norm.update(torch.from_numpy(ret))
        target = value_norm.normalize(torch.from_numpy(ret)).float()
        adv_t = torch.from_numpy((adv - adv.mean()) / (adv.std() + 1e-8)).float()

        # ---- PPO update ------------------------------------------------------------------------------
        x = concat_inputs(inputs)
        act_t = torch.from_numpy(np.concatenate(actions))
        old_logp = torch.from_numpy(np.concatenate(logps))
        state_t = torch.from_numpy(np.concatenate(states))
        own_t = torch.from_numpy(x.own)
        stats_upd = {"pg_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_frac": 0.0}
        n_mb = 0
        for _ in range(args.epochs):
            perm = rng.permutation(n_stored)
            for idx in np.array_split(perm, args.minibatches):
                mb = take_inputs(x, idx)
                dist = policy.distribution(mb)
                new_logp = dist.log_prob(act_t[idx])
                ratio = (new_logp - old_logp[idx]).exp()
                a = adv_t[idx]
                pg_loss = -torch.min(ratio * a, ratio.clamp(1 - args.clip, 1 + args.clip) * a).mean()
                entropy = dist.entropy().mean()
                actor_opt.zero_grad()
                (pg_loss - args.entropy_coef * entropy).backward()
                nn.utils.clip_grad_norm_(policy.actor.parameters(), args.max_grad_norm)
                actor_opt.step()
                value_loss = ((critic(state_t[idx], own_t[idx]) - target[idx]) ** 2).mean()
                critic_opt.zero_grad()
                value_loss.backward()
                nn.utils.clip_grad_norm_(critic.parameters(), args.max_grad_norm)
                critic_opt.step()
                with torch.no_grad():
                    log_ratio = new_logp - old_logp[idx]
                    stats_upd["approx_kl"] += float(((ratio - 1) - log_ratio).mean())
                    stats_upd["clip_frac"] += float(((ratio - 1).abs() > args.clip).float().mean())
                stats_upd["pg_loss"] += float(pg_loss.detach())
                stats_upd["value_loss"] += float(value_loss.detach())
                stats_upd["entropy"] += float(entropy.detach())
                n_mb += 1
        row = {
            "update": float(update),
            "ticks": float(ticks_done),
            "wall_s": run.elapsed_s(),
            "reward_mean": float(rew.mean()),
            "latency_mean_s": kpi_sums["latency_total_s"] / max(kpi_sums["vehicles"], 1),
            "packet_loss": kpi_sums["packet_loss_n"] / max(kpi_sums["vehicles"], 1),
            "load_variance_mb2": kpi_sums["var"] / len(segments),
            "transitions": float(n_stored),
            **{k: v / max(n_mb, 1) for k, v in stats_upd.items()},
        }
        if val_env is not None and (update % args.val_every == 0 or update == n_updates):
            best.validate(policy, val_env, row)
        curves.append(row)
        if on_update is not None:
            on_update(update, n_updates, row)

    algorithm = "DM-MAPPO" if args.dynamic_mask else "MAPPO (no mask)"
    notes = (
        "Actor with the best validation reward (Eq. 22, z-scores over the reference heuristic's moments); "
        "curves in curves.csv / curves.png. Evaluate on held-out days with twin-service evaluate."
    )
    return run.finish(policy, best, curves, command, algorithm, notes, more_envs=envs[1:], record_chosen_update=True)
