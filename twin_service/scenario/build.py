"""Generate the committed scenarios (``city``, ``rural``) reproducibly from a seed.

One call of :func:`build_scenario` runs every stage and writes, into the scenario folder:

``net.net.xml.gz``
    A netgenerate grid turned into a geo-referenced network by netconvert (``--proj`` tmerc centred
    on a real place; net x/y are metres from the south-west corner).
``routes.rou.xml.gz``
    Time-varying demand from randomTrips (``--validate``): the insertion period changes every
    ``segment_s`` so that the number of running vehicles follows off-peak -> peak -> off-peak
    (Little's law, :mod:`twin_service.scenario.demand`); trips start and end preferably downtown.
``edge_servers.add.xml``
    RSUs, UAV patrols and the satellite, placed by :mod:`twin_service.scenario.layout`: ``city`` with its given
    counts (paper A's 76 RSUs and 10 UAVs); ``rural`` provisioned for its demand as an imported city is
    (:mod:`twin_service.scenario.provision`: one SUMO pass, the fewest RSUs that drop no more data at the
    peak than the city), which also writes ``layout.png``, the layout over the network.
``scenario.sumocfg``
    Net + routes + edge servers, step 1 s, relative paths: ``sumo-gui -c scenario.sumocfg`` shows it all.
``params.toml``
    :class:`twin_service.config.ScenarioParams`, including ``[layout]`` and ``[calibration]``.

The same seed gives byte-identical files: SUMO's "generated on" headers are stripped and gzip
timestamps zeroed (:func:`twin_service.scenario.tools.write_reproducible`).
"""

from __future__ import annotations

import shutil
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from twin_service.config import (
    SCENARIOS_DIR,
    DemandParams,
    ScenarioError,
    ScenarioMeta,
    ScenarioParams,
    TaskParams,
    UavParams,
)
from twin_service.scenario.calibrate import CITY_CYCLES_PER_BIT, HostingRecorder, calibrate_scenario
from twin_service.scenario.demand import build_demand
from twin_service.scenario.edge_servers import EdgeLayout, write_edge_servers
from twin_service.scenario.geo import read_projection
from twin_service.scenario.layout import LayoutRule, place_edge_servers
from twin_service.scenario.network import GridSpec, build_network
from twin_service.scenario.params_file import (
    SHARED_CYCLES_PER_BIT_COMMENT,
    render_params,
)
from twin_service.scenario.provision import DemandRecorder, provision_for_demand
from twin_service.scenario.report import LAYOUT_PNG, layout_title, plot_layout
from twin_service.scenario.tools import write_reproducible

SCENARIO_KINDS = ("city", "rural")

NET_FILE = "net.net.xml.gz"
ROUTES_FILE = "routes.rou.xml.gz"
EDGE_SERVERS_FILE = "edge_servers.add.xml"
SUMOCFG_FILE = "scenario.sumocfg"
PARAMS_FILE = "params.toml"
OUTPUT_FILES = (NET_FILE, ROUTES_FILE, EDGE_SERVERS_FILE, SUMOCFG_FILE, PARAMS_FILE)


@dataclass(frozen=True)
class ScenarioSpec:
    """Everything that defines a built scenario besides its seed."""

    name: str
    description: str
    grid: GridSpec
    demand: DemandParams
    end_s: float
    layout: LayoutRule
    cycles_per_bit: float | None = None
    """None: calibrate e_v on this scenario; a number: use it and only measure the overload share."""
    provisioned: bool = False
    """True: the RSU and UAV counts are provisioned for the demand, as an import's are (``layout`` gives the
    placement knobs only); False: ``layout`` gives the counts."""

    @property
    def output_files(self) -> tuple[str, ...]:
        return (*OUTPUT_FILES, LAYOUT_PNG) if self.provisioned else OUTPUT_FILES


CITY = ScenarioSpec(
    name="city",
    description=(
        "5 x 5 km grid city geo-referenced on Hamburg (53.55 N, 9.99 E): 250 m blocks, two-lane "
        "arterials every 750 m with traffic lights, demand 20 -> 60 -> 20 veh/km^2 over one hour "
        "(paper B), denser downtown; 76 RSUs, 10 UAVs, 1 LEO satellite (paper A Table I)."
    ),
    grid=GridSpec(
        junctions_x=21,
        junctions_y=21,
        block_m=250.0,
        local_speed_mps=13.89,
        arterial_every=3,
        arterial_lanes=2,
        arterial_speed_mps=16.67,
    ),
    demand=DemandParams(
        offpeak_veh_per_km2=20.0,
        peak_veh_per_km2=60.0,
        peak_time_s=1800.0,
        mean_trip_s=345.0,
        peak_mean_trip_s=455.0,
        segment_s=120.0,
        min_trip_m=500.0,
        downtown_gain=3.0,
        downtown_sigma_m=1000.0,
    ),
    end_s=3600.0,
    layout=LayoutRule(
        rsu_count=76,
        rsu_spacing_center_m=200.0,
        rsu_spacing_edge_m=450.0,
        spacing_ramp_m=2500.0,
        downtown_gain=2.0,
        downtown_sigma_m=1000.0,
        uav_count=10,
        uav_spacing_m=900.0,
        patrol_length_m=1500.0,
    ),
)

