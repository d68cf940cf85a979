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

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from twin_service.envs import EnvOptions, MigrationBatch, MigrationCore
from twin_service.envs.parallel import follow_agents
from twin_service.envs.sim import scenario_of
from twin_service.learn.gae import ragged_gae
from twin_service.learn.migration import (
    ActorInput,
    Policy,
    concat_inputs,
    describe_recording,
    orthogonal_init,
    reference_moments,
    selected,
    take_inputs,
    validate,
    write_curves,
)
from twin_service.learn.valuenorm import ValueNorm
from twin_service.observe import LatencyModel
from twin_service.policies import migration_policy
from twin_service.policies.decide import decide_migration
from twin_service.policies.manifest import (
    PER_SERVER,
    Architecture,
    ModelManifest,
    migration_spec,
    model_inputs,
    per_server_spec,
)
from twin_service.policies.per_server import DEFAULT_CANDIDATES
from twin_service.policies.registry import save_model


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
    decision_chunk: int | None = 32
    """Vehicles deciding in one turn, later turns seeing the loads earlier moves left (policies.sequential);
    None decides for everyone at once, as paper A does (which herds a crowded server's vehicles together)."""
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
        args.decision_chunk,
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
    write_curves(out_dir, curves, baselines)
    elapsed = time.monotonic() - started
    return _save(args, scenario, env, policy, chosen, chosen_row, stats, command, elapsed, out_dir, baselines)


def _save(args, scenario, env, policy, state_dict, row, stats, command, elapsed, out_dir, baselines) -> Path:  # noqa: ANN001
    params = env.params
    execution = "sample" if row.get("execution_sample") else "argmax"
    if args.arch == "paper":
        obs_spec, act_spec = migration_spec(env.n_servers, params.simulation.history_window)
        arch = Architecture(
            kind="mlp",
            hidden=(args.hidden, args.hidden),
            activation="tanh",
            options={"execution": execution, "decision_chunk": args.decision_chunk},
        )
    else:
        obs_spec, act_spec = per_server_spec(env.n_servers, params.simulation.history_window)
        width = max(args.hidden // 2, 8)
        arch = Architecture(
            kind=PER_SERVER,
            hidden=(width, width),
            activation="tanh",
            options={"candidates": args.candidates, "execution": execution, "decision_chunk": args.decision_chunk},
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
        scenario_inputs=model_inputs(params, "migration", arch.kind),
        command=command,
        seed=args.seed,
        evaluation=evaluation,
        training={
            "args": asdict(args),
            "recordings": [describe_recording(r) for r in args.recordings],
            "val_recordings": [describe_recording(r) for r in args.val_recordings],
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
