"""``twin-service train ...``: the trainers, on recorded days (``twin-service record``; days 1-6 train, day 7
validates).

Paper B's offloading trainers (``af-marl``, ``afl-maddpg``, ``sfl-ppo``, ``ddqn``) and paper A's migration
trainers (``dm-mappo``, ``masac``). Each writes a model folder (weights, manifest, curves.csv, curves.png) that the
bridge and the API serve by name; the folder appears only once the model is whole. The options each family shares
are declared once (:data:`~twin_service.cli.options.OFFLOAD_TRAINER_OPTIONS`,
:data:`~twin_service.cli.options.MIGRATION_TRAINER_OPTIONS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from twin_service.cli.options import (
    MIGRATION_TRAINER_OPTIONS,
    MIGRATION_TRAINER_ORDER,
    OFFLOAD_TRAINER_OPTIONS,
    OFFLOAD_TRAINER_ORDER,
    check_model_out,
    check_predictor,
    existing_files,
    fail,
    load_settings,
    overrides,
    split_list,
    trainer_args,
    with_options,
)
from twin_service.cli.root import train_app

offload_options = with_options(OFFLOAD_TRAINER_OPTIONS, OFFLOAD_TRAINER_ORDER)
migration_options = with_options(MIGRATION_TRAINER_OPTIONS, MIGRATION_TRAINER_ORDER)


@contextmanager
def _model_folder(out: Path, force: bool, errors: tuple[type[Exception], ...]) -> Iterator[Path]:
    """A temporary folder beside ``out`` to train into, which becomes ``out`` only once the model is whole; an
    interrupt or one of ``errors`` is one line and a non-zero exit, and leaves no folder behind."""
    from twin_service.files import atomic_folder, relocate_paths

    try:
        with atomic_folder(out, force=force, what="model") as folder:
            yield folder
            relocate_paths(folder, folder, out)
    except KeyboardInterrupt:
        fail(f"interrupted: no model written to {out} (the run's partial output was removed)", code=130)
    except errors as exc:
        fail(str(exc))


# ---- paper B: offloading -----------------------------------------------------------------------------------------
def _offload_args(args_type: type, extra: dict[str, Any], **options: Any) -> Any:
    """The trainer's arguments from the options all offloading trainers take (checked before any work)."""
    import shlex
    import sys

    out, force = options["out"], options["force"]
    check_model_out(out, force)  # before any work: the name, and no model replaced without --force
    base = {
        "recordings": existing_files(options["recordings"]),
        "out": out,
        "validation": existing_files(options["validation"]),
        "scenario": options["scenario"],
        "seed": options["seed"],
        "episodes": options["episodes"],
        "episode_s": options["episode_s"],
        "overrides": overrides(options["set_"], "offload.deadline_s=[0.5, 0.5]"),
        "progress": not options["no_progress"],
        "command": " ".join(shlex.quote(a) for a in ["twin-service", *sys.argv[1:]]),
    }
    return trainer_args(args_type, {**base, **extra}, options["hp"])


def _train_offload(train_fn: Callable[[Any], Any], args: Any, force: bool = False) -> None:
    """Train into a temporary folder beside ``args.out``, which becomes ``args.out`` only once the model is whole."""
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError

    out = Path(args.out)
    with _model_folder(out, force, (ScenarioError, RecordingError, ValueError, OSError)) as folder:
        train_fn(dataclasses.replace(args, out=folder))
    typer.echo(f"wrote {out} (weights, manifest, curves.csv, curves.png)")


@train_app.command("af-marl")
@offload_options
def train_af_marl(
    federation: Annotated[
        str, typer.Option(help="inprocess (default: fast, deterministic) or flower (SuperLink + SuperNodes).")
    ] = "inprocess",
    superlink: Annotated[
        str | None,
        typer.Option(help="With --federation flower: a running SuperLink HOST:PORT; default starts one on localhost."),
    ] = None,
    supernodes: Annotated[int, typer.Option(help="SuperNodes started on localhost (--federation flower).")] = 2,
    **options: Any,
) -> None:
    """AF-MARL (paper B): TD3 actor with a CVAE context, semi-synchronous federated learning (AdFL)."""
    from twin_service.learn import af_marl

    if federation not in ("inprocess", "flower"):
        fail(f"--federation {federation!r}: choose inprocess or flower")
    args = _offload_args(af_marl.AfMarlArgs, {"federation": federation}, **options)
    if federation == "flower":
        from twin_service.flower.run import FlowerUnavailable, run_on_flower

        try:
            _train_offload(
                lambda a: run_on_flower(a, superlink=superlink, supernodes=supernodes), args, options["force"]
            )
        except (FlowerUnavailable, RuntimeError) as exc:
            fail(str(exc))
        return
    _train_offload(af_marl.train, args, options["force"])


def _offload_baseline(name: str, trainer: Callable[[], tuple[Callable[[Any], Any], type]], doc: str) -> None:
    """Register ``train NAME``: a baseline that takes only the shared options; ``trainer()`` imports its training
    function and argument type (the learning packages load only when a command needs them)."""

    def command(**options: Any) -> None:
        train, args_type = trainer()
        _train_offload(train, _offload_args(args_type, {}, **options), options["force"])

    command.__name__ = command.__qualname__ = f"train_{name.replace('-', '_')}"
    command.__doc__ = doc
    train_app.command(name)(offload_options(command))


def _afl_maddpg() -> tuple[Callable[[Any], Any], type]:
    from twin_service.learn import afl_maddpg

    return afl_maddpg.train, afl_maddpg.AflMaddpgArgs


def _sfl_ppo() -> tuple[Callable[[Any], Any], type]:
    from twin_service.learn import sfl_ppo

    return sfl_ppo.train, sfl_ppo.SflPpoArgs


