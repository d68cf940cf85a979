#!/usr/bin/env python
"""Bridge tick vs bare SUMO step, in one run, at about 200, 1,000 and 5,000 running vehicles.

For each vehicle count the benchmark saves one SUMO state, then replays the same ticks twice from it:

* baseline: bare ``simulationStep`` (libsumo);
* bridge:   the full bridge tick: step + read every vehicle + geo + UAVs + physics + decisions + the
            twin write to a real (embedded) Redis.

It prints per-tick milliseconds and their ratio; the last line is ``ratio_1000=<x>`` (target <= 1.5).

The scenario is generated in a temporary folder: a geo-referenced 5 x 5 km grid with more demand than
needed, capped at the target count with SUMO's ``--max-num-vehicles``; 81 RSUs on a 600 m lattice,
10 UAVs and the satellite.

    .venv/bin/python scripts/bench_bridge.py [--ticks 60] [--counts 200,1000,5000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from twin_service.bridge.backends import open_backend, sumo_binary
from twin_service.bridge.engine import Engine
from twin_service.config import ScenarioParams
from twin_service.scenario.edge_servers import EdgeLayout, EdgeServer
from twin_service.scenario.geo import NetProjection, read_projection
from twin_service.twins import TwinStore, open_redis

PROJ = "+proj=tmerc +lat_0=53.55 +lon_0=9.99 +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"


def _tool(name: str) -> str:
    return str(Path(sumo_binary()).parent / name)


def build_scenario(folder: Path) -> tuple[Path, Path]:
    raw = folder / "grid.net.xml"
    net = folder / "net.net.xml"
    subprocess.run(
        [_tool("netgenerate"), "--grid", "--grid.number", "21", "--grid.length", "250", "--default.lanenumber",
         "2", "--tls.guess", "--seed", "1", "-o", str(raw)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [_tool("netconvert"), "-s", str(raw), "--proj", PROJ, "-o", str(net)], check=True, capture_output=True
    )
    import sumo

    trips = folder / "trips.trips.xml"
    subprocess.run(
        [sys.executable, str(Path(sumo.SUMO_HOME) / "tools" / "randomTrips.py"), "-n", str(net), "-o", str(trips),
         "-e", "2400", "-p", "0.08", "--min-distance", "3000", "--seed", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    cfg = folder / "bench.sumocfg"
    cfg.write_text(
        f'<configuration><input><net-file value="{net.name}"/><route-files value="{trips.name}"/></input>'
        '<processing><time-to-teleport value="-1"/></processing></configuration>'
    )
    return cfg, net


def build_layout(projection: NetProjection) -> EdgeLayout:
    xmin, ymin, xmax, ymax = projection.conv_boundary
    servers = []
    for i, x in enumerate(np.linspace(xmin + 100, xmax - 100, 9)):
        for j, y in enumerate(np.linspace(ymin + 100, ymax - 100, 9)):
            lon, lat = projection.to_lonlat(x, y)
            servers.append(EdgeServer(f"rsu_{i}_{j}", "rsu", x, y, float(lon), float(lat), 0.0, 1200.0, 300.0, 32e9))
    rng = np.random.default_rng(1)
    for k in range(10):
        x0, y0 = rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)
        lon, lat = projection.to_lonlat(x0, y0)
        patrol = ((x0, y0), (x0 + 1000.0, y0), (x0 + 1000.0, y0 + 500.0))
        servers.append(
            EdgeServer(f"uav_{k}", "uav", x0, y0, float(lon), float(lat), 50.0, 1500.0, 300.0, 32e9,
                       patrol_xy=patrol, speed_mps=3.7)
        )  # fmt: skip
    cx, cy = projection.center_xy
    lon, lat = projection.to_lonlat(cx, cy)
    servers.append(EdgeServer("sat", "satellite", cx, cy, float(lon), float(lat), 550e3, float("inf"), 1e9, 80e9))
    return EdgeLayout(tuple(servers))


def warm_state(cfg: Path, count: int, folder: Path) -> tuple[Path, float, int]:
    """Run until about ``count`` vehicles are running, then save the state."""
    backend = open_backend("libsumo", cfg, seed=1, extra_args=["--max-num-vehicles", str(count)])
    try:
        for _ in range(3000):
            backend.step()
            if backend.vehicle_count() >= 0.97 * count and backend.time_s >= 120:
                break
        state = folder / f"state_{count}.xml.gz"
        backend.api.simulation.saveState(str(state))
        return state, backend.time_s, backend.vehicle_count()
    finally:
        backend.close()


def time_ticks(cfg: Path, state: Path, count: int, ticks: int, run_tick) -> list[float]:
    backend = open_backend(
        "libsumo", cfg, seed=1, extra_args=["--max-num-vehicles", str(count), "--load-state", str(state)]
    )
    try:
        tick = run_tick(backend)
        for _ in range(5):  # admit the loaded vehicles, warm caches
            tick()
        times = []
        for _ in range(ticks):
            t0 = time.perf_counter()
            tick()
            times.append(time.perf_counter() - t0)
        return times
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ticks", type=int, default=60, help="timed ticks per measurement")
    parser.add_argument("--counts", default="200,1000,5000", help="running-vehicle targets")
    parser.add_argument("--rounds", type=int, default=2, help="alternate baseline/bridge this many times")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp, open_redis(None) as redis:
        folder = Path(tmp)
        cfg, net = build_scenario(folder)
        projection = read_projection(net)
        layout = build_layout(projection)
        # e_v so that servers neither idle nor all overload at these densities.
        params = ScenarioParams(scenario={"name": "bench"}, task={"cycles_per_bit": 60.0})
        store = TwinStore(redis.client, "bench", window=params.simulation.history_window)
        results = {}
        for count in counts:
            state, t_state, running = warm_state(cfg, count, folder)

            def bare(backend):
                return backend.step

            def bridge(backend):
                engine = Engine(params, layout, projection, backend, seed=1)

                def tick():
                    frame, ctx = engine.tick()
                    store.write_tick(frame)
                    engine.apply(engine.decisions.decide(ctx))

                return tick

            base_ms, bridge_ms = [], []
            for _ in range(args.rounds):
                base_ms += [1e3 * t for t in time_ticks(cfg, state, count, args.ticks, bare)]
                bridge_ms += [1e3 * t for t in time_ticks(cfg, state, count, args.ticks, bridge)]
            store.clear()
            b, g = statistics.median(base_ms), statistics.median(bridge_ms)
            results[count] = (running, b, g, g / b)
            print(
                f"vehicles~{count:>5} (running {running:>5} at t={t_state:.0f}s): bare step {b:7.2f} ms  "
                f"bridge tick {g:7.2f} ms  ratio {g / b:5.2f}",
                flush=True,
            )
    for count, (_, _, _, ratio) in results.items():
        print(f"ratio_{count}={ratio:.3f}")
    if 1000 in results and counts[-1] != 1000:
        print(f"ratio_1000={results[1000][3]:.3f}")


if __name__ == "__main__":
    main()
