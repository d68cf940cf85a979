"""``twin-service scenario build|import``: build the committed scenarios, or provision a real SUMO city."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin_service.cli.options import fail
from twin_service.cli.root import scenario_app


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
