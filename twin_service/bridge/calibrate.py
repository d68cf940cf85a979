"""Headless SUMO runs for scenario calibration and provisioning (``twin_service.scenario.calibrate``, ``.provision``).

The calibration asks how loaded the RSUs get under nearest-server hosting. SUMO runs once, read with the
bridge's own backend, and every vehicle's position is kept per tick; the scenario code then replays the
hosting for any layout (:func:`twin_service.scenario.calibrate.nearest_hosting`) and the load for any e_v.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from twin_service.bridge.backends import SumoError, open_backend
from twin_service.config import ScenarioError
from twin_service.scenario.calibrate import HostingTrace, PositionTrace, nearest_hosting
from twin_service.scenario.edge_servers import EdgeLayout
from twin_service.scenario.geo import read_projection
from twin_service.scenario.provision import DemandProgress, DemandTrace, PeakWindowRecorder

TickSink = Callable[[float, NDArray[np.float64], NDArray[np.float64]], None]
"""Receives each tick's sim time and the running vehicles' x and y (net metres)."""


def drive_sumo(
    sumocfg: str | Path,
    net_file: str | Path,
    end_s: float,
    on_tick: TickSink,
    tick_s: float = 1.0,
    seed: int | None = None,
    read_from_s: float = -np.inf,
    extra_args: list[str] | None = None,
) -> float:
    """Run SUMO headless (libsumo) from the configuration's begin to ``end_s``; returns the begin time.

    After every step from ``read_from_s`` on, ``on_tick`` gets the sim time and every running vehicle's
    position (earlier steps are not read: reading costs about as much as a tenth of a step).
    """
    read_projection(net_file)  # the bridge needs a geo-referenced net: fail here, with its message
    try:
        backend = open_backend("libsumo", sumocfg, seed=seed, step_length_s=tick_s, end_s=end_s, extra_args=extra_args)
    except SumoError as exc:
        raise ScenarioError(f"SUMO could not start on {sumocfg}: {exc}") from exc
    start_s = backend.time_s
    try:
        while True:
            backend.step()
            t = backend.time_s
            if t >= read_from_s:
                batch = backend.read_vehicles()
                on_tick(t, batch.x_m, batch.y_m)
            if t >= end_s:
                break
    except SumoError as exc:
        raise ScenarioError(f"SUMO failed on {sumocfg}: {exc}") from exc
    finally:
        backend.close()
    return start_s


def record_positions(
    sumocfg: str | Path,
    net_file: str | Path,
    record_from_s: float,
    end_s: float,
    tick_s: float = 1.0,
    seed: int | None = None,
) -> PositionTrace:
    """Run SUMO to ``end_s``; from ``record_from_s`` on, keep every vehicle's position at each tick."""
    times: list[float] = []
    xs: list[NDArray[np.float64]] = []
    ys: list[NDArray[np.float64]] = []

    def keep(t: float, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        times.append(t)
        xs.append(x)
        ys.append(y)

    start_s = drive_sumo(sumocfg, net_file, end_s, keep, tick_s, seed, read_from_s=record_from_s)
    return PositionTrace(start_s, np.asarray(times), tuple(xs), tuple(ys))


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
    return nearest_hosting(record_positions(sumocfg, net_file, record_from_s, end_s, tick_s, seed), layout)


def record_demand(
    sumocfg: str | Path,
    net_file: str | Path,
    end_s: float,
    tick_s: float = 1.0,
    seed: int | None = None,
    progress: DemandProgress | None = None,
) -> DemandTrace:
    """The import's demand pass: SUMO headless over the whole scenario, quiet (``--verbose false``).

    Counts the running vehicles every tick and keeps their positions around the busiest minute
    (:class:`twin_service.scenario.provision.PeakWindowRecorder`: bounded memory on long scenarios).
    ``progress(sim_time_s, end_s, vehicles)`` is called after every tick.
    """
    recorder = PeakWindowRecorder(tick_s)

    def on_tick(t: float, x: NDArray[np.float64], y: NDArray[np.float64]) -> None:
        recorder.add(t, x, y)
        if progress is not None:
            progress(t, end_s, len(x))

    start_s = drive_sumo(sumocfg, net_file, end_s, on_tick, tick_s, seed, extra_args=["--verbose", "false"])
    return recorder.result(start_s)
