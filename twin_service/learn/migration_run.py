"""The run around a migration trainer's update, shared by DM-MAPPO and MASAC (the BenchMARL shape: one
algorithm per file over a shared experiment loop).

* :func:`start`: seeds, the reward's fixed moments on a heuristic (Eq. 22's z-scores), the training and
  validation environments and the heuristics' figures on the validation window (the bars to clear);
* :class:`BestActor`: the actor with the best validation reward, under either execution (argmax, paper A
  Eq. 20, or sampling the mixed strategy);
* :meth:`MigrationRun.finish`: the model folder (weights, manifest, curves) as ``twin-service`` serves it.

The trainers' Args dataclasses stay per algorithm (CleanRL: every hyperparameter in one typed object); the
functions here read the fields both have (``seed``, ``recordings``, ``arch``, ``hidden``...).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from twin_service.envs import EnvOptions, MigrationCore, RewardStats
from twin_service.envs.sim import scenario_of
from twin_service.learn.migration import Policy, describe_recording, reference_moments, validate, write_curves
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
from twin_service.policies.per_server import DEFAULT_CANDIDATES, layout_sites_in_reach
from twin_service.policies.registry import save_model
from twin_service.scenario.folder import Scenario


@dataclass
class MigrationRunArgs:
    """What every migration trainer's run depends on besides its algorithm (the fields :func:`start` and
    :class:`MigrationRun` read): the data, the actor's inputs, the reference heuristic, validation and the scenario.
    Each trainer's ``Args`` adds its own hyperparameters, the model folder and its budget."""

    recordings: tuple[str, ...] = ()
    """Training days (recordings); the project's convention is days 1-6."""
    val_recordings: tuple[str, ...] = ()
    """Validation day(s): the actor with the best validation reward is kept (day 7)."""
    scenario: str | None = None
    """Scenario folder or name (default: the one the recordings were made on)."""
    arch: Literal["paper", "per-server"] = "per-server"
    """Actor: paper A's MLP over o_v, or ours, one network scoring each (vehicle, server) pair."""
    seed: int = 1
    episode_s: float = 600.0
    """Episode length: a window of a training day."""
    warmup_s: float = 60.0
    candidates: int = DEFAULT_CANDIDATES
    """Per-server actor: the nearest feasible ground or air servers it weighs (plus host and satellite)."""
    decision_chunk: int | None = 32
    """Vehicles deciding in one turn, later turns seeing the loads earlier moves left (policies.sequential);
    None decides for everyone at once, as paper A does (which herds a crowded server's vehicles together)."""
    dynamic_mask: bool = True
    """False trains and serves without the dynamic mask (paper A Fig. 9)."""
    predictor: str | None = None
    """Workload predictor in the observation and mask (None: the current load, persistence)."""
    reference_policy: str = "least-loaded"
    """Heuristic whose reward moments z-score the reward (and which plays the warm-ups)."""
    reference_ticks: int = 600
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


@dataclass
class MigrationRun:
    """What a migration trainer has set up before its first update (:func:`start`)."""

    args: Any
    """The trainer's Args (``dm_mappo.Args`` or ``masac.Args``)."""
    started: float
    """``time.monotonic()`` at the start, for the curves' ``wall_s`` and the manifest's ``train_seconds``."""
    rng: np.random.Generator
    """Agent orders, minibatches, replay samples."""
    gen: torch.Generator
    """Sampled actions."""
    scenario: Scenario
    options: EnvOptions
    reward: Literal["shaped", "unshaped"]
    stats: RewardStats
    env: MigrationCore
    val_env: MigrationCore | None
    baselines: dict[str, dict[str, float]]
    """The heuristics' figures on the validation window, by name."""
    out_dir: Path

    def training_env(self, seed: int) -> MigrationCore:
        """Another training environment (another episode, day and hour) on the same reward scale."""
        args = self.args
        return MigrationCore(
            self.scenario, args.recordings, self.options, reward=self.reward, reward_stats=self.stats, seed=seed
        )

    def policy(self) -> Policy:
        """A fresh actor of the run's architecture (initialised from torch's global generator)."""
        args, p = self.args, self.env.params
        return Policy(
            args.arch,
            self.env.n_servers,
            self.env.feature_dim,
            args.hidden,
            LatencyModel(p.task, p.channel, p.satellite),
            args.candidates,
            args.decision_chunk,
        )

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def close(self, more: Sequence[MigrationCore] = ()) -> None:
        """Close the training environment, ``more`` of them and the validation one."""
        for e in (self.env, *more, *([] if self.val_env is None else [self.val_env])):
            e.close()

    def finish(
        self,
        policy: Policy,
        best: BestActor,
        curves: list[dict[str, float]],
        command: str,
        algorithm: str,
        notes: str,
        *,
        more_envs: Sequence[MigrationCore] = (),
        record_chosen_update: bool = False,
    ) -> Path:
        """Close the environments (``more_envs`` too), write the curves, then the chosen actor with its manifest.

        The chosen actor is :class:`BestActor`'s (the final one without validation); its row's ``val_`` figures
        are the manifest's evaluation, and ``record_chosen_update`` adds the update it was chosen at.
        """
        actor_state, row = best.chosen(policy, curves)
        self.close(more_envs)
        args, env, out_dir = self.args, self.env, self.out_dir
        write_curves(out_dir, curves, self.baselines)
        params = env.params
        execution = str(row.get("execution", "argmax"))
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
                options={
                    "candidates": args.candidates,
                    "execution": execution,
                    "decision_chunk": args.decision_chunk,
                    "reach_sites": layout_sites_in_reach(self.scenario.layout),
                },
            )
        manifest = ModelManifest(
            name=out_dir.name,
            kind="migration",
            algorithm=algorithm,
            version="1",
            observation=obs_spec,
            action=act_spec,
            architecture=arch,
            scenario=params.scenario.name,
            scenario_param_hash=self.scenario.params.param_hash,
            scenario_inputs=model_inputs(params, "migration", arch.kind),
            command=command,
            seed=args.seed,
            evaluation={k: float(v) for k, v in row.items() if _chosen_key(k)},
            training={
                "args": asdict(args),
                "recordings": [describe_recording(r) for r in args.recordings],
                "val_recordings": [describe_recording(r) for r in args.val_recordings],
                "reward_stats": self.stats.as_dict(),
                "validation_baselines": self.baselines,
                **({"chosen_update": int(row["update"])} if record_chosen_update else {}),
                "train_seconds": round(self.elapsed_s(), 1),
                "predictor": args.predictor or "persistence",
            },
            notes=notes,
        )
        save_model(out_dir, manifest, actor_state)
        return out_dir


