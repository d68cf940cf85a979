"""A small, dense city for the import tests: more traffic than one RSU per junction can serve.

A geo-referenced 5 x 5 grid of 200 m blocks (0.64 km^2, 25 junctions, traffic lights guessed) with random
trips at 4 per second for ``END_S`` seconds: several hundred vehicles at once on less than a square
kilometre, the density of a busy downtown. The rule before site growth placed at most one RSU per
junction with traffic and refused it (``only 25 junctions carry traffic``, or ``even an RSU at each of the
25 junctions ... drops``); the import must now provision it with no options.

The folder is only the original scenario (net, trips, sumocfg), as a user would bring it: ``scenario import``
does the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twin_service.scenario.tools import run_tool, tool_path

PROJ = "+proj=tmerc +lat_0=53.55 +lon_0=9.99 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
END_S = 420.0
JUNCTIONS = 25


def build_dense_city(folder: Path, *, with_trips: bool = True) -> Path:
    """Write the dense city into ``folder``; returns its ``.sumocfg``. Without trips: a city with no traffic."""
    folder.mkdir(parents=True, exist_ok=True)
    raw, net = folder / "raw.net.xml", folder / "dense.net.xml"
    run_tool([tool_path("netgenerate"), "--grid", "--grid.number", "5", "--grid.length", "200", "--tls.guess",
              "--seed", "1", "-o", raw], "netgenerate")  # fmt: skip
    run_tool([tool_path("netconvert"), "-s", raw, "--proj", PROJ, "-o", net], "netconvert")
    raw.unlink()
    routes = ""
    if with_trips:
        import sumo

        run_tool([sys.executable, Path(sumo.SUMO_HOME) / "tools" / "randomTrips.py", "-n", net,
                  "-o", folder / "dense.trips.xml", "-e", f"{END_S:g}", "-p", "0.25", "--min-distance", "500",
                  "--seed", "7", "--fringe-factor", "1"], "randomTrips", cwd=folder)  # fmt: skip
        routes = '<route-files value="dense.trips.xml"/>'
    cfg = folder / "dense.sumocfg"
    cfg.write_text(
        f'<configuration><input><net-file value="dense.net.xml"/>{routes}</input>'
        f'<time><begin value="0"/><end value="{END_S:g}"/></time>'
        '<report><no-step-log value="true"/></report></configuration>'
    )
    return cfg
