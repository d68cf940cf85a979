"""Importing a real city: the Hamburg test field (TAVF), read in place and never modified."""

from __future__ import annotations

import dataclasses
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import twin_service.bridge.calibrate
from twin_service.cli import app
from twin_service.config import ScenarioError, load_params
from twin_service.scenario.calibrate import (
    CITY_CYCLES_PER_BIT,
    CITY_DROPPED_SHARE,
    dropped_share_at_peak,
    nearest_hosting,
)
from twin_service.scenario.edge_servers import read_edge_servers
from twin_service.scenario.geo import read_projection
from twin_service.scenario.importer import IMPORT_RULE, import_scenario
from twin_service.scenario.layout import SiteGrowth, place_on_sites, read_sites
from twin_service.scenario.provision import UAVS_PER_RSU
from twin_service.scenario.tools import run_tool, tool_path

from .conftest import folder_fingerprint


@pytest.fixture(scope="module")
def imported(hamburg_import):
    return hamburg_import.out, hamburg_import.source_fingerprint


def _replay(demand):
    """A demand recorder that hands back an earlier pass instead of running SUMO again."""
    return lambda *args, **kwargs: demand


def _tried(params) -> dict[int, float]:
    pairs = (item.split(": ") for item in params.calibration["counts_tried"].split(", "))
    return {int(n): float(share) for n, share in pairs}


def test_servers_are_provisioned_for_the_demand(imported, hamburg_import):
    """The fewest RSUs whose nearest-server hosting drops no more data at the peak than the city's."""
    out, _ = imported
    params = load_params(out)
    cal = params.calibration
    layout = read_edge_servers(out / params.scenario.edge_servers_file)
    assert len(layout.rsus) == cal["rsus"] == params.layout["rsu_count"] == params.layout["rsus_placed"]
    assert len(layout.uavs) == cal["uavs"] == params.uav.count
    assert params.layout["uav_count"] == min(10, max(2, round(len(layout.rsus) * UAVS_PER_RSU)))
    assert params.task.cycles_per_bit == CITY_CYCLES_PER_BIT  # the physics stays the city's
    assert cal["dropped_data_share_at_peak"] <= cal["target_dropped_share"] == CITY_DROPPED_SHARE
    tried = _tried(params)
    assert tried[len(layout.rsus) - 1] > CITY_DROPPED_SHARE  # one fewer would not do
    # The pass found the busiest window: the 20-minute field fills up for 5 minutes, then stays busy.
    demand = hamburg_import.demand
    assert params.demand.peak_time_s == cal["peak_time_s"] == demand.peak_time_s
    assert cal["vehicles_at_peak"] > 1000 and 600 <= cal["peak_time_s"] <= 1140
    assert cal["window_begin_s"] == max(1.0, cal["peak_time_s"] - 600) and cal["window_end_s"] == 1200
    # The recorded figure is what the layout as written gives on the recorded positions.
    hosting = nearest_hosting(demand.positions, layout)
    share = dropped_share_at_peak(hosting, layout, 2.0, CITY_CYCLES_PER_BIT, demand.peak_time_s, 1.0, 750.0)
    assert share == pytest.approx(cal["dropped_data_share_at_peak"], abs=1e-4)
    # Hamburg keeps its layout: its junctions take every RSU before the spacing reaches the floor, so the rule
    # places exactly what it placed before sites could grow (one unit per junction, none by the road).
    assert cal["rsu_sites"] == cal["rsu_junction_sites"] == len(layout.rsus) and cal["rsu_road_sites"] == 0
    assert params.layout["rsu_spacing_center_m"] * params.layout["rsu_spacing_scale"] >= SiteGrowth().site_spacing_min_m
    sites = read_sites(params.scenario.net_file, params.scenario.route_files, seed=1, end_s=params.scenario.end_s)
    counts = dataclasses.replace(IMPORT_RULE, rsu_count=len(layout.rsus), uav_count=params.layout["uav_count"])
    before, _ = place_on_sites(sites, counts, params.rsu, params.uav, params.satellite, seed=1)  # no growth
    assert before.servers == layout.servers


def test_servers_inside_the_net_spaced_and_in_hamburg(imported, hamburg_cfg):
    out, _ = imported
    params = load_params(out)
    layout = read_edge_servers(out / "edge_servers.add.xml")
    xmin, ymin, xmax, ymax = read_projection(hamburg_cfg.parent / "network.net.xml.gz").conv_boundary
    for s in layout.servers:
        points = s.patrol_xy or ((s.x_m, s.y_m),)
        assert all(xmin <= x <= xmax and ymin <= y <= ymax for x, y in points), s.id
        assert 53.5 <= s.lat <= 53.6 and 9.9 <= s.lon <= 10.1, s.id
    xy = np.unique(layout.xy_m[layout.rsu_indices], axis=0)  # the sites (a site's units share its place)
    d = np.hypot(*(xy[:, None] - xy[None]).T)
    np.fill_diagonal(d, np.inf)
    spacing = params.layout["rsu_spacing_center_m"] * params.layout["rsu_spacing_scale"]
    assert d.min() >= spacing - 1e-6 and spacing >= params.layout["site_spacing_min_m"] - 1e-6


