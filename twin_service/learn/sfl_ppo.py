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
    Timer,
    args_dict,
    make_core,
    next_rows,
    plot_curves,
    seed_everything,
)
from twin_service.learn.validate import save_offload_model, validate_offload
from twin_service.policies.torch_policy import MlpActor


@dataclass
class SflPpoArgs:
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
    threads: int = 1
    progress: bool = True
    command: str = ""
    checkpoint: Path | None = None
    """Folder of the resumable state, saved after every episode (default ``<out>.checkpoint``; removed at the end)."""
    resume: bool = True
    """Go on from the checkpoint of an interrupted run with the same arguments, if there is one."""


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


def train(args: SflPpoArgs) -> Path:
    timer = Timer()
    gen = seed_everything(args.seed, args.threads)
    core = make_core(
        args.scenario, args.recordings, EnvOptions(args.episode_s, args.warmup_s, overrides=args.overrides), args.seed
    )
    obs_dim = core.feature_dim
    actor = MlpActor(obs_dim, 1, (args.hidden, args.hidden), "tanh")
    with torch.no_grad():
        actor.net[-1].bias.fill_(-2.0)
    critic = MlpActor(obs_dim, 1, (args.hidden, args.hidden), "tanh")
    log_std = torch.nn.Parameter(torch.tensor(args.log_std))
    opt = torch.optim.Adam([*actor.parameters(), *critic.parameters(), log_std], lr=args.lr)
    curves = CurveLog()
    checkpoints = Checkpointer(args.out, args.checkpoint, args.resume, args_dict(args))
    modules = {"actor": actor, "critic": critic}
    generators = {"torch": gen, "env": core.rng}
    if (found := checkpoints.found) is not None:
        restore(found, modules, {"opt": opt}, generators)
        with torch.no_grad():
            log_std.copy_(found.tensors["log_std"])
        curves = CurveLog(found.state["curves"])
        timer.resume_from(float(found.state["wall_s"]))
    start = checkpoints.start_episode
    bar = tqdm(total=args.episodes, initial=start, desc="SFL-PPO", unit="episode", disable=not args.progress)
    for episode in range(start, args.episodes):
        batch = core.reset()
        ep = EpisodeLog()
        pl, vl, rounds = [], [], 0
        while not core.done:
            ticks = []  # per tick: obs, u, logp, reward, done, value, rows into the next tick, agent ids
            for _ in range(args.rollout_ticks):
                if core.done:
                    break
                obs = torch.from_numpy(batch.obs)
                with torch.no_grad():
                    mu = actor(obs)[:, 0]
                    u = mu + log_std.exp() * torch.randn(mu.shape, generator=gen)
                    logp = torch.distributions.Normal(mu, log_std.exp()).log_prob(u)
                    value = critic(obs)[:, 0]
                step = core.step(torch.sigmoid(u).double().numpy())
                rows, alive = next_rows(batch, step.next)
                ticks.append(
                    (batch.obs, u, logp, step.rewards.astype(np.float32), ~alive, value, rows, batch.agent_ids)
                )
                ep.add(step)
                batch = step.next
            with torch.no_grad():
                last_value = critic(torch.from_numpy(batch.obs))[:, 0] if len(batch) else torch.zeros(0)
            # GAE along each vehicle's trajectory (rows map an agent to its row at the next tick)
            advs, rets = [None] * len(ticks), [None] * len(ticks)
            next_adv, next_val = torch.zeros(len(batch)), last_value
            for t in reversed(range(len(ticks))):
                _, _, _, rew, done, value, rows, _ = ticks[t]
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
            perm_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            for _ in range(args.epochs):
                perm = torch.randperm(n, generator=perm_gen)
                for idx in perm.chunk(args.minibatches):
                    dist = torch.distributions.Normal(actor(obs[idx])[:, 0], log_std.exp())
                    ratio = torch.exp(dist.log_prob(u[idx]) - logp_old[idx])
                    l_pi = -torch.min(ratio * adv[idx], ratio.clamp(1 - args.clip, 1 + args.clip) * adv[idx]).mean()
                    l_v = ((critic(obs[idx])[:, 0] - ret[idx]) ** 2).mean()
                    loss = l_pi + 0.5 * l_v - args.entropy * dist.entropy().mean()
                    opt.zero_grad()
                    loss.backward()  # = FedSGD over every vehicle of the round, weighted by |D_n| (module docstring)
                    torch.nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters()], 0.5)
                    opt.step()
                    pl.append(l_pi.item())
                    vl.append(l_v.item())
            rounds += 1
        row = {"episode": episode, **ep.row(), "wall_s": timer.elapsed_s, "rounds": rounds}
        if pl:
            row |= {
                "policy_loss": float(np.mean(pl)),
                "value_loss": float(np.mean(vl)),
                "log_std": float(log_std.detach()),
            }
        curves.add(row)
        ck = capture(modules, {"opt": opt}, generators, curves=curves.rows, wall_s=timer.elapsed_s)
        ck.tensors["log_std"] = log_std.detach().clone()
        checkpoints.save(ck, episode + 1, {"curves.csv": curves.csv()})
        bar.set_postfix(cost=f"{row['cost']:.3f}", success=f"{row['success']:.3f}")
        bar.update()
    bar.close()
    core.close()
    curves.write(args.out / "curves.csv")
    plot_curves(
        curves.rows,
        ["cost", "success", "policy_loss", "value_loss"],
        args.out / "curves.png",
        f"SFL-PPO ({args.out.name})",
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
        algorithm="SFL-PPO",
        kind="mlp",
        options={},
        scenario=core.sim.scenario,
        args=args_dict(args),
        command=args.command,
        seed=args.seed,
        evaluation=evaluation,
        notes="paper B baseline: PPO trained by synchronous federated learning (FedSGD weighted by |D_n|)",
        hidden=(args.hidden, args.hidden),
    )
    checkpoints.finish()
    return args.out