RURAL = ScenarioSpec(
    name="rural",
    description=(
        "About 13 x 13 km rural road grid (2 km links, some missing, junctions jittered, no "
        "traffic lights) north-east of Hamburg: demand 1 -> 3 -> 1 veh/km^2; RSUs and UAVs provisioned "
        "for that demand as an imported city's are, with the city's physics; the LEO satellite above."
    ),
    grid=GridSpec(
        junctions_x=7,
        junctions_y=7,
        block_m=2000.0,
        local_speed_mps=22.22,
        arterial_every=3,
        arterial_lanes=1,
        arterial_speed_mps=27.78,
        perturb_m=250.0,
        drop_fraction=0.12,
        traffic_lights=False,
        lat_0=53.75,
        lon_0=10.30,
    ),
    demand=DemandParams(
        offpeak_veh_per_km2=1.0,
        peak_veh_per_km2=3.0,
        peak_time_s=1800.0,
        mean_trip_s=700.0,
        peak_mean_trip_s=740.0,
        segment_s=120.0,
        min_trip_m=2000.0,
        downtown_gain=1.0,
        downtown_sigma_m=3000.0,
    ),
    end_s=3600.0,
    layout=LayoutRule(
        rsu_count=0,
        rsu_spacing_center_m=2500.0,
        rsu_spacing_edge_m=3500.0,
        spacing_ramp_m=6000.0,
        downtown_gain=1.0,
        downtown_sigma_m=3000.0,
        uav_count=0,
        uav_spacing_m=3000.0,
        patrol_length_m=2000.0,
    ),
    cycles_per_bit=CITY_CYCLES_PER_BIT,
    provisioned=True,
)

SPECS: dict[str, ScenarioSpec] = {"city": CITY, "rural": RURAL}


def spec_for(name: str) -> ScenarioSpec:
    try:
        return SPECS[name]
    except KeyError:
        kinds = ", ".join(SCENARIO_KINDS)
        raise ScenarioError(f"unknown scenario kind {name!r}; choose one of {kinds}") from None


# --------------------------------------------------------------------------------------------
# sumocfg, params, orchestration
# --------------------------------------------------------------------------------------------


def sumocfg_xml(
    net_file: str,
    route_files: list[str],
    additional_files: list[str],
    begin_s: float,
    end_s: float,
    seed: int,
) -> str:
    """A minimal SUMO configuration (paths as given: keep them relative for committed scenarios)."""
    root = ET.Element("configuration")
    inp = ET.SubElement(root, "input")
    ET.SubElement(inp, "net-file", value=net_file)
    ET.SubElement(inp, "route-files", value=",".join(route_files))
    ET.SubElement(inp, "additional-files", value=",".join(additional_files))
    time = ET.SubElement(root, "time")
    ET.SubElement(time, "begin", value=f"{begin_s:g}")
    ET.SubElement(time, "end", value=f"{end_s:g}")
    ET.SubElement(time, "step-length", value="1")
    rnd = ET.SubElement(root, "random_number")
    ET.SubElement(rnd, "seed", value=str(seed))
    report = ET.SubElement(root, "report")
    ET.SubElement(report, "no-step-log", value="true")
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def scenario_params(
    spec: ScenarioSpec,
    seed: int,
    layout_found: dict,
    calibration: dict,
    cycles_per_bit: float,
) -> ScenarioParams:
    """The ScenarioParams a built scenario records."""
    return ScenarioParams(
        scenario=ScenarioMeta(
            name=spec.name,
            description=spec.description,
            seed=seed,
            net_file=NET_FILE,
            route_files=[ROUTES_FILE],
            edge_servers_file=EDGE_SERVERS_FILE,
            sumocfg=SUMOCFG_FILE,
            begin_s=0.0,
            end_s=spec.end_s,
        ),
        demand=spec.demand,
        task=TaskParams(cycles_per_bit=cycles_per_bit),
        uav=UavParams(count=int(layout_found["uavs_placed"])),
        layout=layout_found,
        calibration=calibration,
    )


def render_scenario_params(spec: ScenarioSpec, params: ScenarioParams) -> str:
    """The params.toml text of a built scenario."""
    comments = {("task", "cycles_per_bit"): SHARED_CYCLES_PER_BIT_COMMENT} if spec.cycles_per_bit is not None else {}
    if spec.provisioned:
        comments[("layout", "rsu_count")] = "provisioned for the demand, as an import's; see [calibration]"
        comments[("layout", "uav_count")] = "the city's 10 UAVs per 76 RSUs"
    return render_params(params, comments=comments or None)


