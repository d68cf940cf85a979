"""Importing a real city: the Hamburg test field (TAVF), read in place and never modified."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from twin_service.cli import app
from twin_service.config import ScenarioError, load_params
from twin_service.scenario.edge_servers import read_edge_servers
from twin_service.scenario.geo import read_projection
from twin_service.scenario.importer import IMPORT_RULE, import_scenario
from twin_service.scenario.tools import run_tool, tool_path

from .conftest import folder_fingerprint


@pytest.fixture(scope="module")
def imported(hamburg_cfg, tmp_path_factory):
    before = folder_fingerprint(hamburg_cfg.parent)
    out = import_scenario(hamburg_cfg, out=tmp_path_factory.mktemp("hh") / "tavf", seed=1)
    return out, before


def test_rsu_count_scales_with_area(imported, hamburg_cfg):
    out, _ = imported
    params = load_params(out)
    layout = read_edge_servers(out / params.scenario.edge_servers_file)
    area = read_projection(hamburg_cfg.parent / "network.net.xml.gz").area_km2
    expected = int(np.clip(round(IMPORT_RULE.rsu_per_km2 * area), IMPORT_RULE.rsu_min, IMPORT_RULE.rsu_max))
    assert len(layout.rsus) == expected == params.layout["rsu_target"]
    assert 6 <= len(layout.rsus) <= 84
    assert 2 <= len(layout.uavs) == params.uav.count <= 10


def test_servers_inside_the_net_spaced_and_in_hamburg(imported, hamburg_cfg):
    out, _ = imported
    params = load_params(out)
    layout = read_edge_servers(out / "edge_servers.add.xml")
    xmin, ymin, xmax, ymax = read_projection(hamburg_cfg.parent / "network.net.xml.gz").conv_boundary
    for s in layout.servers:
        points = s.patrol_xy or ((s.x_m, s.y_m),)
        assert all(xmin <= x <= xmax and ymin <= y <= ymax for x, y in points), s.id
        assert 53.5 <= s.lat <= 53.6 and 9.9 <= s.lon <= 10.1, s.id
    xy = layout.xy_m[layout.rsu_indices]
    d = np.hypot(*(xy[:, None] - xy[None]).T)
    np.fill_diagonal(d, np.inf)
    assert d.min() >= params.layout["rsu_spacing_center_m"] * params.layout["rsu_spacing_scale"] - 1e-6


def test_original_folder_is_untouched(imported, hamburg_cfg):
    _, before = imported
    assert folder_fingerprint(hamburg_cfg.parent) == before


def test_config_points_back_to_the_original_data(imported, hamburg_cfg):
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
    assert sorted(p.name for p in out.iterdir()) == ["edge_servers.add.xml", "params.toml", "scenario.sumocfg"]
    params = load_params(out)
    assert Path(params.scenario.net_file) == src / "network.net.xml.gz"
    assert params.scenario.end_s == 1200.0
    assert "city's calibrated e_v" in (out / "params.toml").read_text()


def test_sumo_runs_with_the_edge_servers(imported, tmp_path):
    out, _ = imported
    stdout = run_tool(
        [tool_path("sumo"), "-c", out / "scenario.sumocfg", "--end", "20", "--log", tmp_path / "sumo.log"],
        "sumo",
    )
    log = stdout + (tmp_path / "sumo.log").read_text()
    assert f"Loading additional-files from '{out / 'edge_servers.add.xml'}' ... done" in log
    assert "Simulation ended at time: 20" in log


def test_import_is_reproducible(imported, hamburg_cfg, tmp_path):
    out, _ = imported
    again = import_scenario(hamburg_cfg, out=tmp_path / "tavf", seed=1)
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
        import_scenario(cfg, out=tmp_path / "out", seed=1)
    assert not (tmp_path / "out").exists()


def test_out_must_not_be_the_original_folder(tiny_net, tmp_path):
    cfg = _cfg_without_projection(tiny_net, tmp_path / "src")
    with pytest.raises(ScenarioError, match="never modified"):
        import_scenario(cfg, out=cfg.parent, seed=1)


def test_cli_reports_errors_in_one_line(tiny_net, tmp_path):
    runner = CliRunner()
    cfg = _cfg_without_projection(tiny_net, tmp_path / "src")
    result = runner.invoke(app, ["scenario", "import", str(cfg), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "error:" in result.output and "netconvert --proj" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["scenario", "build", "suburb"])
    assert result.exit_code == 2 and "city, rural" in result.output


def test_cli_imports_hamburg(hamburg_cfg, tmp_path):
    result = CliRunner().invoke(app, ["scenario", "import", str(hamburg_cfg), "--out", str(tmp_path / "hh")])
    assert result.exit_code == 0, result.output
    assert tomllib.loads((tmp_path / "hh" / "params.toml").read_text())["scenario"]["name"] == "hh"
