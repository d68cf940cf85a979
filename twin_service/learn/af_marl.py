"""AF-MARL (paper B, Alg. 3-4): TD3-style actor and twin critics with a CVAE context, trained by semi-synchronous
federated learning (AdFL) where vehicles are the clients and RSUs aggregate.

Read top to bottom (CleanRL style): :class:`AfMarlTrainer` gives the networks and the tick; the loop around it
(episodes, checkpoints, validation, the model folder) is :class:`twin_service.learn.offload_loop.OffloadTrainer`'s,
shared with the baselines. Every tick of a recorded day replayed through the engine (``OffloadCore``):

1. every vehicle acts: ``rho = mu(o, z) + N(0, sigma_e^2)``, z the CVAE latent of (twin now, 10 s mean) (Eq. 46-47);
2. its transition goes into its own dataset D_n (the replay buffer, tagged by vehicle; Table V: 100k);
3. client selection (Eq. 24): vehicles with f >= 1.5 GHz, E >= 150 Wh and a predicted stay >= 2 s in their RSU's
   range; up to ``clients_per_tick`` of them compute a local update on a minibatch of their own data (Eq. 41-43,
   :func:`twin_service.learn.af_marl_client.local_update`) and upload it to their RSU;
4. each RSU's semi-synchronous trigger (``tau_agg`` 5 s or ``N_agg`` 10 updates) aggregates the admitted updates
   weighted by |D_n| (Eq. 31) into the global model (:class:`twin_service.federated.semisync.SemiSyncServer`),
   whose thresholds adapt (Eq. 45);
5. the aggregate is applied as the average gradient of the clients through Adam (Table V: Adam, lr 1e-3 for the
   actor, critics and CVAE); the actor moves every ``policy_delay`` aggregations and the target networks follow by
   soft updates (Eq. 50, 52).

Where the clients compute is the federation's business: in-process (default, deterministic) or on Flower's
SuperNodes (:mod:`twin_service.flower.app`). The result is a model folder (weights + manifest, kind
``af-marl``), curves.csv and curves.png.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from twin_service.envs.offload import OffloadBatch, OffloadStep
from twin_service.federated.aggregate import Thresholds
from twin_service.federated.selection import SelectionCriteria
from twin_service.federated.semisync import Aggregation, ClientUpdate, SemiSyncServer
from twin_service.learn.af_marl_client import AUX, AfMarlModel, LocalConfig, LocalResult, Method, local_update
from twin_service.learn.checkpoint import Checkpoint
from twin_service.learn.offload_common import (
    EpisodeLog,
    ReplayBuffer,
    behaviour_rho,
    co_hosted_rho,
    eligible_clients,
    own_minibatch,
    select_clients,
    transition,
)
from twin_service.learn.offload_loop import OffloadRunArgs, OffloadTrainer, Served
from twin_service.learn.td3 import exploration_std, soft_update
from twin_service.policies.af_marl import KIND


@dataclass
class AfMarlArgs(OffloadRunArgs):
    """AF-MARL's hyperparameters (paper B Table V where it gives a value), beside the run's (OffloadRunArgs)."""

    federation: Literal["inprocess", "flower"] = "inprocess"
    """Where clients compute their local updates."""
    gamma: float = 0.99
    tau: float = 0.005
    lr_actor: float = 1e-3
    lr_critic: float = 1e-3
    lr_cvae: float = 1e-3
    buffer_size: int = 100_000
    batch_size: int = 64
    noise_std: float = 0.2
    noise_decay: float = 0.99
    exploration_rate: float = 0.15
    """Share of vehicles taking a uniformly random rho each tick (Table V: exploration rate 0.15), so that the
    critics see the whole of [0, 1] and not only the Gaussian neighbourhood of the actor's choice."""
    exploration_decay: float = 1.0
    """The exploration rate is multiplied by this after every episode (1: Table V's constant rate)."""
    actor_others: Literal["behaviour", "policy"] = "behaviour"
    """The co-hosted vehicles' summed rho the actor's loss (Eq. 54) evaluates the critic at: ``behaviour``, what
    they did (exploring), as the critics learn it; ``policy``, what their actor chose before its exploration
    noise, i.e. the crowding the trained actor will meet when every vehicle follows it. Exploration (a uniform rho
    for 15 % of the vehicles, Gaussian noise clipped at 0) crowds the hosts more than the trained policy does, and
    an actor trained against that crowding offloads too little (measured on day 7)."""
    target_noise: float = 0.2
    target_noise_clip: float = 0.5
    policy_delay: int = 2
    latent: int = 64
    """CVAE latent size (Table V: 64)."""
    kl_weight: float = 0.1
    """CVAE KL coefficient (Table V: 0.1)."""
    d_model: int = 16
    """Width of the global model's transformer (Eq. 25-30)."""
    n_layers: int = 1
    hidden: int = 64
    """Actor head width (Table V: two Tanh layers)."""
    cvae_hidden: int = 64
    """Width of the CVAE's encoder and decoder layers (Table V: 3 layers each)."""
    critic_hidden: int = 128
    """Width of each critic's two ReLU layers (Table V: 2 layers)."""
    trunk: Literal["transformer", "mlp"] = "transformer"
    """The actor's trunk: the global model's transformer (Eq. 25-30) or, as an ablation, one linear layer."""
    cvae: bool = True
    """The CVAE context (Eq. 38-40); False: the ablation without it (the actor sees the observation only)."""
    rounds: Literal["semi-synchronous", "synchronous"] = "semi-synchronous"
    """``semi-synchronous``: a round closes after ``tau_agg`` s or ``N_agg`` updates, low scores left out, thresholds
    adaptive (Sec. V-E, Eq. 45). ``synchronous`` (the ablation): a round closes once every client selected in the
    tick has reported, all admitted, as synchronous FedAvg waits for everyone."""
    clients_per_tick: int = 16
    """Most selected vehicles computing a local update per tick."""
    local_method: Method = "grouped"
    """How the in-process federation computes the clients' local updates: all in one batched pass (``grouped``),
    ``vmap`` or ``per-client`` (one at a time); the same maths (:mod:`twin_service.learn.af_marl_client`)."""
    local_steps: int = 1
    """SGD steps per local update (Eq. 41)."""
    lr_local: float = 0.01
    """eta of Eq. 41 (Table V: eta_AdFL 0.01)."""
    min_local_samples: int = 4
    """A vehicle trains once its own dataset holds this many transitions."""
    learning_starts: int = 3_000
    """Transitions collected before the first local update."""
    actor_starts: int = 100
    """Global updates of the critics (and CVAE) before the actor first moves (it follows a critic that learned)."""
    tau_agg_s: float = 5.0
    n_agg: int = 10
    adaptive: bool = True
    """Adapt sigma_min, tau_agg and N_agg (Eq. 45)."""
    f_min_hz: float = 1.5e9
    e_min_wh: float = 150.0
    t_min_s: float = 2.0
    min_tick_s: float = 0.0
    """Least wall time per tick: 1.0 replays the world in real time, so that over Flower the semi-synchronous
    rounds (tau_agg in seconds) see replies arrive as on the road; 0 runs as fast as the machine allows."""


