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

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from twin_service.envs import EnvOptions, MigrationBatch, MigrationCore, RewardStats
from twin_service.envs.parallel import follow_agents
from twin_service.envs.sim import scenario_of
from twin_service.learn.gae import ragged_gae
from twin_service.learn.masked import MaskedCategorical
from twin_service.learn.valuenorm import ValueNorm
from twin_service.observe import PER_SERVER_FEATURES, LatencyModel, per_server_features
from twin_service.policies import migration_policy
from twin_service.policies.decide import decide_migration
from twin_service.policies.manifest import PER_SERVER, Architecture, ModelManifest, migration_spec, per_server_spec
from twin_service.policies.per_server import DEFAULT_CANDIDATES, PerServerActor, candidate_mask, feasible_pairs
from twin_service.policies.registry import save_model
from twin_service.policies.torch_policy import MlpActor


@dataclass
class Args:
    """Hyperparameters and data of a DM-MAPPO run (every field is recorded in the manifest)."""

    recordings: tuple[str, ...] = ()
    """Training days (recordings); the project's convention is days 1-6."""
    val_recordings: tuple[str, ...] = ()
    """Validation day(s): the actor with the best validation reward is kept (day 7)."""
    out: str = "models/dm-mappo"
    """Model folder (its name is the model's name)."""
    scenario: str | None = None
    """Scenario folder or name (default: the one the recordings were made on)."""
    arch: Literal["paper", "per-server"] = "per-server"
    """Actor: paper A's MLP over o_v, or ours, one network scoring each (vehicle, server) pair."""
    seed: int = 1
    total_ticks: int = 12_288
    """Environment ticks of training (every agent present acts in each)."""
    rollout_ticks: int = 64
    """Ticks per PPO update, over all environments."""
    n_envs: int = 4
    """Environments stepped in turn, each in its own episode: every update sees several days and hours."""
    episode_s: float = 600.0
    """Episode length: a window of a training day."""
    warmup_s: float = 60.0
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
    candidates: int = DEFAULT_CANDIDATES
    """Per-server actor: the nearest feasible ground or air servers it weighs (plus host and satellite)."""
    dynamic_mask: bool = True
    """False trains and serves without the dynamic mask (paper A Fig. 9)."""
    predictor: str | None = None
    """Workload predictor in the observation and mask (None: the current load, persistence)."""
    reward: Literal["shaped", "unshaped"] = "shaped"
    reference_policy: str = "least-loaded"
    """Heuristic whose reward moments z-score the reward (and which plays the warm-ups)."""
    reference_ticks: int = 600
    val_every: int = 10
    """Updates between validations."""
    val_ticks: int = 300
    val_start_s: float = 1500.0
    """Validation window start (sim s): the city's busy half hour."""
    threads: int = 1
    """torch threads: one; the environment and the update alternate, and spare threads spin under load."""
    models_dir: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Scenario parameter overrides (the paper's sweeps: migration size, data rate...)."""
    no_uavs: bool = False
    no_satellite: bool = False


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


def orthogonal_init(module: nn.Module, gain: float = math.sqrt(2)) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain)
            nn.init.zeros_(layer.bias)


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


@dataclass
class ActorInput:
    """What the actor sees for a set of agents: paper o_v rows, or per-server pair features."""

    obs: NDArray[np.float32] | None = None
    pair_features: NDArray[np.float32] | None = None
    pair_rows: NDArray[np.int64] | None = None
    pair_cols: NDArray[np.int64] | None = None
    mask: NDArray[np.bool_] | None = None
    own: NDArray[np.float32] | None = None
    """The critic's per-agent features."""


