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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from twin_service.envs.sim import EnvOptions
from twin_service.federated.aggregate import async_mix, staleness_weight
from twin_service.learn.checkpoint import Checkpoint, Checkpointer, capture, restore
from twin_service.learn.offload_common import (
    CurveLog,
    EpisodeLog,
    ReplayBuffer,
    Timer,
    args_dict,
    co_hosted_rho,
    make_core,
    next_rows,
    plot_curves,
    seed_everything,
)
from twin_service.learn.td3 import Critic, actor_loss, critic_loss, exploration_std, explore, soft_update, td_target
from twin_service.learn.validate import save_offload_model, validate_offload
from twin_service.policies.torch_policy import MlpActor


@dataclass
class AflMaddpgArgs:
    recordings: list[Path]
    out: Path
    validation: list[Path] = field(default_factory=list)
    scenario: str | None = None
    seed: int = 1
    episodes: int = 30
    episode_s: float = 300.0
    warmup_s: float = 30.0
    overrides: dict = field(default_factory=dict)
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
    threads: int = 1
    progress: bool = True
    command: str = ""
    checkpoint: Path | None = None
    """Folder of the resumable state, saved after every episode (default ``<out>.checkpoint``; removed at the end)."""
    resume: bool = True
    """Go on from the checkpoint of an interrupted run with the same arguments, if there is one."""


