"""The loop every paper B offloading trainer runs (AF-MARL and its baselines AFL-MADDPG, SFL-PPO, DDQN), once.

A trainer subclasses :class:`OffloadTrainer` and writes only what is its own: its networks (:meth:`~OffloadTrainer.
build`), how it acts and learns in a tick (:meth:`~OffloadTrainer.tick`: its update), what it logs per episode, what
its checkpoint holds beyond networks, optimisers and generators, and the actor it serves. The loop owns the rest, in
an order that fixes every random draw, so that a model is reproduced bit for bit by its manifest's command on the
code that trained it (AF-MARL's models committed before its hand-written grouped pass, ``af_marl_grouped``, retrain to
the same maths with other float rounding: not byte for byte):

1. seed torch (one thread: repeatable bit for bit) and numpy with ``args.seed``; open the recorded days;
2. :meth:`~OffloadTrainer.build`: networks (initialised from torch's global generator), optimisers, replay buffer;
3. go on from the checkpoint of an interrupted run with the same arguments, if there is one
   (:mod:`twin_service.learn.checkpoint`);
4. every episode: a window of a recorded day (``OffloadCore.reset``), :meth:`~OffloadTrainer.tick` until it ends,
   its row in curves.csv, a checkpoint;
5. curves.csv and curves.png, the served actor scored on the validation days (day 7), weights and manifest written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from twin_service.envs.offload import OffloadBatch, OffloadStep
from twin_service.envs.sim import EnvOptions
from twin_service.learn.checkpoint import Checkpoint, Checkpointer, Generator, capture, restore
from twin_service.learn.offload_common import (
    CurveLog,
    EpisodeLog,
    PhaseTimer,
    Timer,
    args_dict,
    keep_freed_memory,
    make_core,
    plot_curves,
    seed_everything,
)
from twin_service.learn.validate import save_offload_model, validate_offload


@dataclass
class OffloadRunArgs:
    """What every offloading trainer's run depends on besides its algorithm (the fields the loop reads): the data,
    the episodes and the run's bookkeeping. Each trainer's ``Args`` adds its own hyperparameters."""

    recordings: list[Path]
    """Training days (the project's convention: days 1-6)."""
    out: Path
    """Model folder to write (its name is the model's name)."""
    validation: list[Path] = field(default_factory=list)
    """Days to score the trained actor on (day 7); none skips it."""
    scenario: str | None = None
    """Scenario folder; default: the one the recordings were made on."""
    seed: int = 1
    episodes: int = 30
    episode_s: float = 300.0
    """An episode is this long a window of a recorded day (the paper never says)."""
    warmup_s: float = 30.0
    overrides: dict = field(default_factory=dict)
    """Scenario parameter overrides (``{"offload": {"deadline_s": [0.5, 0.5]}}``) for the sweeps."""
    threads: int = 1
    """torch threads (1: repeatable bit for bit)."""
    progress: bool = True
    command: str = ""
    """The command line recorded in the manifest."""
    checkpoint: Path | None = None
    """Folder of the resumable state, saved after every episode (default ``<out>.checkpoint``; removed at the end)."""
    resume: bool = True
    """Go on from the checkpoint of an interrupted run with the same arguments, if there is one."""


A = TypeVar("A", bound=OffloadRunArgs)


@dataclass
class Served:
    """The actor a trainer serves: its weights, how it maps observations to rho, and its manifest's architecture."""

    weights: dict[str, torch.Tensor]
    act: Callable[[torch.Tensor], torch.Tensor] | torch.nn.Module
    kind: str
    notes: str
    options: dict[str, Any] = field(default_factory=dict)
    hidden: tuple[int, ...] | None = None
    """The actor's hidden widths in the manifest (None: :func:`save_offload_model`'s default)."""


def served_mlp(actor: torch.nn.Module, hidden: int, notes: str) -> Served:
    """A plain ``mlp`` actor served as ``rho = sigmoid(actor(o))`` (AFL-MADDPG's actor, SFL-PPO's policy mean)."""

    def act(obs: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(actor(obs))[:, 0]

    return Served(actor.state_dict(), act, "mlp", notes, {}, (hidden, hidden))


class OffloadTrainer(Generic[A]):
    """One run of an offloading trainer (module docstring); :meth:`run` trains and writes the model folder.

    After ``__init__``: ``args``, ``timer``, ``gen`` (torch), ``rng`` (numpy), ``core`` (the recorded days),
    ``phase`` (wall time per phase) and whatever :meth:`build` made; ``modules`` and ``optimizers`` (by name) are
    what the checkpoint saves of them.
    """

    algorithm: ClassVar[str]
    """Its name in the manifest and on the progress bar."""
    plot_title: ClassVar[str]
    """curves.png's title, before the model's name."""
    curve_columns: ClassVar[tuple[str, ...]]
    """The curves plotted (one panel each)."""

    def __init__(self, args: A) -> None:
        self.args = args
        self.timer = Timer()
        self.gen = seed_everything(args.seed, args.threads)
        keep_freed_memory()  # a tick's tensors reuse freed memory instead of faulting in fresh pages
        self.rng = np.random.default_rng(args.seed)
        options = EnvOptions(episode_s=args.episode_s, warmup_s=args.warmup_s, overrides=args.overrides)
        self.core = make_core(args.scenario, args.recordings, options, args.seed)
        self.phase = PhaseTimer()
        self.modules: dict[str, torch.nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.build()
        self.curves = CurveLog()
        self.checkpoints = Checkpointer(args.out, args.checkpoint, args.resume, args_dict(args))

    # --- what a trainer writes -----------------------------------------------------------------------------------

    def build(self) -> None:
        """Networks, optimisers and buffers; fill ``self.modules`` and ``self.optimizers`` for the checkpoint."""
        raise NotImplementedError

    def begin_episode(self, episode: int, batch: OffloadBatch) -> dict[str, float]:
        """Reset the episode's sums; returns its schedule (exploration), logged before the episode's figures."""
        return {}

    def tick(self, batch: OffloadBatch) -> OffloadStep:
        """Act on ``batch``, step the world (``self.core.step``), store and learn; returns the step."""
        raise NotImplementedError

    def end_episode(self, row: dict[str, Any], batch: OffloadBatch, log: EpisodeLog) -> dict[str, Any]:
        """The episode's row of curves.csv: ``row`` (episode, schedule, the episode log) and the trainer's figures."""
        raise NotImplementedError

    def generators(self) -> dict[str, Generator]:
        """The random generators a checkpoint saves."""
        return {"torch": self.gen, "numpy": self.rng, "env": self.core.rng}

    def state(self) -> dict[str, Any]:
        """JSON-able counters the rest of the run depends on (saved before the curves)."""
        return {}

    def save_state(self, ck: Checkpoint) -> None:
        """Put what else the run depends on (buffers, uploads in flight) into the episode's checkpoint."""

    def load_state(self, ck: Checkpoint) -> None:
        """Restore what :meth:`state` and :meth:`save_state` saved (modules, optimisers and generators are)."""

    def served(self) -> Served:
        raise NotImplementedError

    def evaluation_extras(self) -> dict[str, float]:
        """Figures of the run recorded in the manifest's evaluation beside the validation scores."""
        return {}

    # --- the loop ------------------------------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """Everything the rest of the run depends on, at the end of an episode."""
        state = self.state()
        ck = capture(
            self.modules,
            self.optimizers,
            self.generators(),
            **state,
            curves=self.curves.rows,
            wall_s=self.timer.elapsed_s,
        )
        self.save_state(ck)
        return ck

    def resume(self) -> int:
        """Load the checkpoint of an interrupted run, if any; returns the first episode to run."""
        found = self.checkpoints.found
        if found is not None:
            restore(found, self.modules, self.optimizers, self.generators())
            self.load_state(found)
            self.curves = CurveLog(found.state["curves"])
            self.timer.resume_from(float(found.state["wall_s"]))
        return self.checkpoints.start_episode

    def run(self) -> Path:
        """Train, then write the model folder (weights, manifest, curves); returns it."""
        args, core = self.args, self.core
        start = self.resume()
        bar = tqdm(total=args.episodes, initial=start, desc=self.algorithm, unit="episode", disable=not args.progress)
        for episode in range(start, args.episodes):
            with self.phase("reset"):
                batch = core.reset()
            log = EpisodeLog()
            schedule = self.begin_episode(episode, batch)
            while not core.done:
                step = self.tick(batch)
                log.add(step)
                batch = step.next
            row = self.end_episode({"episode": episode, **schedule, **log.row()}, batch, log)
            self.curves.add(row)
            self.checkpoints.save(self.checkpoint(), episode + 1, {"curves.csv": self.curves.csv()})
            bar.set_postfix(cost=f"{row['cost']:.3f}", success=f"{row['success']:.3f}")
            bar.update()
        bar.close()
        core.close()
        self.curves.write(args.out / "curves.csv")
        title = f"{self.plot_title} ({args.out.name})"
        plot_curves(self.curves.rows, list(self.curve_columns), args.out / "curves.png", title)
        served = self.served()
        evaluation = validate_offload(
            served.act, args.scenario, args.validation, args.episode_s, args.warmup_s, args.seed, args.overrides
        )
        evaluation["train_wall_s"] = round(self.timer.elapsed_s, 1)
        evaluation |= self.evaluation_extras()
        save_offload_model(
            args.out,
            served.weights,
            algorithm=self.algorithm,
            kind=served.kind,
            options=served.options,
            scenario=core.sim.scenario,
            args=args_dict(args),
            command=args.command,
            seed=args.seed,
            evaluation=evaluation,
            notes=served.notes,
            **({} if served.hidden is None else {"hidden": served.hidden}),
        )
        self.checkpoints.finish()
        return args.out