def test_original_folder_is_untouched(imported, hamburg_cfg):
    _, before = imported
    assert folder_fingerprint(hamburg_cfg.parent) == before


def test_config_points_back_to_the_original_data(imported, hamburg_import, hamburg_cfg):
    out, _ = imported
    root = ET.parse(out / "scenario.sumocfg").getroot()
    src = hamburg_cfg.parent
    assert root.find("input/net-file").get("value") == str(src / "network.net.xml.gz")
    routes = root.find("input/route-files").get("value").split(",")
    assert [Path(r).name for r in routes] == [
        "bus_route.rou.xml",
        "vType.xml",
        "PKW_automatic.rou.xml.gz",
        "LKW_automatic.rou.xml",
    ]
    assert all(Path(r).is_absolute() and Path(r).parent == src for r in routes)
    additional = root.find("input/additional-files").get("value").split(",")
    assert additional == [str(src / "busStops.add.xml"), "edge_servers.add.xml"]
    assert hamburg_import.files == ("edge_servers.add.xml", "layout.png", "params.toml", "scenario.sumocfg")
    params = load_params(out)
    assert Path(params.scenario.net_file) == src / "network.net.xml.gz"
    assert params.scenario.end_s == 1200.0
    text = (out / "params.toml").read_text()
    assert "city's calibrated e_v" in text and "Calibrated per scenario, not sized from vehicles per RSU" in text


def test_sumo_runs_with_the_edge_servers(imported, tmp_path):
    out, _ = imported
    stdout = run_tool(
        [tool_path("sumo"), "-c", out / "scenario.sumocfg", "--end", "20", "--log", tmp_path / "sumo.log"],
        "sumo",
    )
    log = stdout + (tmp_path / "sumo.log").read_text()
    assert f"Loading additional-files from '{out / 'edge_servers.add.xml'}' ... done" in log
    assert "Simulation ended at time: 20" in log


def test_import_is_reproducible(imported, hamburg_import, hamburg_cfg, tmp_path):
    """The same demand gives the same files (the pass itself is SUMO with a fixed seed)."""
    out, _ = imported
    again = import_scenario(hamburg_cfg, out=tmp_path / "tavf", seed=1, record_demand=_replay(hamburg_import.demand))
    for name in ("edge_servers.add.xml", "scenario.sumocfg", "params.toml"):
        assert (again / name).read_text() == (out / name).read_text()


def _cfg_without_projection(tiny_net: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "plain.sumocfg"
    cfg.write_text(
        f'<configuration><input><net-file value="{tiny_net}"/></input>'
        '<time><begin value="0"/><end value="60"/></time></configuration>'
    )
    return cfg


def test_net_without_projection_is_refused(tiny_net, tmp_path):
    cfg = _cfg_without_projection(tiny_net, tmp_path / "src")
    with pytest.raises(ScenarioError, match="netconvert --proj"):
        import_scenario(cfg, out=tmp_path / "out", seed=1, record_demand=twin_service.bridge.calibrate.record_demand)
    assert not (tmp_path / "out").exists()


def test_out_must_not_be_the_original_folder(tiny_net, tmp_path):
    cfg = _cfg_without_projection(tiny_net, tmp_path / "src")
    with pytest.raises(ScenarioError, match="never modified"):
        import_scenario(cfg, out=cfg.parent, seed=1, record_demand=twin_service.bridge.calibrate.record_demand)


def test_cli_reports_errors_in_one_line(tiny_net, tmp_path):
    runner = CliRunner()
    cfg = _cfg_without_projection(tiny_net, tmp_path / "src")
    result = runner.invoke(app, ["scenario", "import", str(cfg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "error:" in result.output and "netconvert --proj" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["scenario", "build", "suburb"])
    assert result.exit_code == 2 and "city, rural" in result.output


def test_cli_imports_hamburg_with_the_counts_given(hamburg_import, hamburg_cfg, tmp_path, monkeypatch):
    """--rsus and --uavs override the demand's counts; what they give is still measured and recorded."""
    monkeypatch.setattr(twin_service.bridge.calibrate, "record_demand", _replay(hamburg_import.demand))
    args = ["scenario", "import", str(hamburg_cfg), "--out", str(tmp_path / "hh"), "--rsus", "40", "--uavs", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert tomllib.loads((tmp_path / "hh" / "params.toml").read_text())["scenario"]["name"] == "hh"
    params = load_params(tmp_path / "hh")
    cal = params.calibration
    assert (cal["rsus"], params.layout["rsu_count"], params.layout["uav_count"]) == (40, 40, 3)
    assert cal["uavs"] <= 3 and "--rsus" in cal["method"]
    assert _tried(params) == {40: cal["dropped_data_share_at_peak"]}
    assert cal["dropped_data_share_at_peak"] > CITY_DROPPED_SHARE  # too few for this traffic, as measured
    assert "servers: 40 RSUs at" in result.output
    assert f"{cal['dropped_data_share_at_peak']:.1%} of the twins' data dropped, ABOVE the city's" in result.output
    assert "given with --rsus" in (tmp_path / "hh" / "params.toml").read_text()
    result = CliRunner().invoke(app, [*args[:4], str(tmp_path / "bad"), "--rsus", "0"])
    assert result.exit_code == 2 and "Traceback" not in result.output
