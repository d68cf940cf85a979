"""The satellite's finite queue in a live run: no latency grows without bound, even with every twin on it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np

from twin_service.bridge.runner import RunOptions, open_bridge
from twin_service.config import BITS_PER_MB, load_params
from twin_service.scenario.edge_servers import EdgeLayout, read_edge_servers, write_edge_servers
from twin_service.twins.server import RedisHandle


def test_a_flooded_satellite_drops_and_fails_instead_of_queueing_forever(
    small_scenario: Path, redis_server: RedisHandle, key_prefix: str, tmp_path: Path
):
    """Every RSU and UAV out of reach (1 m range): all twins go to the satellite, far more than it can work.

    It drains 80e9 / 40 = 2 Gbit/s against 16 Mbit per twin a second: 125 twins. Without a bound its
    backlog, and Eq. 9's wait, would grow by the excess every second for the whole run.
    """
    folder = tmp_path / "flooded"
    shutil.copytree(small_scenario, folder)
    layout = read_edge_servers(folder / "edge_servers.add.xml")
    out_of_reach = [s if s.tier == "satellite" else dataclasses.replace(s, range_m=1.0) for s in layout.servers]
    write_edge_servers(EdgeLayout(tuple(out_of_reach)), folder / "edge_servers.add.xml")
    toml = (folder / "params.toml").read_text()  # params.toml is the source of the ranges: both say 1 m
    toml = toml.replace("[rsu]\nrange_m = 600.0", "[rsu]\nrange_m = 1.0").replace("[uav]\n", "[uav]\nrange_m = 1.0\n")
    (folder / "params.toml").write_text(toml)
    params = load_params(folder)
    e_v, c_s = params.task.cycles_per_bit, params.satellite.cpu_hz
    queue_bits = params.satellite.queue_mb * BITS_PER_MB
    wait_bound_s = e_v * queue_bits / c_s  # 40 * 6e9 / 80e9 = 3 s

    options = RunOptions(scenario=folder, key_prefix=key_prefix)
    overflowing = 0
    with open_bridge(options, redis=redis_server) as (engine, _store, _):
        sat = engine.sat_index
        for _ in range(240):
            frame, ctx = engine.tick()
            engine.apply(engine.decisions.decide(ctx))
            v, s = frame.vehicle_columns, frame.server_columns
            on_sat = v["host_index"].astype(int) == sat
            assert ctx.observation.mask[:, sat].all()  # never masked (Eq. 23), full or not
            assert s["backlog_bits"][sat] <= queue_bits
            assert np.all(v["compute_s"] <= wait_bound_s * (1 + 1e-9))
            full = s["load_bits"][sat] > queue_bits
            # Eq. 14 with the queue: the satellite's twins fail exactly while it overflows.
            np.testing.assert_array_equal(v["failed"][on_sat] > 0, np.full(on_sat.sum(), full))
            overflowing += bool(full)
        assert on_sat.all() and on_sat.sum() * 2 * BITS_PER_MB > c_s / e_v  # flooded indeed
    assert overflowing > 100