def _ddqn() -> tuple[Callable[[Any], Any], type]:
    from twin_service.learn import ddqn

    return ddqn.train, ddqn.DdqnArgs


_offload_baseline(
    "afl-maddpg", _afl_maddpg, "Baseline AFL-MADDPG: MADDPG (centralised critic) with asynchronous federated learning."
)
_offload_baseline("sfl-ppo", _sfl_ppo, "Baseline SFL-PPO: PPO with synchronous federated learning.")
_offload_baseline("ddqn", _ddqn, "Baseline DDQN: one Q-network over discretised rho, no federation.")


# ---- paper A: migration ------------------------------------------------------------------------------------------
@train_app.command("dm-mappo")
@migration_options
def train_dm_mappo(
    out: Annotated[Path, typer.Option(help="Model folder, e.g. models/dm-mappo-city (its name is the model's).")],
    arch: Annotated[
        str, typer.Option(help="per-server (ours: any layout) or paper (paper A's MLP over o_v, one layout).")
    ] = "per-server",
    seed: Annotated[int, typer.Option(help="Seed of the networks, sampling and episodes.")] = 1,
    total_ticks: Annotated[int, typer.Option(help="Environment ticks of training.")] = 12_288,
    rollout_ticks: Annotated[int, typer.Option(help="Ticks per PPO update.")] = 64,
    no_mask: Annotated[
        bool, typer.Option("--no-mask", help="Train without the dynamic mask of Eq. 23 (paper A Fig. 9).")
    ] = False,
    **options: Any,
) -> None:
    """DM-MAPPO (paper A): masked multi-agent PPO with a centralised critic, on recorded days."""
    from twin_service.learn.dm_mappo import Args, train

    _train_migration(
        "dm-mappo", Args, train, {"rollout_ticks": rollout_ticks},
        out=out, arch=arch, seed=seed, total_ticks=total_ticks, no_mask=no_mask, **options,
    )  # fmt: skip


@train_app.command("masac")
@migration_options
def train_masac(
    out: Annotated[Path, typer.Option(help="Model folder, e.g. models/masac-city (its name is the model's).")],
    arch: Annotated[str, typer.Option(help="per-server or paper (as for dm-mappo).")] = "per-server",
    seed: Annotated[int, typer.Option(help="Seed of the networks, sampling, replay and episodes.")] = 1,
    total_ticks: Annotated[int, typer.Option(help="Environment ticks of training.")] = 8_192,
    no_mask: Annotated[bool, typer.Option("--no-mask", help="Train without the dynamic mask of Eq. 23.")] = False,
    **options: Any,
) -> None:
    """MASAC (paper A's learned baseline): discrete soft actor-critic with twin critics, on recorded days."""
    from twin_service.learn.masac import Args, train

    _train_migration(
        "masac", Args, train, {"val_every": 512},
        out=out, arch=arch, seed=seed, total_ticks=total_ticks, no_mask=no_mask, **options,
    )  # fmt: skip


def _train_migration(
    algorithm: str, args_type: type, train: Callable[..., Any], extra: dict[str, object], **options: Any
) -> None:
    """Check the options of a migration trainer (before any work), then train with a progress bar."""
    import sys

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.policies import PolicyError

    out, force, predictor, hps = options["out"], options["force"], options["predictor"], options["hp"]
    if options["arch"] not in ("per-server", "paper"):
        fail(f"unknown --arch {options['arch']!r}; choose per-server or paper")
    check_model_out(out, force)
    check_predictor(predictor)
    base = dict(
        recordings=tuple(split_list([str(r) for r in options["recordings"]])),
        val_recordings=tuple(split_list([str(r) for r in options["val_recordings"] or []])),
        out=str(out),
        scenario=options["scenario"],
        arch=options["arch"],
        seed=options["seed"],
        total_ticks=options["total_ticks"],
        episode_s=options["episode_s"],
        dynamic_mask=not options["no_mask"],
        predictor=None if predictor == "persistence" else predictor,
        models_dir=str(load_settings().models_dir),
        overrides=overrides(options["set_"], "task.migration_size_mb=80"),
        no_uavs=options["no_uavs"],
        no_satellite=options["no_satellite"],
        **extra,
    )
    fixed = {"recordings", "val_recordings", "out", "scenario", "models_dir", "overrides"}
    if any(pair.partition("=")[0].strip().replace("-", "_") in fixed for pair in hps or []):
        fail(f"--hp cannot set {', '.join(sorted(fixed))}: use their own options")
    args = trainer_args(args_type, base, hps)  # the ranges checked too (option_ranges)
    rollout = getattr(args, "rollout_ticks", None)  # as --rollout-ticks or --hp gave it
    if rollout is not None and rollout > args.total_ticks:
        fail(f"--rollout-ticks {rollout} is more than --total-ticks {args.total_ticks}: not one whole update")
    command = "twin-service " + " ".join(sys.argv[1:])
    errors = (ScenarioError, RecordingError, PolicyError, ValueError, OSError)
    with (
        _model_folder(out, force, errors) as folder,
        Progress(TextColumn(algorithm), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn()) as bar,
    ):
        args = dataclasses.replace(args, out=str(folder))
        task = bar.add_task("train", total=None, info="reference moments")

        def progress(done: int, total: int, row: dict[str, float]) -> None:
            val = f", val reward {row['val_reward']:.3f}" if "val_reward" in row else ""
            bar.update(
                task,
                total=total,
                completed=done,
                info=f"reward {row['reward_mean']:.3f}, latency {row['latency_mean_s']:.3f} s, "
                f"entropy {row['entropy']:.2f}{val}",
            )

        train(args, command, progress)
    typer.echo(f"wrote {out} (manifest.json, weights.safetensors, curves.csv, curves.png)")
