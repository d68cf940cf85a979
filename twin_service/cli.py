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


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