class Federation(Protocol):
    """Where the selected clients' local updates are computed; ``collect`` returns the updates that arrived."""

    def submit(
        self, tick: int, clients: list[tuple[int, int, int]], data: dict[str, torch.Tensor], version: int
    ) -> None:
        """``clients``: (agent id, RSU, |D_n|) per client, aligned with ``data``'s (S, B, ...) minibatches."""

    def collect(self, wait: bool = False) -> list[tuple[int, ClientUpdate, np.ndarray]]:
        """(RSU, update, local losses) of every update that arrived (all outstanding ones if ``wait``)."""


class InProcessFederation:
    """Clients compute in this process, at once (deterministic)."""

    def __init__(
        self,
        model: AfMarlModel,
        targets: AfMarlModel,
        cfg: LocalConfig,
        generator: torch.Generator,
        method: Method = "grouped",
    ):
        self.model, self.targets, self.cfg, self.generator, self.method = model, targets, cfg, generator, method
        self._ready: list[tuple[int, ClientUpdate, np.ndarray]] = []

    def submit(
        self, tick: int, clients: list[tuple[int, int, int]], data: dict[str, torch.Tensor], version: int
    ) -> None:
        result = local_update(self.model, self.targets, data, self.cfg, self.generator, self.method)
        self._ready += updates_of(result, clients, version)

    def collect(self, wait: bool = False) -> list[tuple[int, ClientUpdate, np.ndarray]]:
        ready, self._ready = self._ready, []
        return ready


