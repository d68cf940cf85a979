"""Put edge servers on a real, geo-referenced SUMO city without touching its files.

:func:`import_scenario` reads a ``.sumocfg`` (net, route and additional files; gzipped files and
comma-separated lists; paths relative to the config), provisions it for its own traffic
(:mod:`twin_service.scenario.provision`: one headless SUMO pass measures the demand, and the RSU count is
the fewest whose nearest-server hosting drops no more data at the demand peak than the city's, with the
city's e_v), places RSUs, UAV patrols and the satellite by the rule of :mod:`twin_service.scenario.layout`,
and writes into ``out``:

* ``edge_servers.add.xml``;
* ``scenario.sumocfg``: a copy of the original configuration whose input files point back to the
  original data (absolute paths) and whose additional files also load the edge servers; outputs
  named in it (logs, detectors) land in ``out``;
* ``params.toml``: ScenarioParams with the layout rule in ``[layout]``, the measured demand peak in
  ``[demand] peak_time_s`` and what the provisioning found in ``[calibration]``. e_v is the city's
  calibrated value (shared physics);
* ``layout.png``: the layout over the network (:func:`twin_service.scenario.report.plot_layout`).

The original folder is only read, never written.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from twin_service.config import (
    DemandParams,
    ScenarioError,
    ScenarioMeta,
    ScenarioParams,
    TaskParams,
    UavParams,
)
from twin_service.scenario.build import CITY, EDGE_SERVERS_FILE, PARAMS_FILE, SUMOCFG_FILE
from twin_service.scenario.calibrate import CITY_CYCLES_PER_BIT
from twin_service.scenario.edge_servers import write_edge_servers
from twin_service.scenario.layout import read_sites
from twin_service.scenario.params_file import (
    SHARED_CYCLES_PER_BIT_COMMENT,
    render_params,
)
from twin_service.scenario.provision import DemandProgress, DemandRecorder, provision_for_demand
from twin_service.scenario.report import LAYOUT_PNG, layout_title, plot_layout

IMPORT_RULE = dataclasses.replace(CITY.layout, rsu_count=0, uav_count=0)
"""The city's placement knobs; the import sets the RSU and UAV counts for the demand (``scenario.provision``)."""

PROVISIONING_NOTE = (
    "# Servers are provisioned for this city's own traffic (twin_service/scenario/provision.py). One headless SUMO\n"
    "# pass measures the running vehicles, and where they drive, around the busiest two minutes. The RSU count is\n"
    "# then calibrated on that pass: the fewest RSUs, placed by the [layout] rule, whose nearest-server hosting\n"
    "# drops no more of the twins' data at the peak than the built city's does at its calibration point (20 % of\n"
    "# its RSUs overloaded, inside the 10-30 % rule). Calibrated per scenario, not sized from vehicles per RSU,\n"
    "# because where the traffic runs matters as much as how much there is; and on dropped data, not on the share\n"
    "# of RSUs overloaded, because RSUs away from a real city's busy roads idle and dilute that share (both are in\n"
    "# [calibration]). e_v stays the city's: it is the servers' physics, so KPIs compare across cities.\n"
    "# Past one RSU per junction the layout grows as an operator's would: roadside sites where a road with traffic\n"
    "# has no site in range, then more RSU units (servers) at the sites with the most vehicles per unit."
)

# SUMO option names and their synonyms, as they may appear as elements of a .sumocfg.
_NET = ("net-file", "n", "net")
_ROUTES = ("route-files", "r", "routes")
_ADDITIONAL = ("additional-files", "a", "additional")
_OTHER_INPUTS = ("weight-files", "w", "weights", "load-state", "gui-settings-file", "g", "junction-taz")
_FILE_OPTIONS = _NET + _ROUTES + _ADDITIONAL + _OTHER_INPUTS


def _split_files(value: str) -> list[str]:
    return [p for p in re.split(r"[,;\s]+", value.strip()) if p]


def _option(root: ET.Element, names: tuple[str, ...]) -> ET.Element | None:
    for elem in root.iter():
        if elem.tag in names and ("value" in elem.attrib or "v" in elem.attrib):
            return elem
    return None


def _value(elem: ET.Element) -> str:
    return elem.get("value", elem.get("v", ""))


def _set_value(elem: ET.Element, value: str) -> None:
    elem.set("v" if "v" in elem.attrib and "value" not in elem.attrib else "value", value)


def _resolve(base: Path, files: list[str], what: str) -> list[Path]:
    resolved = []
    for f in files:
        p = Path(f).expanduser()
        p = p if p.is_absolute() else (base / p)
        p = p.resolve()
        if not p.is_file():
            raise ScenarioError(f"the {what} {f!r} named in the configuration does not exist ({p})")
        resolved.append(p)
    return resolved


def _time(root: ET.Element, names: tuple[str, ...], default: float) -> float:
    elem = _option(root, names)
    if elem is None:
        return default
    text = _value(elem)
    try:
        return float(text)
    except ValueError:  # SUMO also accepts h:m:s
        parts = [float(x) for x in text.split(":")]
        total = 0.0
        for part in parts:
            total = total * 60 + part
        return total