def start(
    args: Any, reward: Literal["shaped", "unshaped"] = "shaped", baseline_policies: Sequence[str] = ()
) -> MigrationRun:
    """Seed everything, fix the reward's moments and build the environments (in this order: a run repeats).

    The reward's z-scores use the moments of ``args.reference_policy`` on the training days (the first
    ``reference_ticks`` ticks); the validation window is ``val_ticks`` s from ``val_start_s`` of the validation
    days, on which the reference heuristic and ``baseline_policies`` are scored once.
    """
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
    env = MigrationCore(scenario, args.recordings, options, reward=reward, reward_stats=stats, seed=args.seed)
    val_env = None
    baselines: dict[str, dict[str, float]] = {}
    if args.val_recordings:
        val_options = EnvOptions(
            episode_s=float(args.val_ticks), warmup_s=args.warmup_s, starts_s=(args.val_start_s,),
            migration_policy=args.reference_policy, **variant,
        )  # fmt: skip
        val_env = MigrationCore(
            scenario, args.val_recordings, val_options, reward=reward, reward_stats=stats, seed=args.seed
        )
        p = env.params
        for name in dict.fromkeys((args.reference_policy, *baseline_policies)):
            heuristic = migration_policy(name, task=p.task, channel=p.channel, satellite=p.satellite)
            baselines[name] = validate(
                lambda b, h=heuristic: decide_migration(h, b.observation, b.observation.servers, b.host).target,
                val_env,
            )
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    return MigrationRun(args, started, rng, gen, scenario, options, reward, stats, env, val_env, baselines, out_dir)


def _chosen_key(key: str) -> bool:
    """A validation figure of the chosen execution (``val_...``), not of the other one (``val_sample_...``)."""
    return key.startswith("val_") and not key.startswith("val_sample_")


class BestActor:
    """The actor with the best validation reward so far, and the curve row it was chosen at."""

    def __init__(self) -> None:
        self.score: float | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.row: dict[str, Any] | None = None

    def validate(self, policy: Policy, val_env: MigrationCore, row: dict[str, float]) -> dict[str, float]:
        """Score the actor both ways on the validation window (into ``row``) and keep it if it is the best.

        Argmax (paper A Eq. 20) sends every vehicle that sees the same best server there at once; sampling
        keeps the mixed strategy the trainer learned. The chosen row's ``val_`` figures are its execution's.
        """
        row |= validate(policy, val_env, "argmax", "val_")
        row |= validate(policy, val_env, "sample", "val_sample_")
        for execution, prefix in (("argmax", "val_"), ("sample", "val_sample_")):
            score = row[f"{prefix}reward"]
            if self.score is None or score > self.score:
                chosen = {k: row[f"{prefix}{k[4:]}"] for k in row if _chosen_key(k)}
                self.score = score
                self.state = {k: v.clone() for k, v in policy.actor.state_dict().items()}
                self.row = {**row, **chosen, "execution": execution}
        return row

    def chosen(self, policy: Policy, curves: list[dict[str, float]]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The best actor and its row; without validation, the final actor and the last row."""
        if self.state is None or self.row is None:
            return {k: v.clone() for k, v in policy.actor.state_dict().items()}, curves[-1]
        return self.state, self.row
