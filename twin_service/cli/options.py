"""How every ``twin-service`` command takes and checks its options: one line on stderr and exit 2, before any work.

The one place for the CLI's option plumbing:

* :class:`CheckedTyper` is ``typer.Typer`` whose commands are :class:`CheckedCommand`: a command that turns a usage
  error (an unknown option, a value that is not a number, a missing option) into one line,
  ``error: Invalid value for '--seed': ... (twin-service run --help)``, instead of a box of text, and checks every
  numeric option against :mod:`twin_service.option_ranges` (the one table of ranges) once the command line is
  parsed and before the command runs, and shows each option's range in ``--help``;
* :func:`fail` (one line, exit 2) and the parsers the commands share: lists of files (``--recordings a,b``),
  ``--set section.key=value``, ``--hp NAME=VALUE`` (:func:`trainer_args`);
* the checks made before any work: a model folder (:func:`check_model_out`), a workload predictor, the models a
  run or the API serve, an output file, a key prefix, a what-if events file;
* the options several commands take (``Predictor``, ``ScenarioSets``, ...) and :func:`with_options`, which gives
  commands one set of options in the order their ``--help`` lists them.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperCommand

from twin_service.option_ranges import option_bound, option_problems

try:  # typer >= 0.20 vendors click; older typer uses click itself
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[no-redef]

EXIT_USAGE = 2

Command = TypeVar("Command", bound=Callable[..., Any])


def one_line(message: str) -> str:
    """A message on one line: its lines joined, runs of blanks squeezed (torch and pydantic write several)."""
    return " ".join(message.split())


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print a one-line error to stderr and exit non-zero (a message of several lines is joined into one)."""
    typer.secho(f"error: {one_line(message)}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _command_name(ctx: Any) -> str:
    """``train dm-mappo`` from the context's ``twin-service train dm-mappo``."""
    return " ".join(ctx.command_path.split()[1:])


class CheckedCommand(TyperCommand):
    """A typer command whose option errors are one line and whose numeric options are range-checked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ranges_shown = False

    def _show_ranges(self, ctx: Any) -> None:
        if self._ranges_shown:
            return
        self._ranges_shown = True
        command = _command_name(ctx)
        for param in self.params:
            bound = option_bound(command, param.name or "")
            help_text = getattr(param, "help", None)
            if bound is not None and help_text is not None and "[range" not in help_text:
                param.help = f"{help_text} [range: {bound.describe()}]"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        self._show_ranges(ctx)
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            fail(f"{exc.format_message()} ({ctx.command_path} --help)")

    def invoke(self, ctx: Any) -> Any:
        problems = option_problems(_command_name(ctx), ctx.params)
        if problems:
            fail("; ".join(problems))
        return super().invoke(ctx)


class CheckedTyper(typer.Typer):
    """``typer.Typer`` whose commands are :class:`CheckedCommand` unless told otherwise."""

    def command(self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any) -> Any:
        return super().command(name, cls=cls or CheckedCommand, **kwargs)


def with_options(shared: Sequence[inspect.Parameter], order: Sequence[str]) -> Callable[[Command], Command]:
    """Give a command the ``shared`` options beside its own, listed in ``--help`` in the order of ``order``.

    The command declares its own options as usual and takes the shared ones as ``**shared`` (a dict by name), so
    that commands that take the same options (the trainers) declare them once.
    """
    by_name = {p.name: p for p in shared}

    def decorate(command: Command) -> Command:
        own = {p.name: p for p in inspect.signature(command, eval_str=True).parameters.values()}
        own = {name: p for name, p in own.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
        unplaced = (set(own) | set(by_name)) - set(order)
        if unplaced:
            raise TypeError(f"{command.__name__}: options {sorted(unplaced)} have no place in the order given")
        params = [(own.get(name) or by_name[name]) for name in order if name in own or name in by_name]
        command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params], return_annotation=None
        )
        return command

    return decorate


def option(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    """One option of a shared set (:func:`with_options`): ``annotation`` is ``Annotated[type, typer.Option(...)]``."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


# ---- options several commands take ---------------------------------------------------------------------------
Predictor = Annotated[
    str, typer.Option(help="Workload predictor for the observation and mask: persistence or a model name.")
]
ScenarioSets = Annotated[
    list[str] | None,
    typer.Option("--set", help="Change a scenario parameter: section.key=value (repeatable).", show_default=False),
]
Begin = Annotated[float | None, typer.Option(help="Start at this sim time, s (default: the scenario's).")]
Scale = Annotated[float, typer.Option(help="SUMO's demand scale (--scale): 2 doubles the traffic.")]
ForceModel = Annotated[bool, typer.Option("--force", help="Replace the model folder --out if it exists.")]
Hps = Annotated[
    list[str] | None,
    typer.Option(
        "--hp", help="Any trainer argument NAME=VALUE (repeatable), e.g. --hp batch_size=32.", show_default=False
    ),
]


# ---- the trainers' options (``twin-service train ...``), each set shared by its trainers ---------------------
MIGRATION_TRAINER_OPTIONS = (
    option(
        "recordings",
        Annotated[
            list[Path], typer.Option(help="Training days (repeat the option or separate with commas): days 1-6.")
        ],
    ),
    option(
        "val_recordings",
        Annotated[list[Path] | None, typer.Option(help="Validation day(s): the best actor on them is kept (day 7).")],
        None,
    ),
    option("scenario", Annotated[str | None, typer.Option(help="Scenario (default: the recordings').")], None),
    option("episode_s", Annotated[float, typer.Option(help="Episode length (a window of a day), s.")], 600.0),
    option("predictor", Predictor, "persistence"),
    option("no_uavs", Annotated[bool, typer.Option("--no-uavs", help="Every UAV out of service.")], False),
    option(
        "no_satellite", Annotated[bool, typer.Option("--no-satellite", help="The satellite out of service.")], False
    ),
    option("set_", ScenarioSets, None),
    option("force", ForceModel, False),
    option(
        "hp",
        Annotated[
            list[str] | None,
            typer.Option(
                "--hp",
                help="Any trainer argument NAME=VALUE (repeatable), e.g. --hp val_ticks=120.",
                show_default=False,
            ),
        ],
        None,
    ),
)
"""What DM-MAPPO and MASAC (paper A) both take; each adds its own --out, --arch, --seed, --total-ticks, --no-mask."""
MIGRATION_TRAINER_ORDER = (
    "recordings", "out", "val_recordings", "scenario", "arch", "seed", "total_ticks", "rollout_ticks", "episode_s",
    "no_mask", "predictor", "no_uavs", "no_satellite", "set_", "force", "hp",
)  # fmt: skip

OFFLOAD_TRAINER_OPTIONS = (
    option(
        "recordings",
        Annotated[
            list[Path],
            typer.Option(help="Training days (repeat the option or separate with commas; convention: days 1-6)."),
        ],
    ),
    option(
        "out",
        Annotated[
            Path, typer.Option(help="Model folder to write, e.g. models/af-marl-city (its name is the model's).")
        ],
    ),
    option(
        "validation",
        Annotated[list[Path] | None, typer.Option(help="Validation days the trained actor is scored on (day 7).")],
        None,
    ),
    option(
        "scenario",
        Annotated[str | None, typer.Option(help="Scenario folder or name (default: the recordings').")],
        None,
    ),
    option("seed", Annotated[int, typer.Option(help="Seed of everything random: a run is repeatable for a seed.")], 1),
    option("episodes", Annotated[int, typer.Option(help="Episodes to train.")], 30),
    option("episode_s", Annotated[float, typer.Option(help="Seconds of a recorded day per episode.")], 300.0),
    option(
        "set_",
        Annotated[
            list[str] | None,
            typer.Option(
                "--set", help="Scenario parameter override section.key=value (repeatable).", show_default=False
            ),
        ],
        None,
    ),
    option("hp", Hps, None),
    option("no_progress", Annotated[bool, typer.Option("--no-progress", help="No progress bar.")], False),
    option("force", ForceModel, False),
)
"""What paper B's trainers (AF-MARL and its baselines) all take."""
OFFLOAD_TRAINER_ORDER = (
    "recordings", "out", "validation", "scenario", "seed", "episodes", "episode_s",
    "federation", "superlink", "supernodes",  # af-marl's own
    "set_", "hp", "no_progress", "force",
)  # fmt: skip


# ---- parsing -----------------------------------------------------------------------------------------------------
def split_list(values: list[str] | None) -> list[str]:
    """Repeated options and comma-separated lists alike: ``--x a --x b,c`` -> ``[a, b, c]``."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def paths(values: list[Path] | None) -> list[Path]:
    """``--recordings a.npz,b.npz --recordings c.npz`` -> the three paths."""
    return [Path(p) for p in split_list([str(v) for v in values or []])]


def existing_files(values: list[Path] | None) -> list[Path]:
    """:func:`paths`, each of which must be a file (else exit 2 naming the missing ones)."""
    files = paths(values)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        fail(f"no such recording: {', '.join(missing)} (record days with ./scripts/record_days.sh)")
    return files


def parse_value(raw: str) -> Any:
    """A value as TOML reads it (80, 2.5, [2.5e9, 3.5e9], true), else the text itself."""
    try:
        return tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return raw.strip()


def overrides(pairs: list[str] | None, example: str) -> dict[str, dict[str, Any]]:
    """``--set section.key=value`` pairs into a nested dict (``example`` is shown when a pair is malformed)."""
    found: dict[str, dict[str, Any]] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            fail(f"--set {pair!r}: expected section.key=value, e.g. {example}")
        found.setdefault(section, {})[name] = parse_value(raw)
    return found


def trainer_args(cls: type, base: dict[str, Any], hps: list[str] | None) -> Any:
    """The trainer's argument dataclass from the CLI options and ``--hp NAME=VALUE`` pairs (checked by type)."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    values = dict(base)
    given: set[str] = set()
    for pair in hps or []:
        name, sep, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in known:
            fail(f"--hp {pair!r}: expected NAME=VALUE with NAME one of {sorted(known)}")
        value = parse_value(raw)
        default = known[name].default
        if isinstance(default, bool) and not isinstance(value, bool):
            fail(f"--hp {name}: expected true or false, got {raw!r}")
        if isinstance(default, int | float) and not isinstance(default, bool):
            if not isinstance(value, int | float) or isinstance(value, bool):
                fail(f"--hp {name}: expected a number, got {raw!r}")
            if isinstance(default, int) and not (math.isfinite(value) and float(value).is_integer()):
                fail(f"--hp {name}: expected an integer, got {raw.strip()!r}")
            value = type(default)(value)
        values[name] = value
        given.add(name)
    try:
        args = cls(**values)
    except TypeError as exc:
        fail(str(exc))
    from twin_service.option_ranges import hyperparameter_problems

    problems = hyperparameter_problems(args)
    if problems:
        fail("; ".join(f"--hp {p}" if p.split("=")[0] in given else p for p in problems))
    return args


def load_settings():  # noqa: ANN201 - twin_service.config.Settings, imported lazily
    """The ``TWIN_*`` settings; a bad one (``TWIN_API_PORT=x``, a key that is not ASCII) is one line and exit 2."""
    from pydantic import ValidationError

    from twin_service.config import Settings, describe_errors

    try:
        return Settings()
    except ValidationError as exc:
        fail(f"bad TWIN_* setting: {describe_errors(exc)}")


# ---- checks before any work --------------------------------------------------------------------------------------
def check_model_out(out: Path, force: bool, flag: str = "--out") -> None:
    """Before any work: ``out`` names a model (its folder is its name), not a built-in one, and replaces an
    existing folder only with ``--force``."""
    from twin_service.policies.manifest import MODEL_NAME
    from twin_service.policies.registry import MIGRATION_HEURISTICS, OFFLOAD_HEURISTICS
    from twin_service.predict.naive import NAIVE_FORECASTS

    if not MODEL_NAME.match(out.name):
        fail(f"{flag} {out}: the folder is the model's name, which must match {MODEL_NAME.pattern}")
    if out.name in (*MIGRATION_HEURISTICS, *OFFLOAD_HEURISTICS, *NAIVE_FORECASTS):
        fail(f"{flag} {out}: {out.name!r} is the name of a built-in policy or forecast; choose another")
    if out.exists() and not out.is_dir():
        fail(f"{flag} {out} is a file; give a model folder such as models/{out.name}")
    if out.exists() and not force:
        fail(f"{flag} {out}: the model exists; give --force to replace it (only once the new one is complete)")


def check_predictor(name: str, models_dir: Path | None = None) -> None:
    """Before any work: ``name`` is a naive forecast or a predictor in the models folder (never a path)."""
    from twin_service.predict.registry import predictor_names

    known = predictor_names(load_settings().models_dir if models_dir is None else models_dir)
    if name not in known:
        fail(f"unknown workload predictor {name!r}; choose one of {', '.join(known)}")


def check_models(settings, migration: str, offload: str, predictor: str) -> None:  # noqa: ANN001
    """Before SUMO or the API start: a stored model named here must load (readable, finite weights, a manifest that
    fits this build); whether it fits the scenario is checked when the run's scenario is known."""
    from twin_service.policies import ModelRegistry, PolicyError, UnknownPolicyError
    from twin_service.policies.registry import MIGRATION_HEURISTICS, OFFLOAD_HEURISTICS
    from twin_service.predict.naive import NAIVE_FORECASTS

    registry = ModelRegistry(settings.models_dir)
    try:
        for name, kind, heuristics in (
            (migration, "migration", MIGRATION_HEURISTICS),
            (offload, "offload", OFFLOAD_HEURISTICS),
        ):
            if name in heuristics:
                continue
            manifest = registry.manifest(name)  # an unknown name is reported by the run with the choices
            if manifest.kind != kind:
                fail(f"model {name!r} is a {manifest.kind} model, not a {kind} policy")
            registry.load(name)
        if predictor not in NAIVE_FORECASTS:
            from twin_service.predict.neural import NeuralForecaster

            NeuralForecaster.load(settings.models_dir / predictor)
    except UnknownPolicyError:
        return  # not a stored model of this name: the command names the choices
    except PolicyError as exc:
        fail(str(exc))


def check_output_file(path: Path | None, option: str) -> None:
    """Before the run: ``path`` must be a file that can be written; its folder is created now."""
    if path is None:
        return
    if path.is_dir():
        fail(f"{option} {path} is a folder; give a file in it, such as {path / 'kpis.csv'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"{option} {path}: cannot create the folder {path.parent}: {exc.strerror or exc}")
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail(f"{option} {path}: not writable")


def check_key_prefix(given: str | None, default: str) -> str:
    """``--key-prefix`` (else the TWIN_KEY_PREFIX default), refused with exit 2 unless it can name a city."""
    from twin_service.config import KEY_PREFIX_PATTERN

    if given is None:
        return default
    if not re.match(KEY_PREFIX_PATTERN, given):
        fail(
            f"--key-prefix {given!r}: a letter or digit, then letters, digits and _ . : - (at most 64 characters): "
            "it names the city in the API (?city=) and is the run's Redis Cluster hash tag"
        )
    return given


def load_events(path: Path | None, scenario: str | Path, replay: bool = False) -> tuple:
    """The events of ``--events FILE``, checked against the scenario's servers (exit 2 naming the event and field)."""
    if path is None:
        return ()
    from twin_service.config import ScenarioError
    from twin_service.events import ScheduleError, ServerInfo, load_schedule
    from twin_service.scenario.folder import Scenario

    try:
        layout = Scenario.load(scenario).layout
        servers = ServerInfo(tuple(layout.ids), tuple(str(t) for t in layout.tiers))
        found = load_schedule(path, servers)
    except (ScenarioError, ScheduleError) as exc:
        fail(f"--events {exc}" if isinstance(exc, ScheduleError) else str(exc))
    if replay:
        for k, event in enumerate(found, start=1):
            if event.kind == "demand_scale":
                fail(
                    f"--events {path}: event {k}: demand_scale changes SUMO's traffic, which a replay holds fixed; "
                    "run it live (and --record it)"
                )
    return tuple(found)