def updates_of(
    result: LocalResult, clients: list[tuple[int, int, int]], version: int, names: Sequence[str] | None = None
) -> list[tuple[int, ClientUpdate, np.ndarray]]:
    """Split a batched local result into one upload per client.

    A client's update is one flat vector, the parameters ``names`` (default: the result's order) end to end: the
    aggregation of Eq. 31 is element-wise, so where layers begin does not change it, and one array per client
    keeps a round's aggregation to a few array operations (the scores of Eq. 42-43 are taken per layer before).
    """
    names = list(result.delta) if names is None else list(names)
    if result.flat is not None and names == list(result.delta):
        flat = result.flat.numpy()
    else:
        flat = torch.cat([result.delta[k].reshape(len(clients), -1) for k in names], dim=1).numpy()
    out = []
    for i, (agent, rsu, n) in enumerate(clients):
        out.append((rsu, ClientUpdate(agent, [flat[i]], n, float(result.scores[i]), version), result.losses[i].numpy()))
    return out


def client_batches(
    buffer: ReplayBuffer,
    agents: Sequence[int],
    batch_size: int,
    rng: np.random.Generator,
    others_pi: bool = False,
) -> dict[str, torch.Tensor]:
    """``(S, B, ...)`` minibatches, client n's drawn (with replacement) from its own transitions D_n; with
    ``others_pi`` the co-hosted rho without exploration for the actor's loss (``AfMarlArgs.actor_others``)."""
    idx = np.stack([own_minibatch(buffer, a, batch_size, rng) for a in agents])
    flat = buffer.tensors(idx.reshape(-1))
    s = len(agents)
    out = {
        "obs": flat["obs"].reshape(s, batch_size, -1),
        "act": flat["act"].reshape(s, batch_size, -1),
        "rew": flat["rew"].reshape(s, batch_size),
        "next_obs": flat["next_obs"].reshape(s, batch_size, -1),
        "done": flat["done"].reshape(s, batch_size),
    }
    if others_pi:
        out["others_pi"] = flat["state"].reshape(s, batch_size, 1)
    return out


FederationFactory = Callable[[AfMarlModel, AfMarlModel, LocalConfig, torch.Generator], Federation]


