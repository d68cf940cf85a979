"""DDQN baseline of paper B (Sec. VII-C): one Q-network, no federation, rho discretised (van Hasselt et al. 2016).

A single agent's network decides every vehicle's fraction from its observation (parameter sharing, no
coordination, no federated learning). Double Q-learning target: ``y = r + gamma Q'(s', argmax_a Q(s', a))``;
epsilon-greedy exploration decaying per episode; served as architecture kind ``q-bins``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from twin_service.envs.sim import EnvOptions
from twin_service.learn.checkpoint import Checkpointer, capture, restore
from twin_service.learn.offload_common import (
    CurveLog,
    EpisodeLog,
    ReplayBuffer,
    Timer,
    args_dict,
    make_core,
    plot_curves,
    seed_everything,
    transition,
)
from twin_service.learn.td3 import soft_update
from twin_service.learn.validate import save_offload_model, validate_offload
from twin_service.policies.q_offload import KIND, rho_bins
from twin_service.policies.torch_policy import MlpActor


@dataclass
class DdqnArgs:
    """DDQN's run (Table V's shared values: gamma, tau, lr, buffer, batch)."""

    recordings: list[Path]
    out: Path
    validation: list[Path] = field(default_factory=list)
    scenario: str | None = None
    seed: int = 1
    episodes: int = 30
    episode_s: float = 300.0
    warmup_s: float = 30.0
    overrides: dict = field(default_factory=dict)
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
    threads: int = 1
    progress: bool = True
    command: str = ""
    checkpoint: Path | None = None
    """Folder of the resumable state, saved after every episode (default ``<out>.checkpoint``; removed at the end)."""
    resume: bool = True
    """Go on from the checkpoint of an interrupted run with the same arguments, if there is one."""


def train(args: DdqnArgs) -> Path:
    timer = Timer()
    gen = seed_everything(args.seed, args.threads)
    rng = np.random.default_rng(args.seed)
    core = make_core(
        args.scenario, args.recordings, EnvOptions(args.episode_s, args.warmup_s, overrides=args.overrides), args.seed
    )
    bins = rho_bins(args.bins)
    q = MlpActor(core.feature_dim, args.bins, (args.hidden, args.hidden), "tanh")
    q_target = copy.deepcopy(q)
    opt = torch.optim.Adam(q.parameters(), lr=args.lr)
    buffer = ReplayBuffer(args.buffer_size, core.feature_dim)
    curves = CurveLog()
    checkpoints = Checkpointer(args.out, args.checkpoint, args.resume, args_dict(args))
    modules = {"q": q, "q_target": q_target}
    generators = {"torch": gen, "numpy": rng, "env": core.rng}
    if (found := checkpoints.found) is not None:
        restore(found, modules, {"opt": opt}, generators)
        buffer.load_state_dict(found.arrays)
        curves = CurveLog(found.state["curves"])
        timer.resume_from(float(found.state["wall_s"]))
    start = checkpoints.start_episode
    bar = tqdm(total=args.episodes, initial=start, desc="DDQN", unit="episode", disable=not args.progress)
    for episode in range(start, args.episodes):
        batch = core.reset()
        eps = args.epsilon * args.epsilon_decay**episode
        ep, losses = EpisodeLog(), []
        while not core.done:
            with torch.no_grad():
                greedy = q(torch.from_numpy(batch.obs)).argmax(dim=-1).numpy()
            explore = rng.random(len(batch)) < eps
            action = np.where(explore, rng.integers(0, args.bins, len(batch)), greedy)
            step = core.step(bins[action])
            next_obs, done, rew = transition(batch, step)
            buffer.add(batch.obs, action.astype(np.float32), rew, next_obs, done, batch.agent_ids)
            ep.add(step)
            if buffer.size >= args.learning_starts:
                for _ in range(args.updates_per_tick):
                    b = buffer.tensors(buffer.sample(rng, args.batch_size))
                    with torch.no_grad():
                        a_next = q(b["next_obs"]).argmax(dim=-1, keepdim=True)
                        y = b["rew"] + args.gamma * (1 - b["done"]) * q_target(b["next_obs"]).gather(1, a_next)[:, 0]
                    q_sa = q(b["obs"]).gather(1, b["act"].long())[:, 0]
                    loss = torch.nn.functional.smooth_l1_loss(q_sa, y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    soft_update(q_target, q, args.tau)
                    losses.append(loss.item())
            batch = step.next
        row = {"episode": episode, "epsilon": eps, **ep.row(), "wall_s": timer.elapsed_s}
        if losses:
            row["q_loss"] = float(np.mean(losses))
        curves.add(row)
        ck = capture(modules, {"opt": opt}, generators, curves=curves.rows, wall_s=timer.elapsed_s)
        ck.arrays = buffer.state_dict()
        checkpoints.save(ck, episode + 1, {"curves.csv": curves.csv()})
        bar.set_postfix(cost=f"{row['cost']:.3f}", success=f"{row['success']:.3f}")
        bar.update()
    bar.close()
    core.close()
    curves.write(args.out / "curves.csv")
    plot_curves(curves.rows, ["cost", "success", "q_loss"], args.out / "curves.png", f"DDQN training ({args.out.name})")
    bins_t = torch.from_numpy(bins).float()

    def act(obs: torch.Tensor) -> torch.Tensor:
        return bins_t[q(obs).argmax(dim=-1)]

    evaluation = validate_offload(
        act, args.scenario, args.validation, args.episode_s, args.warmup_s, args.seed, args.overrides
    )
    evaluation["train_wall_s"] = round(timer.elapsed_s, 1)
    save_offload_model(
        args.out,
        q.state_dict(),
        algorithm="DDQN",
        kind=KIND,
        options={"bins": args.bins},
        scenario=core.sim.scenario,
        args=args_dict(args),
        command=args.command,
        seed=args.seed,
        evaluation=evaluation,
        notes="paper B baseline: single-agent double DQN over discretised rho, no federation",
        hidden=(args.hidden, args.hidden),
    )
    checkpoints.finish()
    return args.out