class CentralCritic(nn.Module):
    """``Q(s, o_n, rho_n, sum of the co-hosted vehicles' rho)``."""

    def __init__(self, state_dim: int, obs_dim: int, hidden: int):
        super().__init__()
        self.q = Critic(state_dim + obs_dim + 1, hidden)

    def forward(self, state: torch.Tensor, obs: torch.Tensor, others: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(torch.cat([state, obs, others], dim=-1), act)[..., 0]


def train(args: AflMaddpgArgs) -> Path:
    timer = Timer()
    gen = seed_everything(args.seed, args.threads)
    rng = np.random.default_rng(args.seed)
    core = make_core(
        args.scenario, args.recordings, EnvOptions(args.episode_s, args.warmup_s, overrides=args.overrides), args.seed
    )
    obs_dim, state_dim = core.feature_dim, core.state_dim
    actor = MlpActor(obs_dim, 1, (args.hidden, args.hidden), "tanh")
    with torch.no_grad():
        actor.net[-1].bias.fill_(-2.0)  # start near local computing, as AF-MARL's actor
    critic = CentralCritic(state_dim, obs_dim, args.critic_hidden)
    actor_t, critic_t = copy.deepcopy(actor), copy.deepcopy(critic)
    # obs columns hold o_n and, after it, the co-hosted rho (one extra column) for the critic
    buffer = ReplayBuffer(args.buffer_size, obs_dim + 1, state_dim=state_dim)
    curves = CurveLog()
    in_flight: list[tuple[int, int, list[torch.Tensor]]] = []  # (arrival tick, base version, local model)
    version, tick = 0, 0
    modules = [actor, critic]
    shapes = [p.shape for m in modules for p in m.parameters()]
    checkpoints = Checkpointer(args.out, args.checkpoint, args.resume, args_dict(args))
    named = {"actor": actor, "critic": critic, "actor_t": actor_t, "critic_t": critic_t}
    generators = {"torch": gen, "numpy": rng, "env": core.rng}

    def snapshot() -> Checkpoint:
        ck = capture(named, {}, generators, version=version, tick=tick, curves=curves.rows, wall_s=timer.elapsed_s)
        ck.arrays = buffer.state_dict()
        # uploads still on their way (they arrive in the next episode's first ticks): one flat model per row
        ck.arrays["in_flight_ticks"] = np.array([[u[0], u[1]] for u in in_flight], np.int64).reshape(-1, 2)
        ck.tensors["in_flight_models"] = (
            torch.stack([torch.cat([w.reshape(-1) for w in u[2]]) for u in in_flight])
            if in_flight
            else torch.zeros(0, sum(s.numel() for s in shapes))
        )
        return ck

    if (found := checkpoints.found) is not None:
        restore(found, named, {}, generators)
        buffer.load_state_dict(found.arrays)
        version, tick = int(found.state["version"]), int(found.state["tick"])
        models = found.tensors["in_flight_models"]
        for (arrive, base), flat in zip(found.arrays["in_flight_ticks"].tolist(), models, strict=True):
            parts = flat.split([s.numel() for s in shapes])
            in_flight.append((arrive, base, [w.reshape(s) for w, s in zip(parts, shapes, strict=True)]))
        curves = CurveLog(found.state["curves"])
        timer.resume_from(float(found.state["wall_s"]))

    def local_model(idx: np.ndarray) -> tuple[list[torch.Tensor], float, float]:
        """One DDPG step (Eq. 41) on a copy of the global model with the client's minibatch."""
        a_loc, c_loc = copy.deepcopy(actor), copy.deepcopy(critic)
        b = buffer.tensors(idx)
        obs, others, nxt, nxt_others = b["obs"][:, :-1], b["obs"][:, -1:], b["next_obs"][:, :-1], b["next_obs"][:, -1:]
        with torch.no_grad():
            a_next = torch.sigmoid(actor_t(nxt))
            q_next = critic_t(b["next_state"], nxt, nxt_others, a_next)
            y = td_target(b["rew"], q_next, q_next, b["done"], args.gamma)
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
                        p -= args.lr_local * p.grad
        return [p.detach().clone() for m in (a_loc, c_loc) for p in m.parameters()], l_q.item(), l_pi.item()

    start = checkpoints.start_episode
    bar = tqdm(total=args.episodes, initial=start, desc="AFL-MADDPG", unit="episode", disable=not args.progress)
    for episode in range(start, args.episodes):
        batch = core.reset()
        std = exploration_std(args.noise_std, args.noise_decay, episode)
        ep, lq, lpi, mixes = EpisodeLog(), [], [], []
        while not core.done:
            with torch.no_grad():
                rho = (
                    explore(torch.sigmoid(actor(torch.from_numpy(batch.obs)))[:, 0], std, gen)
                    .numpy()
                    .astype(np.float64)
                )
            rho = np.where(rng.random(len(rho)) < args.exploration_rate, rng.random(len(rho)), rho)
            step = core.step(rho)
            rows, alive = next_rows(batch, step.next)
            nxt = step.next
            others = co_hosted_rho(batch.host, rho)
            # the next tick's co-hosted rho is unknown before the others act: the critic sees the current one
            nxt_obs = np.where(alive[:, None], nxt.obs[rows] if len(nxt) else batch.obs, batch.obs)
            buffer.add(
                np.concatenate([batch.obs, others[:, None]], 1),
                rho,
                step.rewards.astype(np.float32),
                np.concatenate([nxt_obs, others[:, None]], 1),
                (~alive).astype(np.float32),
                batch.agent_ids,
                np.broadcast_to(batch.state, (len(batch), state_dim)),
                np.broadcast_to(nxt.state, (len(batch), state_dim)),
            )
            ep.add(step)
            if buffer.size >= args.learning_starts:
                agents = [int(a) for a in batch.agent_ids if buffer.dataset_size(int(a)) >= args.min_local_samples]
                for a in (
                    rng.choice(agents, size=min(args.clients_per_tick, len(agents)), replace=False) if agents else []
                ):
                    own = buffer.agent_indices(int(a))
                    weights, l1, l2 = local_model(rng.choice(own, size=args.batch_size, replace=True))
                    lq.append(l1)
                    lpi.append(l2)
                    in_flight.append((tick + int(rng.integers(0, args.max_delay_ticks + 1)), version, weights))
                arrived = [u for u in in_flight if u[0] <= tick]
                in_flight = [u for u in in_flight if u[0] > tick]
                for _, base, weights in arrived:
                    mix = staleness_weight(args.alpha, version - base)
                    glob = [p.detach().numpy() for m in modules for p in m.parameters()]
                    new = async_mix(glob, [w.numpy() for w in weights], mix)
                    with torch.no_grad():
                        for p, w in zip([p for m in modules for p in m.parameters()], new, strict=True):
                            p.copy_(torch.from_numpy(np.asarray(w, dtype=np.float32)))
                    version += 1
                    mixes.append(mix)
                    soft_update(actor_t, actor, args.tau)
                    soft_update(critic_t, critic, args.tau)
            batch = nxt
            tick += 1
        row = {"episode": episode, "exploration_std": std, **ep.row(), "wall_s": timer.elapsed_s}
        if lq:
            row |= {
                "critic_loss": float(np.mean(lq)),
                "actor_loss": float(np.mean(lpi)),
                "mix_mean": float(np.mean(mixes)),
            }
        curves.add(row)
        checkpoints.save(snapshot(), episode + 1, {"curves.csv": curves.csv()})
        bar.set_postfix(cost=f"{row['cost']:.3f}", success=f"{row['success']:.3f}")
        bar.update()
    bar.close()
    core.close()
    curves.write(args.out / "curves.csv")
    plot_curves(
        curves.rows,
        ["cost", "success", "critic_loss", "actor_loss"],
        args.out / "curves.png",
        f"AFL-MADDPG ({args.out.name})",
    )

    def act(obs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(actor(obs))[:, 0]

    evaluation = validate_offload(
        act, args.scenario, args.validation, args.episode_s, args.warmup_s, args.seed, args.overrides
    )
    evaluation["train_wall_s"] = round(timer.elapsed_s, 1)
    save_offload_model(
        args.out,
        actor.state_dict(),
        algorithm="AFL-MADDPG",
        kind="mlp",
        options={},
        scenario=core.sim.scenario,
        args=args_dict(args),
        command=args.command,
        seed=args.seed,
        evaluation=evaluation,
        notes="paper B baseline: MADDPG (centralised critic) trained by asynchronous federated learning (FedAsync)",
        hidden=(args.hidden, args.hidden),
    )
    checkpoints.finish()
    return args.out