def _layout_description(spec: ScenarioSpec, seed: int) -> str:
    return (
        f"Edge servers of scenario '{spec.name}' (seed {seed}): RSUs (blue), UAV patrols (orange), "
        "LEO satellite (purple). Written by twin_service.scenario.build; rule in params.toml [layout]."
    )


def build_layout(spec: ScenarioSpec, folder: Path, seed: int) -> tuple[EdgeLayout, dict]:
    """The layout stage alone, on a folder that already holds the net and routes (a scenario with given counts)."""
    base = ScenarioParams(scenario=ScenarioMeta(name=spec.name))
    return place_edge_servers(
        folder / NET_FILE,
        [folder / ROUTES_FILE],
        spec.layout,
        base.rsu,
        base.uav,
        base.satellite,
        seed=seed,
        end_s=spec.end_s,
        description=_layout_description(spec, seed),
    )


def provision_layout(
    spec: ScenarioSpec, folder: Path, seed: int, record_demand: DemandRecorder
) -> tuple[EdgeLayout, dict, dict, object]:
    """The layout stage of a provisioned scenario: one SUMO pass over the demand, then the count search.

    Returns the layout, ``[layout]``, ``[calibration]`` and the sites read from the net (for the picture).
    """
    from twin_service.scenario.layout import SiteGrowth, read_sites

    params = ScenarioParams(
        scenario=ScenarioMeta(name=spec.name, seed=seed, end_s=spec.end_s),
        task=TaskParams(cycles_per_bit=spec.cycles_per_bit or CITY_CYCLES_PER_BIT),
    )
    with tempfile.TemporaryDirectory(prefix=f"twin-pass-{spec.name}-") as scratch:
        cfg = Path(scratch) / SUMOCFG_FILE
        cfg.write_text(sumocfg_xml(str(folder / NET_FILE), [str(folder / ROUTES_FILE)], [], 0.0, spec.end_s, seed))
        demand = record_demand(cfg, folder / NET_FILE, spec.end_s, params.simulation.tick_s, seed)
    sites = read_sites(folder / NET_FILE, [folder / ROUTES_FILE], seed=seed, end_s=spec.end_s)
    provisioned = provision_for_demand(
        sites, demand, spec.layout, params, seed=seed, description=_layout_description(spec, seed), growth=SiteGrowth()
    )
    return provisioned.layout, provisioned.found, provisioned.calibration(demand), sites


def build_scenario(
    name: str,
    seed: int = 1,
    out: str | Path | None = None,
    *,
    record_hosting: HostingRecorder,
    record_demand: DemandRecorder | None = None,
) -> Path:
    """Generate scenario ``name`` (``city`` or ``rural``) into ``out`` (default: the committed folder).

    ``record_hosting`` runs SUMO for the e_v calibration (``twin_service.bridge.calibrate.record_hosting``);
    ``record_demand`` the demand pass of a provisioned scenario (``twin_service.bridge.calibrate.record_demand``).
    """

    spec = spec_for(name)
    folder = Path(out) if out is not None else SCENARIOS_DIR / name
    with tempfile.TemporaryDirectory(prefix=f"twin-build-{name}-") as tmp:
        work = Path(tmp)
        stage = work / "stage"
        stage.mkdir()
        net = build_network(spec.grid, seed, work)
        write_reproducible(net, stage / NET_FILE)
        area_km2 = read_projection(net).area_km2
        routes = build_demand(net, spec.demand, spec.end_s, area_km2, seed, work)
        write_reproducible(routes, stage / ROUTES_FILE)
        (stage / SUMOCFG_FILE).write_text(
            sumocfg_xml(NET_FILE, [ROUTES_FILE], [EDGE_SERVERS_FILE], 0.0, spec.end_s, seed)
        )
        if spec.provisioned:
            if record_demand is None:
                raise ScenarioError(f"scenario {name!r} is provisioned for its demand: give record_demand")
            layout, found, calibration, sites = provision_layout(spec, stage, seed, record_demand)
            write_edge_servers(layout, stage / EDGE_SERVERS_FILE)
            params = scenario_params(spec, seed, found, calibration, spec.cycles_per_bit or CITY_CYCLES_PER_BIT)
            plot_layout(sites.net, layout, stage / LAYOUT_PNG, title=layout_title(name, calibration))
        else:
            layout, found = build_layout(spec, stage, seed)
            ev = spec.cycles_per_bit or TaskParams().cycles_per_bit
            provisional = scenario_params(spec, seed, found, {}, ev)
            write_edge_servers(layout, stage / EDGE_SERVERS_FILE)
            result = calibrate_scenario(stage, provisional, layout, record_hosting, cycles_per_bit=spec.cycles_per_bit)
            params = scenario_params(spec, seed, found, result.as_dict(), result.cycles_per_bit)
        (stage / PARAMS_FILE).write_text(render_scenario_params(spec, params))

        folder.mkdir(parents=True, exist_ok=True)
        for fname in spec.output_files:
            shutil.copyfile(stage / fname, folder / fname)
    return folder
