"""A small generated scenario for bridge tests: a geo-referenced 2 x 2 km grid with steady traffic.

It is a complete scenario folder (net, routes, edge servers, sumocfg, params.toml), so the bridge loads it
the same way as the committed city; ``tests/conftest.py`` builds it once per test session in a temporary
folder (fixture ``small_scenario``), and records its first minutes once (fixture ``small_recording``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from twin_service.bridge.backends import sumo_binary
from twin_service.scenario.edge_servers import EdgeLayout, EdgeServer, write_edge_servers
from twin_service.scenario.geo import read_projection

PROJ = "+proj=tmerc +lat_0=53.55 +lon_0=9.99 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"

PARAMS = """
[scenario]
name = "test-grid"
seed = 3
net_file = "net.net.xml"
route_files = ["trips.trips.xml"]
edge_servers_file = "edge_servers.add.xml"
sumocfg = "scenario.sumocfg"
end_s = 600.0

[task]
data_size_mb = 2.0
migration_size_mb = 60.0
cycles_per_bit = 40.0

[rsu]
range_m = 600.0

[uav]
count = 1
"""


def _tool(name: str) -> str:
    return str(Path(sumo_binary()).parent / name)


def build_small_scenario(folder: Path) -> Path:
    raw = folder / "raw.net.xml"
    net = folder / "net.net.xml"
    subprocess.run(
        [_tool("netgenerate"), "--grid", "--grid.number", "9", "--grid.length", "250", "--tls.guess",
         "--seed", "1", "-o", str(raw)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [_tool("netconvert"), "-s", str(raw), "--proj", PROJ, "-o", str(net)], check=True, capture_output=True
    )
    raw.unlink()
    import sumo

    subprocess.run(
        [sys.executable, str(Path(sumo.SUMO_HOME) / "tools" / "randomTrips.py"), "-n", str(net),
         "-o", str(folder / "trips.trips.xml"), "-e", "600", "-p", "0.5", "--min-distance", "800",
         "--seed", "3"],
        check=True, capture_output=True, cwd=folder,
    )  # fmt: skip
    projection = read_projection(net)
    xmin, ymin, xmax, ymax = projection.conv_boundary
    servers = []
    for i, x in enumerate(np.linspace(xmin + 200, xmax - 200, 3)):
        for j, y in enumerate(np.linspace(ymin + 200, ymax - 200, 3)):
            lon, lat = projection.to_lonlat(x, y)
            servers.append(EdgeServer(f"rsu_{i}{j}", "rsu", x, y, float(lon), float(lat), 0.0, 600.0, 300.0, 32e9))
    lon, lat = projection.to_lonlat(xmin, ymin)
    patrol = ((xmin, ymin), (xmax, ymin), (xmax, ymax))
    servers.append(
        EdgeServer("uav_0", "uav", xmin, ymin, float(lon), float(lat), 50.0, 1500.0, 300.0, 32e9,
                   patrol_xy=patrol, speed_mps=3.7)
    )  # fmt: skip
    cx, cy = projection.center_xy
    lon, lat = projection.to_lonlat(cx, cy)
    servers.append(EdgeServer("sat_0", "satellite", cx, cy, float(lon), float(lat), 550e3, float("inf"), 1e9, 80e9))
    write_edge_servers(EdgeLayout(tuple(servers)), folder / "edge_servers.add.xml")
    (folder / "scenario.sumocfg").write_text(
        '<configuration><input><net-file value="net.net.xml"/><route-files value="trips.trips.xml"/>'
        '<additional-files value="edge_servers.add.xml"/></input>'
        '<time><begin value="0"/><end value="600"/></time></configuration>'
    )
    (folder / "params.toml").write_text(PARAMS)
    return folder