class Policy:
    """The actor (either architecture) with one calling convention for acting and for the update."""

    def __init__(
        self,
        arch: str,
        n_servers: int,
        feature_dim: int,
        hidden: int,
        latency: LatencyModel,
        candidates: int = DEFAULT_CANDIDATES,
    ):
        self.arch = arch
        self.candidates = candidates
        self.n_servers = n_servers
        self.latency = latency
        if arch == "paper":
            self.actor: nn.Module = MlpActor(feature_dim, n_servers, (hidden, hidden), "tanh")
            self.own_dim = feature_dim
        else:
            width = max(hidden // 2, 8)
            self.actor = PerServerActor(len(PER_SERVER_FEATURES), (width, width), "tanh")
            self.own_dim = 2 * len(PER_SERVER_FEATURES)
        orthogonal_init(self.actor)
        last = [m for m in self.actor.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.orthogonal_(last.weight, 0.01)  # near-uniform over the feasible servers at first

    def inputs(self, batch: MigrationBatch, rows: NDArray[np.intp]) -> ActorInput:
        """The actor's and critic's inputs for the agents ``rows`` of ``batch``."""
        mask = batch.mask[rows]
        if self.arch == "paper":
            obs = batch.obs[rows]
            return ActorInput(obs=obs, mask=mask, own=obs)
        obs = batch.observation
        mask = candidate_mask(obs, batch.host, self.candidates)[rows]
        sub_rows, cols = feasible_pairs(mask)
        pair_rows = rows[sub_rows]
        feats = per_server_features(obs, batch.host, self.latency, (pair_rows, cols))
        # The critic's own features: the pair at the current host (zeros if none is feasible) and the mean pair.
        own = np.zeros((len(rows), 2 * feats.shape[1]), dtype=np.float32)
        counts = np.maximum(np.bincount(sub_rows, minlength=len(rows)), 1)
        np.add.at(own[:, feats.shape[1] :], sub_rows, feats)
        own[:, feats.shape[1] :] /= counts[:, None]
        at_host = feats[:, PER_SERVER_FEATURES.index("is_current_host")] > 0.5
        own[sub_rows[at_host], : feats.shape[1]] = feats[at_host]
        return ActorInput(
            pair_features=feats, pair_rows=sub_rows.astype(np.int64), pair_cols=cols.astype(np.int64), mask=mask,
            own=own,
        )  # fmt: skip

    def logits(self, x: ActorInput) -> torch.Tensor:
        if self.arch == "paper":
            return self.actor(torch.from_numpy(x.obs))
        assert x.pair_features is not None and x.mask is not None
        return self.actor(
            torch.from_numpy(x.pair_features),
            torch.from_numpy(x.pair_rows),
            torch.from_numpy(x.pair_cols),
            x.mask.shape,
        )

    def distribution(self, x: ActorInput) -> MaskedCategorical:
        return MaskedCategorical(self.logits(x), torch.from_numpy(x.mask))


def _concat(parts: Sequence[ActorInput]) -> ActorInput:
    """Stack the inputs of several ticks (pair rows shifted to the stacked agent rows)."""
    if parts[0].obs is not None:
        return ActorInput(
            obs=np.concatenate([p.obs for p in parts]),
            mask=np.concatenate([p.mask for p in parts]),
            own=np.concatenate([p.own for p in parts]),
        )
    offsets = np.cumsum([0] + [len(p.mask) for p in parts[:-1]])
    return ActorInput(
        pair_features=np.concatenate([p.pair_features for p in parts]),
        pair_rows=np.concatenate([p.pair_rows + o for p, o in zip(parts, offsets, strict=True)]),
        pair_cols=np.concatenate([p.pair_cols for p in parts]),
        mask=np.concatenate([p.mask for p in parts]),
        own=np.concatenate([p.own for p in parts]),
    )


def _take(x: ActorInput, idx: NDArray[np.intp]) -> ActorInput:
    """The inputs of transitions ``idx`` (a minibatch)."""
    if x.obs is not None:
        return ActorInput(obs=x.obs[idx], mask=x.mask[idx], own=x.own[idx])
    where = np.full(len(x.mask), -1, dtype=np.int64)
    where[idx] = np.arange(len(idx))
    keep = np.flatnonzero(where[x.pair_rows] >= 0)
    new_rows = where[x.pair_rows[keep]]
    order = keep[np.argsort(new_rows, kind="stable")]  # the actor wants each agent's pairs together, in row order
    return ActorInput(
        pair_features=x.pair_features[order],
        pair_rows=where[x.pair_rows[order]],
        pair_cols=x.pair_cols[order],
        mask=x.mask[idx],
        own=x.own[idx],
    )


# --------------------------------------------------------------------------------------------
# Reward moments and validation
# --------------------------------------------------------------------------------------------


def reference_moments(core: MigrationCore, policy_name: str, ticks: int, seed: int) -> RewardStats:
    """Mean and std of latency, chosen-server load and load variance under a heuristic, on training days."""
    p = core.params
    policy = migration_policy(policy_name, task=p.task, channel=p.channel, satellite=p.satellite, seed=seed)
    lat: list[NDArray[np.float64]] = []
    load: list[NDArray[np.float64]] = []
    var: list[float] = []
    batch = core.reset(seed)
    for _ in range(ticks):
        action = decide_migration(policy, batch.observation, batch.observation.servers, batch.host).target
        out = core.step(action)
        ctx = core._ctx
        assert ctx is not None and ctx.migration is not None and ctx.load_bits is not None
        lat.append(ctx.migration.latency_s)
        load.append(ctx.migration.host_load_bits)
        var.append(float(np.var(ctx.load_bits)))
        batch = core.reset() if out.truncated else out.next
    lat_all, load_all = np.concatenate(lat), np.concatenate(load)
    return RewardStats(
        float(lat_all.mean()),
        float(lat_all.std()) or 1.0,
        float(load_all.mean()),
        float(load_all.std()) or 1.0,
        float(np.mean(var)),
        float(np.std(var)) or 1.0,
    )


def validate(
    policy: Policy | Callable[[MigrationBatch], NDArray[np.int64]],
    core: MigrationCore,
    execution: Literal["argmax", "sample"] = "argmax",
    prefix: str = "val_",
) -> dict[str, float]:
    """A policy over the validation window: mean reward and KPIs.

    ``policy`` is the actor, executed by argmax (paper A Eq. 20) or by sampling its distribution (a fixed
    seed), or a function of the batch (a heuristic)."""
    batch = core.reset(0)
    gen = torch.Generator().manual_seed(0)
    rewards, latency, failed, variance, migrations, vehicles = [], [], [], [], 0.0, 0
    with torch.no_grad():
        while True:
            if isinstance(policy, Policy):
                dist = policy.distribution(policy.inputs(batch, np.arange(len(batch))))
                action = (dist.mode() if execution == "argmax" else dist.sample(gen)).numpy()
            else:
                action = policy(batch)
            out = core.step(action)
            rewards.append(out.rewards[out.alive])
            latency.append(out.latency_s[out.alive])
            failed.append(out.failed[out.alive])
            variance.append(out.kpis["load_variance_mb2"])
            migrations += out.kpis["migrations"]
            vehicles += int(out.kpis["vehicles"])
            if out.truncated:
                break
            batch = out.next
    return {
        f"{prefix}reward": float(np.concatenate(rewards).mean()),
        f"{prefix}latency_mean_s": float(np.concatenate(latency).mean()),
        f"{prefix}packet_loss": float(np.concatenate(failed).mean()),
        f"{prefix}load_variance_mb2": float(np.mean(variance)),
        f"{prefix}migrations_per_vehicle_tick": migrations / max(vehicles, 1),
    }


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _selected(agent_ids: NDArray[np.int64], share: float, seed: int) -> NDArray[np.bool_]:
    """A fixed share of the agents, by a hash of their id: the same agents tick after tick."""
    h = (agent_ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)) >> np.uint64(40)
    return (h % np.uint64(10_000)).astype(np.int64) < int(share * 10_000)


def train(args: Args, command: str = "", on_update: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train, validate, save the best actor with its manifest and curves; returns the model folder."""
    started = time.monotonic()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    scenario = scenario_of(args.recordings, args.scenario)
    variant = dict(
        dynamic_mask=args.dynamic_mask, predictor=args.predictor, models_dir=Path(args.models_dir) if args.models_dir
        else None, overrides=args.overrides, no_uavs=args.no_uavs, no_satellite=args.no_satellite,
    )  # fmt: skip
    options = EnvOptions(
        episode_s=args.episode_s, warmup_s=args.warmup_s, migration_policy=args.reference_policy, **variant
    )
    ref_core = MigrationCore(scenario, args.recordings, options, seed=args.seed + 1)
    stats = reference_moments(ref_core, args.reference_policy, args.reference_ticks, args.seed + 1)
    ref_core.close()
    env = MigrationCore(scenario, args.recordings, options, reward=args.reward, reward_stats=stats, seed=args.seed)
    val_env = None
    if args.val_recordings:
        val_options = EnvOptions(
            episode_s=float(args.val_ticks), warmup_s=args.warmup_s, starts_s=(args.val_start_s,),
            migration_policy=args.reference_policy, **variant,
        )  # fmt: skip
        val_env = MigrationCore(
            scenario, args.val_recordings, val_options, reward=args.reward, reward_stats=stats, seed=args.seed
        )
    baselines: dict[str, dict[str, float]] = {}
    if val_env is not None:
        p = env.params
        for name in dict.fromkeys((args.reference_policy, "sticky-nearest")):
            heuristic = migration_policy(name, task=p.task, channel=p.channel, satellite=p.satellite)
            baselines[name] = validate(
                lambda b, h=heuristic: decide_migration(h, b.observation, b.observation.servers, b.host).target,
                val_env,
            )
    p = env.params
    policy = Policy(
        args.arch,
        env.n_servers,
        env.feature_dim,
        args.hidden,
        LatencyModel(p.task, p.channel, p.satellite),
        args.candidates,
    )
    critic = Critic(env.state_dim, policy.own_dim, args.hidden)
    actor_opt = torch.optim.Adam(policy.actor.parameters(), lr=args.lr_actor, eps=1e-5)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=args.lr_critic, eps=1e-5)
    value_norm = ValueNorm()

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor], dict[str, float]] | None = None
    n_updates = max(args.total_ticks // args.rollout_ticks, 1)
    # Several environments, each in its own episode (another day, another hour): an update learns from all of
    # them at once, not from one stretch of one day (which drifts the policy with the time of day).
    envs = [env] + [
        MigrationCore(scenario, args.recordings, options, reward=args.reward, reward_stats=stats, seed=args.seed + k)
        for k in range(1, args.n_envs)
    ]
    batches = [e.reset(args.seed + 1000 * k) for k, e in enumerate(envs)]
    per_env = max(args.rollout_ticks // len(envs), 1)
    ticks_done = 0
    if val_env is not None:  # the untrained actor, for the curves and as the bar learning has to clear
        curves.append(
            {"update": 0.0, "ticks": 0.0, "wall_s": time.monotonic() - started}
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
            everyone = np.arange(len(batch))
            with torch.no_grad():
                x_all = policy.inputs(batch, everyone)
                dist = policy.distribution(x_all)
                action = dist.sample(gen)
                logp = dist.log_prob(action)
            sel = np.flatnonzero(_selected(batch.agent_ids, args.train_share, args.seed))
            x_sel = _take(x_all, sel)
            state = np.broadcast_to(batch.state, (len(sel), batch.state.shape[0]))
            with torch.no_grad():
                value = value_norm.denormalize(critic(torch.from_numpy(np.ascontiguousarray(state)),
                                                      torch.from_numpy(x_sel.own)))  # fmt: skip
            out = env_k.step(action.numpy())
            inputs.append(x_sel)
            actions.append(action.numpy()[sel])
            logps.append(logp.numpy()[sel])
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
            rows_in_next = {a: k for k, a in enumerate(nb.agent_ids.tolist())}
            stored_ids = ids_all[first : first + len(sel)]
            alive = [k for k, a in enumerate(stored_ids.tolist()) if a in rows_in_next]
            if alive:
                rows = np.array([rows_in_next[stored_ids[k]] for k in alive])
                x_next = policy.inputs(nb, rows)
                s_next = np.broadcast_to(nb.state, (len(rows), nb.state.shape[0]))
                with torch.no_grad():
                    v_next = value_norm.denormalize(
                        critic(torch.from_numpy(np.ascontiguousarray(s_next)), torch.from_numpy(x_next.own))
                    )
                boot[first + np.array(alive)] = v_next.numpy()
        adv, ret = ragged_gae(rew, val, nxt, term, boot, np.concatenate(tick_of), args.gamma, args.gae_lambda)
        value_norm.update(torch.from_numpy(ret))
        target = value_norm.normalize(torch.from_numpy(ret)).float()
        adv_t = torch.from_numpy((adv - adv.mean()) / (adv.std() + 1e-8)).float()

        # ---- PPO update ------------------------------------------------------------------------------
        x = _concat(inputs)
        act_t = torch.from_numpy(np.concatenate(actions))
        old_logp = torch.from_numpy(np.concatenate(logps))
        state_t = torch.from_numpy(np.concatenate(states))
        own_t = torch.from_numpy(x.own)
        stats_upd = {"pg_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_frac": 0.0}
        n_mb = 0
        for _ in range(args.epochs):
            perm = rng.permutation(n_stored)
            for idx in np.array_split(perm, args.minibatches):
                mb = _take(x, idx)
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
            "wall_s": time.monotonic() - started,
            "reward_mean": float(rew.mean()),
            "latency_mean_s": kpi_sums["latency_total_s"] / max(kpi_sums["vehicles"], 1),
            "packet_loss": kpi_sums["packet_loss_n"] / max(kpi_sums["vehicles"], 1),
            "load_variance_mb2": kpi_sums["var"] / len(segments),
            "transitions": float(n_stored),
            **{k: v / max(n_mb, 1) for k, v in stats_upd.items()},
        }
        if val_env is not None and (update % args.val_every == 0 or update == n_updates):
            # Both ways of executing the shared policy: argmax (paper A Eq. 20) sends every vehicle that sees
            # the same best server there at once; sampling keeps the mixed strategy PPO learned.
            row |= validate(policy, val_env, "argmax", "val_")
            row |= validate(policy, val_env, "sample", "val_sample_")
            for execution, prefix in (("argmax", "val_"), ("sample", "val_sample_")):
                score = row[f"{prefix}reward"]
                if best is None or score > best[0]:
                    chosen = {
                        k: row[f"{prefix}{k[4:]}"]
                        for k in row
                        if k.startswith("val_") and not k.startswith("val_sample_")
                    }
                    best = (score, {k: v.clone() for k, v in policy.actor.state_dict().items()},
                            {**row, **chosen, "execution_sample": float(execution == "sample")})  # fmt: skip
        curves.append(row)
        if on_update is not None:
            on_update(update, n_updates, row)

    final = {k: v.clone() for k, v in policy.actor.state_dict().items()}
    chosen, chosen_row = (best[1], best[2]) if best is not None else (final, curves[-1])
    for e in envs:
        e.close()
    if val_env is not None:
        val_env.close()
    _write_curves(out_dir, curves, baselines)
    elapsed = time.monotonic() - started
    return _save(args, scenario, env, policy, chosen, chosen_row, stats, command, elapsed, out_dir, baselines)


def _save(args, scenario, env, policy, state_dict, row, stats, command, elapsed, out_dir, baselines) -> Path:  # noqa: ANN001
    params = env.params
    execution = "sample" if row.get("execution_sample") else "argmax"
    if args.arch == "paper":
        obs_spec, act_spec = migration_spec(env.n_servers, params.simulation.history_window)
        arch = Architecture(
            kind="mlp", hidden=(args.hidden, args.hidden), activation="tanh", options={"execution": execution}
        )
    else:
        obs_spec, act_spec = per_server_spec(env.n_servers, params.simulation.history_window)
        width = max(args.hidden // 2, 8)
        arch = Architecture(
            kind=PER_SERVER,
            hidden=(width, width),
            activation="tanh",
            options={"candidates": args.candidates, "execution": execution},
        )
    evaluation = {k: float(v) for k, v in row.items() if k.startswith("val_") and not k.startswith("val_sample_")}
    manifest = ModelManifest(
        name=out_dir.name,
        kind="migration",
        algorithm="DM-MAPPO" if args.dynamic_mask else "MAPPO (no mask)",
        version="1",
        observation=obs_spec,
        action=act_spec,
        architecture=arch,
        scenario=params.scenario.name,
        scenario_param_hash=scenario.params.param_hash,
        training_command=command,
        seed=args.seed,
        evaluation=evaluation,
        training={
            "args": asdict(args),
            "recordings": [_describe(r) for r in args.recordings],
            "val_recordings": [_describe(r) for r in args.val_recordings],
            "reward_stats": stats.as_dict(),
            "validation_baselines": baselines,
            "chosen_update": int(row["update"]),
            "train_seconds": round(elapsed, 1),
            "predictor": args.predictor or "persistence",
        },
        notes=(
            "Actor with the best validation reward (Eq. 22, z-scores over the reference heuristic's moments); "
            "curves in curves.csv / curves.png. Evaluate on held-out days with twin-service evaluate."
        ),
    )
    save_model(out_dir, manifest, state_dict)
    return out_dir


def _describe(path: str) -> dict[str, Any]:
    from twin_service.engine.recording import Recording

    with Recording(path) as rec:
        m = rec.meta
        return {"file": Path(path).name, "scenario": m.scenario, "seed": m.seed, "scale": m.scale, "ticks": m.ticks}


def _write_curves(out_dir: Path, curves: list[dict[str, float]], baselines: dict[str, dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in curves for k in row))
    with (out_dir / "curves.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(curves)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("reward_mean", "val_reward", "val_sample_reward"),
        ("latency_mean_s", "val_latency_mean_s", "val_sample_latency_mean_s"),
        ("packet_loss", "val_packet_loss", "val_sample_packet_loss"),
        ("load_variance_mb2", "val_load_variance_mb2", "val_sample_load_variance_mb2"),
        ("pg_loss",),
        ("value_loss",),
        ("entropy",),
        ("approx_kl", "clip_frac"),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(16, 6.5))
    for ax, keys_ in zip(axes.flat, panels, strict=True):
        for k in keys_:
            pts = [(r["ticks"], r[k]) for r in curves if k in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o" if k.startswith("val_") else None, ms=3, label=k)
            for i, (name, figures) in enumerate(baselines.items()):
                if k in figures:
                    ax.axhline(figures[k], color=f"C{i + 3}", ls="--", lw=0.8, label=f"{name} ({k})")
        ax.set_xlabel("environment ticks")
        ax.legend(fontsize=7)
    fig.suptitle(f"DM-MAPPO training curves ({out_dir.name})")
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=80)
    plt.close(fig)
    (out_dir / "curves.json").write_text(json.dumps(curves[-1], indent=1) + "\n")
