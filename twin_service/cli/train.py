"""``twin-service train af-marl|afl-maddpg|sfl-ppo|ddqn``: paper B's trainers, registered on the CLI's ``train``
sub-app (:func:`register_offload_trainers`).

Each command trains on recorded days (``twin-service record``; days 1-6 train, day 7 validates) and writes a model
folder (weights, manifest, curves.csv, curves.png) that the bridge and the API serve by name.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

Recordings = Annotated[
    list[Path], typer.Option(help="Training days (repeat the option or separate with commas; convention: days 1-6).")
]
Validation = Annotated[list[Path] | None, typer.Option(help="Validation days the trained actor is scored on (day 7).")]
Out = Annotated[Path, typer.Option(help="Model folder to write, e.g. models/af-marl-city (its name is the model's).")]
Scenario = Annotated[str | None, typer.Option(help="Scenario folder or name (default: the recordings').")]
Seed = Annotated[int, typer.Option(help="Seed of everything random: a run is repeatable for a seed.")]
Episodes = Annotated[int, typer.Option(help="Episodes to train.")]
EpisodeS = Annotated[float, typer.Option(help="Seconds of a recorded day per episode.")]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Scenario parameter override section.key=value (repeatable).", show_default=False),
]
Hps = Annotated[
    list[str] | None,
    typer.Option(
        "--hp", help="Any trainer argument NAME=VALUE (repeatable), e.g. --hp batch_size=32.", show_default=False
    ),
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]
Force = Annotated[bool, typer.Option("--force", help="Replace the model folder --out if it exists.")]


def _fail(message: str) -> None:
    from twin_service.cli.options import one_line

    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(2)


def _files(values: list[Path] | None) -> list[Path]:
    files = [Path(v.strip()) for value in values or [] for v in str(value).split(",") if v.strip()]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        _fail(f"no such recording: {', '.join(missing)} (record days with ./scripts/record_days.sh)")
    return files


def _parse_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()


def _overrides(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            _fail(f"--set {pair!r}: expected section.key=value, e.g. offload.deadline_s=[0.5, 0.5]")
        found.setdefault(section, {})[name] = _parse_value(raw)
    return found


def _build(cls: type, base: dict[str, Any], hps: list[str] | None) -> Any:
    """The trainer's argument dataclass from the CLI options and ``--hp NAME=VALUE`` pairs (checked by type)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = dict(base)
    given: set[str] = set()
    for pair in hps or []:
        name, sep, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            _fail(f"--hp {pair!r}: expected NAME=VALUE with NAME one of {sorted(known)}")
        value = _parse_value(raw)
        default = known[name].default
        if isinstance(default, bool) and not isinstance(value, bool):
            _fail(f"--hp {name}: expected true or false, got {raw!r}")
        if isinstance(default, int | float) and not isinstance(default, bool):
            if not isinstance(value, int | float) or isinstance(value, bool):
                _fail(f"--hp {name}: expected a number, got {raw!r}")
            if isinstance(default, int) and not (math.isfinite(value) and float(value).is_integer()):
                _fail(f"--hp {name}: expected an integer, got {raw.strip()!r}")
            value = type(default)(value)
        values[name] = value
        given.add(name)
    try:
        args = cls(**values)
    except TypeError as exc:
        _fail(str(exc))
    from twin_service.option_ranges import hyperparameter_problems

    problems = hyperparameter_problems(args)
    if problems:
        _fail("; ".join(f"--hp {p}" if p.split("=")[0] in given else p for p in problems))
    return args


def _common(
    recordings, out, validation, scenario, seed, episodes, episode_s, set_, no_progress, force
) -> dict[str, Any]:  # noqa: ANN001, E501
    import shlex
    import sys

    from twin_service.cli import check_model_out

    check_model_out(out, force)  # before any work: the name, and no model replaced without --force
    return {
        "recordings": _files(recordings),
        "out": out,
        "validation": _files(validation),
        "scenario": scenario,
        "seed": seed,
        "episodes": episodes,
        "episode_s": episode_s,
        "overrides": _overrides(set_),
        "progress": not no_progress,
        "command": " ".join(shlex.quote(a) for a in ["twin-service", *sys.argv[1:]]),
    }


