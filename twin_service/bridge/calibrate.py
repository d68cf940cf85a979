"""SUMO runs for the scenario calibration (``twin_service.scenario.calibrate``).

The calibration asks how loaded the RSUs get under nearest-server hosting; the hosting trace comes from a
real SUMO run, read with the bridge's own backend, and is replayed by the scenario code for any e_v.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from twin_service.bridge.backends import SumoError, open_backend
from twin_service.config import ScenarioError
from twin_service.physics import nearest_feasible_server, projected_distance_matrix_m
from twin_service.scenario.calibrate import HostingTrace
from twin_service.scenario.edge_servers import EdgeLayout
from twin_service.scenario.geo import read_projection
from twin_service.scenario.uav import patrol_table_from_layout, uav_positions


def record_hosting(
    sumocfg: str | Path,
    layout: EdgeLayout,
    net_file: str | Path,
    record_from_s: float,
    end_s: float,
    tick_s: float = 1.0,
    seed: int | None = None,
) -> HostingTrace:
    """Run SUMO headless (libsumo) to ``end_s``; from ``record_from_s`` on, record each tick's hosts.

    Hosting is the nearest RSU or UAV whose range covers the vehicle (UAVs at their patrol position at
    that time), else the satellite: the "nearest-server hosting" the calibration targets.
    """
    read_projection(net_file)  # the bridge needs a geo-referenced net: fail here, with its message
    patrols = patrol_table_from_layout(layout) if len(layout.uav_indices) else None
    uav_idx = layout.uav_indices
    srv_x = layout.xy_m[:, 0].copy()
    srv_y = layout.xy_m[:, 1].copy()
    alt = layout.altitude_m
    range_m = layout.range_m
    sat = layout.satellite_index
    try:
        backend = open_backend("libsumo", sumocfg, seed=seed, step_length_s=tick_s, end_s=end_s)
    except SumoError as exc:
        raise ScenarioError(f"SUMO could not start on {sumocfg}: {exc}") from exc
    start_s = backend.time_s
    times: list[float] = []
    hosts: list[NDArray[np.intp]] = []
    try:
        while True:
            backend.step()
            t = backend.time_s
            if t >= record_from_s:
                batch = backend.read_vehicles()
                if patrols is not None:
                    uxy, _ = uav_positions(patrols, t - start_s)
                    srv_x[uav_idx], srv_y[uav_idx] = uxy[:, 0], uxy[:, 1]
                # The engine's own distances (plane, in the net's projection).
                dist = projected_distance_matrix_m(batch.x_m, batch.y_m, srv_x, srv_y, alt)
                hosts.append(nearest_feasible_server(dist, dist <= range_m, sat).astype(np.intp))
                times.append(t)
            if t >= end_s:
                break
    finally:
        backend.close()
    return HostingTrace(np.asarray(times), tuple(hosts))