def import_scenario(
    sumocfg: str | Path,
    out: str | Path,
    seed: int = 1,
    *,
    record_demand: DemandRecorder,
    rsu_count: int | None = None,
    uav_count: int | None = None,
    progress: DemandProgress | None = None,
) -> Path:
    """Provision the scenario of ``sumocfg`` for its traffic and write the result into ``out``.

    ``record_demand`` runs the demand pass (``twin_service.bridge.calibrate.record_demand``; ``progress``
    goes to it). ``rsu_count`` / ``uav_count`` override the counts the demand gives; the overload they
    give is still measured and recorded. Nothing is written unless everything succeeds.
    """
    cfg = Path(sumocfg).expanduser().resolve()
    if not cfg.is_file():
        raise ScenarioError(f"no SUMO configuration at {cfg}")
    out_dir = Path(out).expanduser().resolve()
    if out_dir == cfg.parent:
        raise ScenarioError(f"--out must not be the original folder {cfg.parent}: it is never modified")
    for what, count in (("--rsus", rsu_count), ("--uavs", uav_count)):
        if count is not None and count < 1:
            raise ScenarioError(f"{what} must be at least 1, got {count}")
    try:
        tree = ET.parse(cfg)
    except ET.ParseError as exc:
        raise ScenarioError(f"{cfg}: not a valid SUMO configuration: {exc}") from exc
    root = tree.getroot()
    base = cfg.parent

    net_elem = _option(root, _NET)
    if net_elem is None:
        raise ScenarioError(f"{cfg} names no net-file")
    (net_file,) = _resolve(base, _split_files(_value(net_elem)), "net-file")
    route_elem = _option(root, _ROUTES)
    route_files = []
    if route_elem is not None:
        route_files = _resolve(base, _split_files(_value(route_elem)), "route file")
    add_elem = _option(root, _ADDITIONAL)
    if add_elem is not None:
        _resolve(base, _split_files(_value(add_elem)), "additional file")  # fail early on a missing one
    begin_s = _time(root, ("begin", "b"), 0.0)
    end_s = _time(root, ("end", "e"), 3600.0)
    if end_s <= begin_s:
        end_s = begin_s + 3600.0

    name = out_dir.name or cfg.stem
    sites = read_sites(net_file, route_files, seed=seed, end_s=end_s)  # refuses a net without geo-reference

    # The copy of the configuration: every input file absolute, outputs relative to out_dir.
    for elem in root.iter():
        if elem.tag in _FILE_OPTIONS and ("value" in elem.attrib or "v" in elem.attrib):
            absolute = [str(p) for p in _resolve(base, _split_files(_value(elem)), elem.tag)]
            _set_value(elem, ",".join(absolute))

    # The demand pass runs on that copy (no edge servers yet) in a scratch folder, where its outputs land.
    provisional = ScenarioParams(
        scenario=ScenarioMeta(name=name, seed=seed, begin_s=begin_s, end_s=end_s),
        task=TaskParams(cycles_per_bit=CITY_CYCLES_PER_BIT),
    )
    with tempfile.TemporaryDirectory(prefix="twin-import-") as scratch:
        pass_cfg = Path(scratch) / SUMOCFG_FILE
        pass_cfg.write_text(_config_text(root))
        demand = record_demand(pass_cfg, net_file, end_s, provisional.simulation.tick_s, seed, progress=progress)
    provisioned = provision_for_demand(
        sites,
        demand,
        IMPORT_RULE,
        provisional,
        seed=seed,
        description=(
            f"Edge servers placed on {cfg} (seed {seed}): RSUs (blue), UAV patrols (orange), "
            "LEO satellite (purple). Written by twin_service.scenario.importer; rule in params.toml [layout]."
        ),
        rsu_count=rsu_count,
        uav_count=uav_count,
    )
    layout = provisioned.layout
    found = {**provisioned.found, "source_sumocfg": str(cfg)}

    if add_elem is None:
        inputs = root.find("input")
        if inputs is None:
            inputs = ET.SubElement(root, "input")
        add_elem = ET.SubElement(inputs, "additional-files", value="")
    existing = _split_files(_value(add_elem))
    _set_value(add_elem, ",".join([*existing, EDGE_SERVERS_FILE]))

    params = ScenarioParams(
        scenario=ScenarioMeta(
            name=name,
            description=f"Imported from {cfg}; data files are read in place.",
            seed=seed,
            net_file=str(net_file),
            route_files=[str(p) for p in route_files],
            edge_servers_file=EDGE_SERVERS_FILE,
            sumocfg=SUMOCFG_FILE,
            begin_s=begin_s,
            end_s=end_s,
        ),
        demand=DemandParams(peak_time_s=demand.peak_time_s),
        task=TaskParams(cycles_per_bit=CITY_CYCLES_PER_BIT),
        uav=UavParams(count=int(found["uavs_placed"])),
        layout=found,
        calibration=provisioned.calibration(demand),
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    write_edge_servers(layout, out_dir / EDGE_SERVERS_FILE)
    (out_dir / SUMOCFG_FILE).write_text(_config_text(root))
    header = (
        f"# Parameters of scenario '{name}', imported from {cfg} (seed {seed}).\n"
        "# Written by 'twin-service scenario import': re-import rather than edit.\n"
        "# SI units (m, s, Hz, W, bit/s) unless a name says otherwise "
        "(_mb: 10^6 bytes, _wh: watt-hours).\n"
        "# [demand]: peak_time_s is the measured demand peak; the other keys are unused defaults (the imported\n"
        "# demand is used as it is).\n" + PROVISIONING_NOTE
    )
    given = "given with --{}; see [calibration]"
    comments = {
        ("task", "cycles_per_bit"): SHARED_CYCLES_PER_BIT_COMMENT,
        ("demand", "peak_time_s"): "measured: middle of the busiest 2-minute window of the demand pass",
        ("layout", "rsu_count"): "calibrated for the demand; see [calibration]"
        if rsu_count is None
        else given.format("rsus"),
        ("layout", "uav_count"): "the city's 10 UAVs per 76 RSUs" if uav_count is None else given.format("uavs"),
    }
    (out_dir / PARAMS_FILE).write_text(render_params(params, header=header, comments=comments))
    plot_layout(sites.net, layout, out_dir / LAYOUT_PNG, title=layout_title(name, params.calibration))
    return out_dir


def _config_text(root: ET.Element) -> str:
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
