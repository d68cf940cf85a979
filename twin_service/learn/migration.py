"""What the migration trainers share (DM-MAPPO and MASAC): the actors' inputs, reward moments, validation.

* :class:`Policy` wraps either actor (``paper``: MLP over o_v; ``per-server``: one network over each (vehicle,
  server) pair) with one calling convention for acting and for updates; :class:`ActorInput` is what it reads.
* :func:`reference_moments` fixes the reward's z-scores (Eq. 22) on a heuristic's outcomes.
* :func:`validate` runs a policy (argmax or sampled) or a heuristic over a validation window.
* :func:`selected`, :func:`describe_recording` and :func:`write_curves`: the agents learned from, the data and
  the curves recorded with a model.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from twin_service.envs import MigrationBatch, MigrationCore, RewardStats
from twin_service.learn.masked import MaskedCategorical
from twin_service.observe import PER_SERVER_FEATURES, LatencyModel, MigrationObservation, per_server_features
from twin_service.policies import migration_policy
from twin_service.policies.decide import decide_migration
from twin_service.policies.per_server import DEFAULT_CANDIDATES, PerServerActor, candidate_mask, feasible_pairs
from twin_service.policies.sequential import TurnsResult, decide_in_turns
from twin_service.policies.torch_policy import MlpActor


def orthogonal_init(module: nn.Module, gain: float = math.sqrt(2)) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain)
            nn.init.zeros_(layer.bias)


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
        chunk: int | None = None,
    ):
        self.arch = arch
        self.candidates = candidates
        self.chunk = chunk
        """Vehicles deciding in one turn (``policies.sequential``); None: all at once."""
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
        return self.inputs_from(batch.observation, batch.host, rows)

    def inputs_from(self, obs: MigrationObservation, host: NDArray[np.int64], rows: NDArray[np.intp]) -> ActorInput:
        """The inputs for the vehicles ``rows`` of an observation (``host`` aligned with its vehicles)."""
        if self.arch == "paper":
            features = obs.features[rows]
            return ActorInput(obs=features, mask=obs.mask[rows], own=features)
        mask = candidate_mask(obs, host, self.candidates)[rows]
        sub_rows, cols = feasible_pairs(mask)
        pair_rows = rows[sub_rows]
        feats = per_server_features(obs, host, self.latency, (pair_rows, cols))
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

    def next_inputs(self, ids: NDArray[np.int64], nxt: MigrationBatch) -> tuple[NDArray[np.intp], ActorInput | None]:
        """The agents ``ids`` found again in the next batch ``nxt``: their positions in ``ids`` and their inputs
        there (None when none is left), for the values of their futures."""
        rows_in_next = {a: k for k, a in enumerate(nxt.agent_ids.tolist())}
        alive = [k for k, a in enumerate(ids.tolist()) if a in rows_in_next]
        if not alive:
            return np.zeros(0, dtype=np.intp), None
        rows = np.array([rows_in_next[a] for a in ids[alive].tolist()], dtype=np.intp)
        return np.array(alive, dtype=np.intp), self.inputs(nxt, rows)

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

    def act(
        self,
        batch: MigrationBatch,
        execution: Literal["sample", "argmax"],
        gen: torch.Generator,
        order: NDArray[np.intp],
    ) -> Acted:
        """Every agent's action, in turns of :attr:`chunk` vehicles (``policies.sequential``) in ``order``."""
        chunk = self.chunk
        parts: list[ActorInput] = []

        def score(obs: MigrationObservation, host: NDArray[np.int64], rows: NDArray[np.intp]) -> torch.Tensor:
            x = self.inputs_from(obs, host, rows)
            parts.append(x)
            return self.distribution(x).logits

        def choose(logits: torch.Tensor, probs: torch.Tensor, rows: NDArray[np.intp]) -> NDArray[np.int64]:
            if execution == "argmax":
                return logits.argmax(dim=-1).numpy()
            return torch.multinomial(probs, 1, generator=gen).squeeze(-1).numpy()

        n = len(batch)
        with torch.no_grad():
            turns = decide_in_turns(batch.observation, batch.host, score, choose, order, chunk or max(n, 1))
            logp = torch.log_softmax(turns.logits, dim=-1).gather(-1, torch.from_numpy(turns.target).unsqueeze(-1))
        return Acted(turns, parts, logp.squeeze(-1).numpy())


