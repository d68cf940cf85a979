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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from twin_service.envs import EnvOptions, MigrationCore
from twin_service.envs.sim import scenario_of
from twin_service.learn.masked import MaskedCategorical
from twin_service.learn.migration import (
    ActorInput,
    Policy,
    concat_inputs,
    describe_recording,
    reference_moments,
    selected,
    take_inputs,
    validate,
    write_curves,
)
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
    """Hyperparameters and data of a MASAC run."""

    recordings: tuple[str, ...] = ()
    val_recordings: tuple[str, ...] = ()
    out: str = "models/masac"
    scenario: str | None = None
    arch: Literal["paper", "per-server"] = "per-server"
    seed: int = 1
    total_ticks: int = 12_000
    episode_s: float = 600.0
    warmup_s: float = 60.0
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
    candidates: int = DEFAULT_CANDIDATES
    decision_chunk: int | None = 32
    """Vehicles deciding in one turn (as DM-MAPPO, policies.sequential)."""
    dynamic_mask: bool = True
    predictor: str | None = None
    reference_policy: str = "least-loaded"
    reference_ticks: int = 600
    val_every: int = 500
    """Ticks between validations."""
    val_ticks: int = 300
    val_start_s: float = 1500.0
    threads: int = 1
    models_dir: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    no_uavs: bool = False
    no_satellite: bool = False


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
    options = EnvOptions(episode_s=args.episode_s, warmup_s=args.warmup_s, migration_policy=args.reference_policy,
                         **variant)  # fmt: skip
    ref_core = MigrationCore(scenario, args.recordings, options, seed=args.seed + 1)
    stats = reference_moments(ref_core, args.reference_policy, args.reference_ticks, args.seed + 1)
    ref_core.close()
    env = MigrationCore(scenario, args.recordings, options, reward_stats=stats, seed=args.seed)
    val_env = None
    baselines: dict[str, dict[str, float]] = {}
    if args.val_recordings:
        val_options = EnvOptions(
            episode_s=float(args.val_ticks), warmup_s=args.warmup_s, starts_s=(args.val_start_s,),
            migration_policy=args.reference_policy, **variant,
        )  # fmt: skip
        val_env = MigrationCore(scenario, args.val_recordings, val_options, reward_stats=stats, seed=args.seed)
        p = env.params
        heuristic = migration_policy(args.reference_policy, task=p.task, channel=p.channel, satellite=p.satellite)
        baselines[args.reference_policy] = validate(
            lambda b: decide_migration(heuristic, b.observation, b.observation.servers, b.host).target, val_env
        )
    p = env.params

    def make() -> Policy:
        return Policy(args.arch, env.n_servers, env.feature_dim, args.hidden,
                      LatencyModel(p.task, p.channel, p.satellite), args.candidates, args.decision_chunk)  # fmt: skip

    policy = make()
    critics = [make(), make()]  # twin critics: the actor's shape, one Q-value per server
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

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves: list[dict[str, float]] = []
    best: tuple[float, dict[str, torch.Tensor], dict[str, float]] | None = None
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
        rows_next = {a: k for k, a in enumerate(nxt.agent_ids.tolist())}
        alive_rows = [rows_next[a] for a in batch.agent_ids[sel].tolist() if a in rows_next]
        x_next_all = policy.inputs(nxt, np.array(alive_rows, dtype=np.intp)) if alive_rows else None
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
                "wall_s": time.monotonic() - started,
                "reward_mean": reward_sum / max(reward_n, 1),
                "latency_mean_s": float(out.kpis["latency_mean_s"]),
                "packet_loss": float(out.kpis["packet_loss"]),
                "load_variance_mb2": float(out.kpis["load_variance_mb2"]),
                **{k: v / max(n_losses, 1) for k, v in losses.items()},
            }
            losses = dict.fromkeys(losses, 0.0)
            n_losses, reward_sum, reward_n = 0, 0.0, 0
            if val_env is not None:
                row |= validate(policy, val_env, "argmax", "val_")
                row |= validate(policy, val_env, "sample", "val_sample_")
                for execution, prefix in (("argmax", "val_"), ("sample", "val_sample_")):
                    if best is None or row[f"{prefix}reward"] > best[0]:
                        picked = {k: row[f"{prefix}{k[4:]}"] for k in row if k.startswith("val_") and "sample" not in k}
                        state = {k: v.clone() for k, v in policy.actor.state_dict().items()}
                        best = (row[f"{prefix}reward"], state, {**row, **picked, "execution": execution})
            curves.append(row)
            if on_update is not None:
                on_update(tick, args.total_ticks, row)
    env.close()
    if val_env is not None:
        val_env.close()
    chosen, chosen_row = (best[1], best[2]) if best is not None else (policy.actor.state_dict(), curves[-1])
    write_curves(out_dir, curves, baselines)
    params = env.params
    execution = str(chosen_row.get("execution", "argmax"))
    if args.arch == "paper":
        obs_spec, act_spec = migration_spec(env.n_servers, params.simulation.history_window)
        arch = Architecture(kind="mlp", hidden=(args.hidden, args.hidden), activation="tanh",
                            options={"execution": execution, "decision_chunk": args.decision_chunk})  # fmt: skip
    else:
        obs_spec, act_spec = per_server_spec(env.n_servers, params.simulation.history_window)
        width = max(args.hidden // 2, 8)
        arch = Architecture(kind=PER_SERVER, hidden=(width, width), activation="tanh",
                            options={"candidates": args.candidates, "execution": execution,
                                     "decision_chunk": args.decision_chunk})  # fmt: skip
    manifest = ModelManifest(
        name=out_dir.name,
        kind="migration",
        algorithm="MASAC" if args.dynamic_mask else "MASAC (no mask)",
        version="1",
        observation=obs_spec,
        action=act_spec,
        architecture=arch,
        scenario=params.scenario.name,
        scenario_param_hash=scenario.params.param_hash,
        scenario_inputs=model_inputs(params, "migration", arch.kind),
        command=command,
        seed=args.seed,
        evaluation={k: float(v) for k, v in chosen_row.items() if k.startswith("val_") and "sample" not in k},
        training={
            "args": asdict(args),
            "recordings": [describe_recording(r) for r in args.recordings],
            "val_recordings": [describe_recording(r) for r in args.val_recordings],
            "reward_stats": stats.as_dict(),
            "validation_baselines": baselines,
            "train_seconds": round(time.monotonic() - started, 1),
            "predictor": args.predictor or "persistence",
        },
        notes="Discrete SAC with twin critics; the actor with the best validation reward.",
    )
    save_model(out_dir, manifest, chosen)
    return out_dir


__all__ = ["Args", "MaskedCategorical", "train"]