class AfMarlTrainer(OffloadTrainer[AfMarlArgs]):
    """AF-MARL's networks and its tick (module docstring, steps 1-5); the loop is :class:`OffloadTrainer`'s."""

    algorithm = "AF-MARL"
    plot_title = "AF-MARL training"
    curve_columns = ("cost", "success", "cvae_loss", "adfl_loss", "critic_loss", "actor_loss")

    def __init__(self, args: AfMarlArgs, federation_factory: FederationFactory | None = None) -> None:
        self.federation_factory = federation_factory
        super().__init__(args)

    def build(self) -> None:
        args = self.args
        obs_dim = self.core.feature_dim
        # Networks (Alg. 4 l. 2-3): the global model and its targets theta' <- theta.
        self.model = model = AfMarlModel(
            obs_dim,
            args.latent,
            args.d_model,
            args.n_layers,
            args.hidden,
            args.cvae_hidden,
            args.critic_hidden,
            args.trunk,
            args.cvae,
        )
        self.targets = targets = copy.deepcopy(model)
        for p in targets.parameters():
            p.requires_grad_(False)
        # fused: one kernel per optimiser step instead of a dozen operations per parameter (measured: 0.5 ms against
        # 2.6 ms for all three, each aggregation)
        self.opt_actor = torch.optim.Adam(model.net.actor.parameters(), lr=args.lr_actor, fused=True)
        critics = [*model.q1.parameters(), *model.q2.parameters()]
        self.opt_critic = torch.optim.Adam(critics, lr=args.lr_critic, fused=True)
        self.optimizers = {"opt_actor": self.opt_actor, "opt_critic": self.opt_critic}
        if model.net.cvae is not None:
            self.optimizers["opt_cvae"] = torch.optim.Adam(model.net.cvae.parameters(), lr=args.lr_cvae, fused=True)
        self.names = [k for k, _ in model.named_parameters()]
        self.params = dict(model.named_parameters())
        cfg = LocalConfig(
            args.gamma, args.kl_weight, args.target_noise, args.target_noise_clip, args.lr_local, args.local_steps
        )
        if self.federation_factory is None:
            self.federation: Federation = InProcessFederation(model, targets, cfg, self.gen, args.local_method)
        else:
            self.federation = self.federation_factory(model, targets, cfg, self.gen)
        if args.rounds == "synchronous":  # every tick's round closes on its own updates, all admitted, nothing adapts
            th = Thresholds(tau_agg_s=0.0, n_agg=2**31 - 1, tau_bounds_s=(0.0, 0.0))
            self.server = SemiSyncServer(th, adaptive=False)
        else:
            th = Thresholds(tau_agg_s=args.tau_agg_s, n_agg=args.n_agg)
            self.server = SemiSyncServer(th, adaptive=args.adaptive)
        self.criteria = SelectionCriteria(args.f_min_hz, args.e_min_wh, args.t_min_s)
        # obs + the co-hosted vehicles' summed rho (critics only); the "state" column: that sum without exploration
        self.buffer = ReplayBuffer(args.buffer_size, obs_dim + 1, state_dim=1)
        self.aggregations, self.tick_n = 0, 0
        self.modules = {"model": model, "targets": targets}

    def state(self) -> dict[str, Any]:
        """At an episode's end: no round is open."""
        server = self.server
        assert not server.pending, "a round is open at the end of an episode"
        return {
            "aggregations": self.aggregations,
            "tick": self.tick_n,
            "server": {"version": server.version, "round_start_s": server.round_start_s},
            "thresholds": dataclasses.asdict(server.thresholds),
        }

    def save_state(self, ck: Checkpoint) -> None:
        ck.arrays = self.buffer.state_dict()

    def load_state(self, ck: Checkpoint) -> None:
        self.buffer.load_state_dict(ck.arrays)
        self.aggregations, self.tick_n = int(ck.state["aggregations"]), int(ck.state["tick"])
        self.server.version = int(ck.state["server"]["version"])
        self.server.round_start_s = float(ck.state["server"]["round_start_s"])
        th = ck.state["thresholds"]
        th |= {"tau_bounds_s": tuple(th["tau_bounds_s"]), "n_bounds": tuple(th["n_bounds"])}
        self.server.thresholds = Thresholds(**th)

    def apply(self, delta: list[np.ndarray]) -> None:
        """Eq. 31's aggregate as the clients' average gradient (-Delta / eta) through Adam; TD3's delayed actor."""
        args, params = self.args, self.params
        self.aggregations += 1
        update_actor = self.aggregations % args.policy_delay == 0 and self.aggregations > args.actor_starts
        (flat,) = delta  # the parameters end to end (updates_of)
        grads = torch.from_numpy(flat).mul(-1.0 / args.lr_local).split([params[k].numel() for k in self.names])
        for k, g in zip(self.names, grads, strict=True):
            p = params[k]
            p.grad = None if (k.startswith("net.actor.") and not update_actor) else g.view_as(p)
        if "opt_cvae" in self.optimizers:
            self.optimizers["opt_cvae"].step()
        self.opt_critic.step()
        if update_actor:
            self.opt_actor.step()
            soft_update(self.targets, self.model, args.tau)  # Eq. 50, 52
        for p in self.model.parameters():
            p.grad = None

    def receive(self, arrived: list[tuple[int, ClientUpdate, np.ndarray]]) -> None:
        """Uploads reach their RSU (the server); their local losses go to the episode's curves."""
        for rsu, update, losses in arrived:
            self.server.receive(rsu, update)
            self.loss_sum += losses
            self.loss_n += 1

    def aggregated(self, agg: Aggregation | None) -> None:
        if agg is not None:
            self.apply(agg.delta)
            self.adfl.append(agg)

    def begin_episode(self, episode: int, batch: OffloadBatch) -> dict[str, float]:
        args = self.args
        self.std = exploration_std(args.noise_std, args.noise_decay, episode)
        self.uniform_rate = args.exploration_rate * args.exploration_decay**episode
        self.rho_sum = 0.0
        self.loss_sum, self.loss_n, self.adfl = np.zeros(len(AUX)), 0, []
        self.server.restart_clock(batch.time_s)
        return {"exploration_std": self.std, "exploration_rate": self.uniform_rate}

    def tick(self, batch: OffloadBatch) -> OffloadStep:
        args, rng, phase, buffer = self.args, self.rng, self.phase, self.buffer
        tick_start = time.monotonic()
        # 1. act (Alg. 4 l. 8)
        with phase("act"):
            with torch.inference_mode():
                chosen = self.model.net(torch.from_numpy(batch.obs))
            rho = behaviour_rho(chosen, self.std, self.uniform_rate, self.gen, rng)
        self.rho_sum += float(rho.sum())
        with phase("env"):
            ok, host = eligible_clients(self.core, self.criteria)
            step = self.core.step(rho)
        # 2. store (Alg. 4 l. 10)
        with phase("store"):
            next_obs, done, rew = transition(batch, step)
            others = co_hosted_rho(batch.host, rho)[:, None]
            others_pi = co_hosted_rho(batch.host, chosen.numpy().astype(np.float64))[:, None]
            seen = step.alive  # a vehicle that left took its task's outcome with it: no reward was observed
            buffer.add(
                np.concatenate([batch.obs, others], 1)[seen],
                rho[seen],
                rew[seen],
                np.concatenate([next_obs, others], 1)[seen],  # the next tick's others are unknown: today's
                done[seen],
                batch.agent_ids[seen],
                others_pi[seen],
                others_pi[seen],
            )
        # 3. client selection (Eq. 24) and local updates (Eq. 41-43)
        if buffer.size >= args.learning_starts:
            with phase("select"):
                sizes = buffer.dataset_sizes(batch.agent_ids)
                pick = select_clients(
                    np.flatnonzero(ok & (sizes >= args.min_local_samples)), args.clients_per_tick, rng
                )
                data = None
                if len(pick):
                    agents = [int(batch.agent_ids[r]) for r in pick]
                    clients = [(a, int(host[r]), int(sizes[r])) for a, r in zip(agents, pick, strict=True)]
                    data = client_batches(buffer, agents, args.batch_size, rng, args.actor_others == "policy")
            with phase("local_update"):
                if data is not None:
                    self.federation.submit(self.tick_n, clients, data, self.server.version)
                arrived = self.federation.collect()
            # 4-5. the round closes when its semi-synchronous trigger fires: RSUs aggregate (Eq. 31, 44-45)
            with phase("aggregate"):
                self.receive(arrived)
                self.aggregated(self.server.step(step.next.time_s))
        self.tick_n += 1
        if args.min_tick_s > 0:
            time.sleep(max(0.0, args.min_tick_s - (time.monotonic() - tick_start)))
        return step

    def end_episode(self, row: dict[str, Any], batch: OffloadBatch, log: EpisodeLog) -> dict[str, Any]:
        self.receive(self.federation.collect(wait=True))
        self.aggregated(self.server.flush(batch.time_s))
        row["rho_mean"] = self.rho_sum / max(log.n, 1)
        if self.loss_n:
            row |= {k: float(v) for k, v in zip(AUX, self.loss_sum / self.loss_n, strict=True)}
            row["adfl_loss"] = row.pop("local_loss")  # Eq. 32: the mean local loss over participating clients
        adfl = self.adfl
        if adfl:
            row |= {
                "aggregations": len(adfl),
                "admitted_share": sum(a.admitted for a in adfl) / max(sum(a.received for a in adfl), 1),
                "rsus_per_round": float(np.mean([a.rsus for a in adfl])),
                "tau_agg_s": float(np.mean([a.thresholds.tau_agg_s for a in adfl])),
                "n_agg": float(np.mean([a.thresholds.n_agg for a in adfl])),
                "sigma_min": float(np.mean([a.thresholds.sigma_min for a in adfl])),
                "count_triggers": float(np.mean([a.reason == "count" for a in adfl])),
            }
        row["wall_s"] = self.timer.elapsed_s
        row["cpu_s"] = time.process_time()  # this process's CPU time: what a busy shared machine does not inflate
        return row | self.phase.row()

    def evaluation_extras(self) -> dict[str, float]:
        return {"aggregations": self.aggregations}

    def served(self) -> Served:
        args = self.args
        return Served(
            {k: v.detach() for k, v in self.model.net.state_dict().items()},
            self.model.net,
            KIND,
            "TD3 actor (transformer global model + CVAE latent) trained by semi-synchronous FL (AdFL), paper B",
            {
                "latent": args.latent,
                "d_model": args.d_model,
                "n_layers": args.n_layers,
                "hidden": args.hidden,
                "cvae_hidden": args.cvae_hidden,
                "trunk": args.trunk,
                "cvae": args.cvae,
            },
        )


def train(args: AfMarlArgs, federation_factory: FederationFactory | None = None) -> Path:
    """Train AF-MARL; returns the model folder (weights, manifest, curves)."""
    return AfMarlTrainer(args, federation_factory).run()