@dataclass
class Acted:
    """A tick's decisions with what each vehicle saw when it decided (for the update)."""

    turns: TurnsResult
    parts: list[ActorInput]
    logp: NDArray[np.float32]

    @property
    def actions(self) -> NDArray[np.int64]:
        return self.turns.target

    def inputs(self, rows: NDArray[np.intp]) -> ActorInput:
        """The inputs of vehicles ``rows`` as each saw them in the turn it decided in, in the order of ``rows``."""
        n = len(self.turns.target)
        pieces: list[ActorInput] = []
        stacked_row = np.empty(len(rows), dtype=np.int64)
        done = 0
        for k, (_, pass_rows) in enumerate(self.turns.passes):
            mine = np.flatnonzero(self.turns.scored_in[rows] == k)
            if not mine.size:
                continue
            position = np.full(n, -1, dtype=np.int64)
            position[pass_rows] = np.arange(len(pass_rows))
            pieces.append(take_inputs(self.parts[k], position[rows[mine]]))
            stacked_row[mine] = done + np.arange(mine.size)
            done += mine.size
        if not pieces:
            return take_inputs(self.parts[0], rows)
        return take_inputs(concat_inputs(pieces), stacked_row)


def concat_inputs(parts: Sequence[ActorInput]) -> ActorInput:
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


def take_inputs(x: ActorInput, idx: NDArray[np.intp]) -> ActorInput:
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
    """A policy over the validation window of every validation day: the mean over days of each day's mean
    reward and KPIs (each day weighs the same, however many vehicles it has).

    ``policy`` is the actor, executed by argmax (paper A Eq. 20) or by sampling its distribution (a fixed
    seed), or a function of the batch (a heuristic)."""
    days = [_validate_day(policy, core, execution, k) for k in range(len(core.sim.recordings))]
    return {f"{prefix}{key}": float(np.mean([day[key] for day in days])) for key in days[0]}


def _validate_day(
    policy: Policy | Callable[[MigrationBatch], NDArray[np.int64]],
    core: MigrationCore,
    execution: Literal["argmax", "sample"],
    day: int,
) -> dict[str, float]:
    """One validation day's window (seeded by the day's index: day 0 as a single-day validation always was)."""
    batch = core.reset(day, recording=day)
    gen = torch.Generator().manual_seed(day)
    rng = np.random.default_rng(day)
    rewards, latency, failed, variance, migrations, vehicles = [], [], [], [], 0.0, 0
    with torch.no_grad():
        while True:
            if isinstance(policy, Policy):
                action = policy.act(batch, execution, gen, rng.permutation(len(batch))).actions
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
        "reward": float(np.concatenate(rewards).mean()),
        "latency_mean_s": float(np.concatenate(latency).mean()),
        "packet_loss": float(np.concatenate(failed).mean()),
        "load_variance_mb2": float(np.mean(variance)),
        "migrations_per_vehicle_tick": migrations / max(vehicles, 1),
    }


def selected(agent_ids: NDArray[np.int64], share: float, seed: int) -> NDArray[np.bool_]:
    """A fixed share of the agents, by a hash of their id: the same agents tick after tick."""
    h = (agent_ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)) >> np.uint64(40)
    return (h % np.uint64(10_000)).astype(np.int64) < int(share * 10_000)


def describe_recording(path: str) -> dict[str, Any]:
    from twin_service.engine.recording import Recording

    with Recording(path) as rec:
        m = rec.meta
        return {"file": Path(path).name, "scenario": m.scenario, "seed": m.seed, "scale": m.scale, "ticks": m.ticks}


def write_curves(out_dir: Path, curves: list[dict[str, float]], baselines: dict[str, dict[str, float]]) -> None:
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
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:  # a panel of the other trainer's (MASAC has no PPO losses)
            ax.set_visible(False)
    fig.suptitle(f"training curves of {out_dir.name}")
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=80)
    plt.close(fig)
    (out_dir / "curves.json").write_text(json.dumps(curves[-1], indent=1) + "\n")