def _run(train_fn, args, force: bool = False) -> None:  # noqa: ANN001
    """Train into a temporary folder beside ``args.out``, which becomes ``args.out`` only once the model is whole."""
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.files import atomic_folder, relocate_paths

    out = Path(args.out)
    try:
        with atomic_folder(out, force=force, what="model") as folder:
            train_fn(dataclasses.replace(args, out=folder))
            relocate_paths(folder, folder, out)
    except KeyboardInterrupt:
        typer.echo(f"error: interrupted: no model written to {out} (the run's partial output was removed)", err=True)
        raise typer.Exit(130) from None
    except (ScenarioError, RecordingError, ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {out} (weights, manifest, curves.csv, curves.png)")


def train_af_marl(
    recordings: Recordings,
    out: Out,
    validation: Validation = None,
    scenario: Scenario = None,
    seed: Seed = 1,
    episodes: Episodes = 30,
    episode_s: EpisodeS = 300.0,
    federation: Annotated[
        str, typer.Option(help="inprocess (default: fast, deterministic) or flower (SuperLink + SuperNodes).")
    ] = "inprocess",
    superlink: Annotated[
        str | None,
        typer.Option(help="With --federation flower: a running SuperLink HOST:PORT; default starts one on localhost."),
    ] = None,
    supernodes: Annotated[int, typer.Option(help="SuperNodes started on localhost (--federation flower).")] = 2,
    set_: Sets = None,
    hp: Hps = None,
    no_progress: NoProgress = False,
    force: Force = False,
) -> None:
    """AF-MARL (paper B): TD3 actor with a CVAE context, semi-synchronous federated learning (AdFL)."""
    from twin_service.learn import af_marl

    if federation not in ("inprocess", "flower"):
        _fail(f"--federation {federation!r}: choose inprocess or flower")
    base = _common(recordings, out, validation, scenario, seed, episodes, episode_s, set_, no_progress, force)
    args = _build(af_marl.AfMarlArgs, {**base, "federation": federation}, hp)
    if federation == "flower":
        from twin_service.federated.flower_run import FlowerUnavailable, run_on_flower

        try:
            _run(lambda a: run_on_flower(a, superlink=superlink, supernodes=supernodes), args, force)
        except (FlowerUnavailable, RuntimeError) as exc:
            _fail(str(exc))
        return
    _run(af_marl.train, args, force)


def train_afl_maddpg(
    recordings: Recordings,
    out: Out,
    validation: Validation = None,
    scenario: Scenario = None,
    seed: Seed = 1,
    episodes: Episodes = 30,
    episode_s: EpisodeS = 300.0,
    set_: Sets = None,
    hp: Hps = None,
    no_progress: NoProgress = False,
    force: Force = False,
) -> None:
    """Baseline AFL-MADDPG: MADDPG (centralised critic) with asynchronous federated learning."""
    from twin_service.learn import afl_maddpg

    base = _common(recordings, out, validation, scenario, seed, episodes, episode_s, set_, no_progress, force)
    _run(afl_maddpg.train, _build(afl_maddpg.AflMaddpgArgs, base, hp), force)


def train_sfl_ppo(
    recordings: Recordings,
    out: Out,
    validation: Validation = None,
    scenario: Scenario = None,
    seed: Seed = 1,
    episodes: Episodes = 30,
    episode_s: EpisodeS = 300.0,
    set_: Sets = None,
    hp: Hps = None,
    no_progress: NoProgress = False,
    force: Force = False,
) -> None:
    """Baseline SFL-PPO: PPO with synchronous federated learning."""
    from twin_service.learn import sfl_ppo

    base = _common(recordings, out, validation, scenario, seed, episodes, episode_s, set_, no_progress, force)
    _run(sfl_ppo.train, _build(sfl_ppo.SflPpoArgs, base, hp), force)


def train_ddqn(
    recordings: Recordings,
    out: Out,
    validation: Validation = None,
    scenario: Scenario = None,
    seed: Seed = 1,
    episodes: Episodes = 30,
    episode_s: EpisodeS = 300.0,
    set_: Sets = None,
    hp: Hps = None,
    no_progress: NoProgress = False,
    force: Force = False,
) -> None:
    """Baseline DDQN: one Q-network over discretised rho, no federation."""
    from twin_service.learn import ddqn

    base = _common(recordings, out, validation, scenario, seed, episodes, episode_s, set_, no_progress, force)
    _run(ddqn.train, _build(ddqn.DdqnArgs, base, hp), force)


def register_offload_trainers(train_app: typer.Typer) -> None:
    """Add paper B's trainers to the CLI's ``train`` sub-app."""
    train_app.command("af-marl")(train_af_marl)
    train_app.command("afl-maddpg")(train_afl_maddpg)
    train_app.command("sfl-ppo")(train_sfl_ppo)
    train_app.command("ddqn")(train_ddqn)
