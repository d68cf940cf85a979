"""Time-varying demand for the built scenarios: randomTrips in segments of constant insertion rate.

The number of running vehicles should follow a density profile (off-peak -> peak -> off-peak,
:func:`density_profile`). Vehicles stay in the network for a mean trip duration T that grows with
congestion (:func:`trip_duration_s`), so by the fluid form of Little's law the insertion rate is
``lambda = N/T + dN/dt`` (:func:`insertion_rates`). Trip ends are weighted by lane-metres times a
Gaussian bump around the network centre, so downtown is denser.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from twin_service.config import DemandParams, ScenarioError
from twin_service.scenario.tools import run_python_tool


def density_profile(demand: DemandParams, end_s: float, t_s: np.ndarray) -> np.ndarray:
    """Target vehicles per km^2 at time t: cosine ramp off-peak -> peak (at peak_time_s) -> off-peak."""
    t = np.asarray(t_s, dtype=np.float64)
    peak = demand.peak_time_s
    rise = 0.5 * (1.0 - np.cos(np.pi * np.clip(t / peak, 0.0, 1.0)))
    fall = 0.5 * (1.0 + np.cos(np.pi * np.clip((t - peak) / (end_s - peak), 0.0, 1.0)))
    bump = np.where(t <= peak, rise, fall)
    return demand.offpeak_veh_per_km2 + (demand.peak_veh_per_km2 - demand.offpeak_veh_per_km2) * bump


def trip_duration_s(demand: DemandParams, density: np.ndarray) -> np.ndarray:
    """Mean trip duration at a density: linear between the off-peak and peak measurements."""
    peak_trip = demand.peak_mean_trip_s if demand.peak_mean_trip_s is not None else demand.mean_trip_s
    span = demand.peak_veh_per_km2 - demand.offpeak_veh_per_km2
    frac = (np.asarray(density) - demand.offpeak_veh_per_km2) / span if span else np.zeros_like(density)
    return demand.mean_trip_s + (peak_trip - demand.mean_trip_s) * frac


def insertion_rates(demand: DemandParams, end_s: float, area_km2: float) -> np.ndarray:
    """Insertions per second in each segment so that the running vehicles follow the profile.

    Fluid Little's law: ``dN/dt = lambda - N / T`` with T the mean trip duration at that density, so
    ``lambda = N/T + dN/dt``. The first segment fills the empty network to its target instead
    (no vehicle finishes within it).
    """
    seg = demand.segment_s
    n_seg = int(math.ceil(end_s / seg))
    mid = (np.arange(n_seg) + 0.5) * seg
    density = density_profile(demand, end_s, mid)
    n_target = area_km2 * density
    dt = 1.0
    ahead, behind = density_profile(demand, end_s, mid + dt), density_profile(demand, end_s, mid - dt)
    slope = area_km2 * (ahead - behind) / (2 * dt)
    rates = n_target / trip_duration_s(demand, density) + slope
    rates[0] = area_km2 * float(density_profile(demand, end_s, np.array(seg))) / seg
    return np.maximum(rates, 1e-3)


def _write_weights(net_file: Path, demand: DemandParams, end_s: float, prefix: Path) -> None:
    """randomTrips source/destination weights: lane-metres x downtown bump around the net centre."""
    import sumolib

    net = sumolib.net.readNet(str(net_file))
    (xmin, ymin), (xmax, ymax) = net.getBBoxXY()
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    lines = ["<edgedata>", f'    <interval begin="0" end="{end_s:g}">']
    for e in net.getEdges():
        if not e.allows("passenger"):
            continue
        shape = np.asarray(e.getRawShape())[:, :2]
        mx, my = shape.mean(axis=0)
        bump = math.exp(-((mx - cx) ** 2 + (my - cy) ** 2) / (2 * demand.downtown_sigma_m**2))
        w = e.getLength() * e.getLaneNumber() * (1.0 + demand.downtown_gain * bump)
        lines.append(f'        <edge id="{e.getID()}" value="{w:.3f}"/>')
    lines += ["    </interval>", "</edgedata>", ""]
    for suffix in (".src.xml", ".dst.xml"):
        Path(f"{prefix}{suffix}").write_text("\n".join(lines))


def build_demand(net_file: Path, demand: DemandParams, end_s: float, area_km2: float, seed: int, work: Path) -> Path:
    """randomTrips with per-segment insertion periods, routed and validated by duarouter."""
    _write_weights(net_file, demand, end_s, work / "weights")
    periods = [f"{1.0 / r:.4f}" for r in insertion_rates(demand, end_s, area_km2)]
    routes = work / "routes.rou.xml"
    run_python_tool(
        "randomTrips.py",
        [
            "--net-file",
            net_file,
            "--output-trip-file",
            work / "trips.trips.xml",
            "--route-file",
            routes,
            "--weights-prefix",
            work / "weights",
            "--seed",
            seed,
            "--begin",
            0,
            "--end",
            f"{end_s:g}",
            "--period",
            *periods,
            "--min-distance",
            f"{demand.min_trip_m:g}",
            "--validate",
            "--remove-loops",
            "--vehicle-class",
            "passenger",
            "--prefix",
            "veh",
            "--trip-attributes",
            'departLane="best" departSpeed="max"',
        ],
        "randomTrips",
        cwd=work,
    )
    if not routes.is_file():
        raise ScenarioError("randomTrips wrote no routes")
    return routes
