"""The edge-server layout model and its SUMO additional file."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from twin_service.config import ScenarioError, load_params
from twin_service.scenario.edge_servers import (
    EdgeLayout,
    EdgeServer,
    layout_to_xml,
    read_edge_servers,
    write_edge_servers,
)


def _layout() -> EdgeLayout:
    return EdgeLayout(
        (
            EdgeServer("rsu_a", "rsu", 0.1 + 0.2, 1e-7, 9.99, 53.55, 0.0, 1200.0, 300.0, 32e9),
            EdgeServer("rsu_b", "rsu", 1234.5678901234567, -5.0, 10.0, 53.6, 0.0, 1200.0, 300.0, 32e9),
            EdgeServer(
                "uav_a",
                "uav",
                10.0,
                20.0,
                9.991,
                53.551,
                50.0,
                1500.0,
                300.0,
                32e9,
                patrol_xy=((10.0, 20.0), (110.0, 20.0), (110.0, 220.5)),
                speed_mps=3.7,
            ),
            EdgeServer(
                "uav_b",
                "uav",
                0.0,
                0.0,
                9.99,
                53.55,
                50.0,
                1500.0,
                300.0,
                32e9,
                patrol_xy=((0.0, 0.0), (1.0, 1.0)),
                speed_mps=1.0,
                patrol_mode="loop",
            ),
            EdgeServer("sat", "satellite", 50.0, 50.0, 9.9905, 53.5505, 550e3, math.inf, 1e9, 80e9),
        ),
        description="a test layout -- with dashes",
    )


def test_round_trip_is_exact(tmp_path):
    layout = _layout()
    path = write_edge_servers(layout, tmp_path / "edge_servers.add.xml")
    back = read_edge_servers(path)
    assert back == layout
    assert back.servers[0].x_m == 0.1 + 0.2  # repr keeps every bit
    assert back.satellite.range_m == math.inf
    assert back.uavs[1].patrol_mode == "loop"
    assert back.description == "a test layout - with dashes"  # "--" cannot live in an XML comment
    assert path.read_text() == layout_to_xml(back)


def test_committed_file_round_trips_byte_for_byte(city_dir):
    path = city_dir / "edge_servers.add.xml"
    assert layout_to_xml(read_edge_servers(path)) == path.read_text()


def test_arrays_and_indices():
    layout = _layout()
    assert layout.ids == ("rsu_a", "rsu_b", "uav_a", "uav_b", "sat")
    assert layout.satellite_index == 4
    np.testing.assert_array_equal(layout.rsu_indices, [0, 1])
    np.testing.assert_array_equal(layout.uav_indices, [2, 3])
    assert layout.xy_m.shape == (5, 2)
    np.testing.assert_array_equal(layout.altitude_m, [0, 0, 50, 50, 550e3])
    np.testing.assert_array_equal(layout.cpu_hz, [32e9] * 4 + [80e9])
    assert layout.range_m[-1] == math.inf


def test_invalid_layouts_raise():
    servers = _layout().servers
    with pytest.raises(ScenarioError, match="exactly one satellite"):
        EdgeLayout(servers[:-1])
    with pytest.raises(ScenarioError, match="ordered"):
        EdgeLayout((servers[2], servers[0], servers[4]))
    with pytest.raises(ScenarioError, match="not unique"):
        EdgeLayout((servers[0], servers[0], servers[4]))
    with pytest.raises(ScenarioError, match="no patrol"):
        EdgeServer("u", "uav", 0, 0, 0, 0, 50, 1500, 300, 32e9)


def test_committed_city_file_is_sumo_shapes(city_dir):
    """POIs and polys sumo-gui draws with no code: types, colours, unfilled patrol lines, params."""
    root = ET.parse(city_dir / "edge_servers.add.xml").getroot()
    assert root.tag == "additional"
    pois = root.findall("poi")
    polys = root.findall("poly")
    types = [p.get("type") for p in pois]
    params = load_params(city_dir)
    assert 68 <= types.count("rsu") <= 84  # paper A Table I
    assert types.count("uav") == params.uav.count == 10
    assert types.count("satellite") == 1
    assert len(polys) == 10 and all(p.get("type") == "uav_patrol" and p.get("fill") == "0" for p in polys)
    colours = {p.get("type"): p.get("color") for p in pois}
    assert colours == {"rsu": "0,90,255", "uav": "255,140,0", "satellite": "150,40,200"}
    for poi in pois:
        keys = {par.get("key") for par in poi.findall("param")}
        assert {"lon", "lat", "altitude_m", "range_m", "cache_mb", "cpu_hz"} <= keys
        assert float(poi.get("layer")) > 0  # above the road network (layer 0)
    layout = read_edge_servers(city_dir / "edge_servers.add.xml")
    sat = layout.satellite
    assert (sat.altitude_m, sat.cpu_hz) == (550e3, 80e9)
    assert all(s.range_m == 1200.0 and s.cache_mb == 300.0 and s.cpu_hz == 32e9 for s in layout.rsus)
    assert all(
        u.range_m == 1500.0 and u.altitude_m == 50.0 and u.speed_mps == 3.7 and len(u.patrol_xy) >= 2
        for u in layout.uavs
    )
