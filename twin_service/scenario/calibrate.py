"""Calibrate paper A's e_v (cycles per bit) so that RSUs overload at the city peak, as NOTES.md asks.

Paper A's Eq. 8-9 need a backlog dynamic it leaves out. The one used here (and by the bridge):

* hosting: every vehicle's twin sits on the nearest RSU/UAV whose range covers it (UAVs at their
  patrol position, slant distance with altitude), else on the satellite;
* every tick each vehicle sends S_v (``task.data_size_mb``) to its host:
  ``S'_m = backlog_m + sum of S_v hosted on m`` (Eq. 8, :func:`physics.migration.server_load_bits`);
* after the tick the server has worked off ``C_m / e_v * tick_s`` bits:
  ``backlog_m = max(0, S'_m - C_m / e_v * tick_s)`` (:func:`physics.migration.drain_backlog_bits`);
* an RSU is overloaded when ``S'_m > L_max`` (``rsu.cache_mb``);
* what neither the tick's work nor the cache takes is dropped (:func:`physics.migration.dropped_bits`;
  the satellite's cache is its finite queue, ``satellite.queue_mb``): :func:`dropped_share_at_peak` is the
  share of the twins' data dropped around the peak, recorded beside the overloaded RSU share.

:func:`twin_service.bridge.calibrate.record_positions` runs SUMO headless (libsumo) over a window around
the demand peak and keeps every vehicle's position per tick; :func:`nearest_hosting` turns those into each
tick's host for a layout, and the load dynamic is then replayed cheaply for any e_v (or, on an imported
city, for any server count: :mod:`twin_service.scenario.provision`).
A larger e_v drains less, so the overloaded share only grows with e_v: :func:`calibrate_cycles_per_bit`
bisects log(e_v) until the share at the peak (mean over ``peak +- peak_halfwidth_s``) reaches the
target (20 %, inside NOTES.md's 10-30 %), then rounds e_v up to 3 significant digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from twin_service.config import BITS_PER_MB, ScenarioError, ScenarioParams
from twin_service.physics import (
    drain_backlog_bits,
    dropped_bits,
    nearest_feasible_server,
    projected_distance_matrix_m,
    satellite_queue_bits,
    server_load_bits,
)
from twin_service.scenario.edge_servers import EdgeLayout
from twin_service.scenario.uav import patrol_table_from_layout, uav_positions

CITY_CYCLES_PER_BIT = 72.3
"""e_v found by calibrating ``city`` with seed 1 (see its params.toml [calibration]); the rural
scenario reuses it so that city and rural differ in topology and demand only, not in physics."""
CITY_DROPPED_SHARE = 0.1093
"""Share of the twins' data that nearest-server hosting drops at the city's peak with that e_v (its params.toml
[calibration] ``dropped_data_share_at_peak``): what an imported city is provisioned to (``scenario.provision``)."""


TARGET_SHARE = 0.20
LOAD_MODEL = (
    "S' = backlog + n_hosted * S_v per tick; backlog = clip(S' - cpu_hz / e_v * tick_s, 0, cache); "
    "the satellite's cache is its queue; dropped = what the clip cuts off"
)
WARMUP_S = 600.0
"""The window starts this long before the peak with empty backlogs."""
AFTER_PEAK_S = 300.0
PEAK_HALFWIDTH_S = 60.0


@dataclass(frozen=True)
class HostingTrace:
    """Per recorded tick: the sim time and every running vehicle's host (an index into the layout)."""

    times_s: NDArray[np.float64]
    hosts: tuple[NDArray[np.intp], ...]

    @property
    def vehicles(self) -> NDArray[np.int64]:
        return np.array([len(h) for h in self.hosts])


@dataclass(frozen=True)
class PositionTrace:
    """Per recorded tick: the sim time and every running vehicle's position (net metres, SUMO's id order)."""

    start_s: float
    """Sim time the SUMO run began at: UAVs start their patrols then, as in the bridge."""
    times_s: NDArray[np.float64]
    x_m: tuple[NDArray[np.float64], ...]
    y_m: tuple[NDArray[np.float64], ...]

    @property
    def vehicles(self) -> NDArray[np.int64]:
        return np.array([len(x) for x in self.x_m], dtype=np.int64)


@dataclass(frozen=True)
class SiteIndex:
    """A layout's servers with the RSU units of one site (the same coordinates) folded into one candidate.

    ``reduced`` candidates are the RSU sites in order of their first unit, then the UAVs, then the satellite;
    ``first_unit[c]`` is the layout index of candidate ``c``'s first unit and ``units[c]`` how many it has
    (1 for a UAV or the satellite).
    """

    first_unit: NDArray[np.intp]
    units: NDArray[np.intp]

    @classmethod
    def of(cls, layout: EdgeLayout) -> SiteIndex:
        rsu = layout.rsu_indices
        xy = layout.xy_m[rsu]
        first, units = [], []
        for k in range(len(rsu)):
            if k and np.array_equal(xy[k], xy[k - 1]):  # the layout writes a site's units one after another
                units[-1] += 1
            else:
                first.append(int(rsu[k]))
                units.append(1)
        is_rsu = set(rsu.tolist())
        others = [i for i in range(len(layout)) if i not in is_rsu]
        return cls(np.array(first + others, dtype=np.intp), np.array(units + [1] * len(others), dtype=np.intp))

    @property
    def stacked(self) -> bool:
        return bool((self.units > 1).any())

    def spread(self, candidate: NDArray[np.intp]) -> NDArray[np.intp]:
        """Layout index of each vehicle's host: its candidate's units take its vehicles in turn (SUMO's order)."""
        host = self.first_unit[candidate]
        if not self.stacked or len(candidate) == 0:
            return host
        order = np.argsort(candidate, kind="stable")
        ranked = candidate[order]
        rank = np.empty(len(candidate), dtype=np.intp)
        rank[order] = np.arange(len(candidate)) - np.searchsorted(ranked, ranked, side="left")
        return host + rank % self.units[candidate]


def nearest_hosting(positions: PositionTrace, layout: EdgeLayout) -> HostingTrace:
    """Each tick's host of every vehicle under nearest-server hosting, for ``layout``.

    The nearest RSU site or UAV whose range covers the vehicle (UAVs where their patrol has them at that
    time; plane distances with altitude in the net's projection, as the engine computes them), else
    the satellite: the hosting the calibration targets. A site of several RSU units shares its vehicles
    among them evenly (each tick in turn), as one server of that many times the capacity would.
    """
    sites = SiteIndex.of(layout)
    cand = sites.first_unit
    patrols = patrol_table_from_layout(layout) if len(layout.uav_indices) else None
    uav_idx = np.searchsorted(cand, layout.uav_indices) if sites.stacked else layout.uav_indices
    srv_x = layout.xy_m[cand, 0].copy()
    srv_y = layout.xy_m[cand, 1].copy()
    alt = layout.altitude_m[cand]
    range_m = layout.range_m[cand]
    sat = int(np.flatnonzero(cand == layout.satellite_index)[0])
    hosts: list[NDArray[np.intp]] = []
    for t, x, y in zip(positions.times_s, positions.x_m, positions.y_m, strict=True):
        if patrols is not None:
            uxy, _ = uav_positions(patrols, t - positions.start_s)
            srv_x[uav_idx], srv_y[uav_idx] = uxy[:, 0], uxy[:, 1]
        dist = projected_distance_matrix_m(x, y, srv_x, srv_y, alt)
        hosts.append(sites.spread(nearest_feasible_server(dist, dist <= range_m, sat).astype(np.intp)))
    return HostingTrace(np.asarray(positions.times_s, dtype=np.float64), tuple(hosts))


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate_scenario` found; :meth:`as_dict` is the params.toml ``[calibration]``."""

    cycles_per_bit: float
    share_at_peak: float
    share_mean_window: float
    share_max_window: float
    dropped_share_at_peak: float
    """Share of the data offered around the peak that the servers drop (:func:`dropped_share_at_peak`)."""
    vehicles_at_peak: float
    satellite_hosted_share_at_peak: float
    """Share of vehicles out of every RSU/UAV range (hosted by the satellite) around the peak."""
    peak_time_s: float
    window_begin_s: float
    window_end_s: float
    method: str
    calibrated: bool = True
    """False when e_v was given and only the share was measured."""

    def as_dict(self) -> dict[str, float | str]:
        return {
            "overloaded_rsu_share_at_peak": round(self.share_at_peak, 4),
            "overloaded_rsu_share_window_mean": round(self.share_mean_window, 4),
            "overloaded_rsu_share_window_max": round(self.share_max_window, 4),
            **({"target_share": TARGET_SHARE} if self.calibrated else {}),
            "dropped_data_share_at_peak": round(self.dropped_share_at_peak, 4),
            "vehicles_at_peak": round(self.vehicles_at_peak, 1),
            "satellite_hosted_share_at_peak": round(self.satellite_hosted_share_at_peak, 4),
            "peak_time_s": self.peak_time_s,
            "peak_halfwidth_s": PEAK_HALFWIDTH_S,
            "window_begin_s": self.window_begin_s,
            "window_end_s": self.window_end_s,
            "hosting": "nearest RSU/UAV in range, else satellite",
            "load_model": LOAD_MODEL,
            "method": self.method,
        }


class HostingRecorder(Protocol):
    """Runs SUMO and records every tick's nearest-server hosting (``twin_service.bridge.calibrate``).

    Scenario code never steps SUMO itself (only the bridge imports libsumo), so whoever builds a scenario
    passes this in: the CLI and the tests give :func:`twin_service.bridge.calibrate.record_hosting`.
    """

    def __call__(
        self,
        sumocfg: str | Path,
        layout: EdgeLayout,
        net_file: str | Path,
        record_from_s: float,
        end_s: float,
        tick_s: float = 1.0,
        seed: int | None = None,
    ) -> HostingTrace: ...


def server_hold_bits(layout: EdgeLayout, satellite_queue_mb: float = math.inf) -> NDArray[np.float64]:
    """``(M,)`` most each server holds after a tick's work, bits: its cache, the satellite its queue (as the bridge)."""
    is_satellite = np.arange(len(layout)) == layout.satellite_index
    queue = satellite_queue_bits(is_satellite, satellite_queue_mb * BITS_PER_MB)
    return np.minimum(layout.cache_mb * BITS_PER_MB, queue)


def rsu_load_trace(
    trace: HostingTrace,
    layout: EdgeLayout,
    data_size_mb: float,
    cycles_per_bit: float,
    tick_s: float = 1.0,
    satellite_queue_mb: float = math.inf,
) -> NDArray[np.float64]:
    """``(T, M)`` loads S'_m (bits) of every server at every recorded tick, backlogs starting empty."""
    data_bits = data_size_mb * BITS_PER_MB
    cpu = layout.cpu_hz
    cache_bits = server_hold_bits(layout, satellite_queue_mb)
    backlog = np.zeros(len(layout))
    loads = np.empty((len(trace.hosts), len(layout)))
    for k, host in enumerate(trace.hosts):
        load = server_load_bits(host, data_bits, backlog)
        loads[k] = load
        # The bridge's load model exactly: what exceeds the cache is dropped, not queued.
        backlog = drain_backlog_bits(load, cpu, cycles_per_bit, tick_s, cache_bits)
    return loads


def overloaded_rsu_share(
    trace: HostingTrace, layout: EdgeLayout, data_size_mb: float, cycles_per_bit: float, tick_s: float = 1.0
) -> NDArray[np.float64]:
    """``(T,)`` share of RSUs with ``S' > L_max`` at each recorded tick."""
    loads = rsu_load_trace(trace, layout, data_size_mb, cycles_per_bit, tick_s)
    rsu = layout.rsu_indices
    limit = layout.cache_mb[rsu] * BITS_PER_MB
    return (loads[:, rsu] > limit).mean(axis=1)


def dropped_share_at_peak(
    trace: HostingTrace,
    layout: EdgeLayout,
    data_size_mb: float,
    cycles_per_bit: float,
    peak_s: float,
    tick_s: float = 1.0,
    satellite_queue_mb: float = math.inf,
    halfwidth_s: float = PEAK_HALFWIDTH_S,
) -> float:
    """Share of the twins' data offered over ``peak_s +- halfwidth_s`` that the servers drop.

    Offered is every running vehicle's S_v each tick; dropped is what overflows the caches of the servers
    the hosting overloads (:func:`physics.dropped_bits`; the satellite's cache is its queue).
    """
    loads = rsu_load_trace(trace, layout, data_size_mb, cycles_per_bit, tick_s, satellite_queue_mb)
    hold = server_hold_bits(layout, satellite_queue_mb)
    dropped = dropped_bits(loads, layout.cpu_hz, cycles_per_bit, tick_s, hold).sum(axis=1)
    at_peak = _peak_mask(trace, peak_s, halfwidth_s)
    offered = trace.vehicles[at_peak].sum() * data_size_mb * BITS_PER_MB
    return float(dropped[at_peak].sum() / offered) if offered > 0 else 0.0


def _satellite_share(trace: HostingTrace, satellite_index: int, ticks: NDArray[np.bool_]) -> float:
    on_sat = sum(int((h == satellite_index).sum()) for h, k in zip(trace.hosts, ticks, strict=True) if k)
    total = sum(len(h) for h, k in zip(trace.hosts, ticks, strict=True) if k)
    return on_sat / total if total else 0.0


def _peak_mask(trace: HostingTrace, peak_s: float, halfwidth_s: float) -> NDArray[np.bool_]:
    mask = np.abs(trace.times_s - peak_s) <= halfwidth_s
    if not mask.any():
        raise ScenarioError(f"the recorded window has no tick within {halfwidth_s:g} s of the peak at {peak_s:g} s")
    return mask


def share_at_peak(
    trace: HostingTrace,
    layout: EdgeLayout,
    data_size_mb: float,
    cycles_per_bit: float,
    peak_s: float,
    tick_s: float = 1.0,
    halfwidth_s: float = PEAK_HALFWIDTH_S,
) -> float:
    """Mean overloaded RSU share over ``peak_s +- halfwidth_s``."""
    shares = overloaded_rsu_share(trace, layout, data_size_mb, cycles_per_bit, tick_s)
    return float(shares[_peak_mask(trace, peak_s, halfwidth_s)].mean())


def calibrate_cycles_per_bit(
    trace: HostingTrace,
    layout: EdgeLayout,
    data_size_mb: float,
    peak_s: float,
    tick_s: float = 1.0,
    target: float = TARGET_SHARE,
    lo: float = 1.0,
    hi: float = 1e5,
    iterations: int = 40,
) -> float:
    """Bisection on log(e_v) for the share at peak to reach ``target``; rounded up to 3 significant digits."""

    def share(ev: float) -> float:
        return share_at_peak(trace, layout, data_size_mb, ev, peak_s, tick_s)

    if share(hi) < target:
        raise ScenarioError(
            f"even e_v = {hi:g} cycles/bit overloads only {share(hi):.1%} of RSUs at the peak; "
            f"the demand is too low for the {target:.0%} target"
        )
    if share(lo) >= target:
        return lo
    a, b = math.log(lo), math.log(hi)
    for _ in range(iterations):
        mid = 0.5 * (a + b)
        if share(math.exp(mid)) >= target:
            b = mid
        else:
            a = mid
    return round_up_3sig(math.exp(b))  # the smallest e_v found that reaches the target, rounded up


def round_up_3sig(value: float) -> float:
    """Round up to 3 significant digits: the share only grows with e_v, so it stays on target."""
    step = 10.0 ** (math.floor(math.log10(value)) - 2)
    return float(f"{math.ceil(value / step - 1e-9) * step:.3g}")


def calibrate_scenario(
    folder: str | Path,
    params: ScenarioParams,
    layout: EdgeLayout,
    record_hosting: HostingRecorder,
    cycles_per_bit: float | None = None,
    warmup_s: float = WARMUP_S,
    after_peak_s: float = AFTER_PEAK_S,
) -> CalibrationResult:
    """Record hosting over ``[peak - warmup, peak + after]`` and calibrate (or just measure) e_v.

    With ``cycles_per_bit`` given, e_v is not searched: the share it gives is measured and recorded.
    """
    folder = Path(folder)
    peak = params.demand.peak_time_s
    begin = max(params.scenario.begin_s, peak - warmup_s)
    end = min(params.scenario.end_s, peak + after_peak_s)
    tick = params.simulation.tick_s
    trace = record_hosting(
        folder / params.scenario.sumocfg,
        layout,
        folder / params.scenario.net_file,
        begin,
        end,
        tick,
        seed=params.scenario.seed,
    )
    s_v = params.task.data_size_mb
    if cycles_per_bit is None:
        ev = calibrate_cycles_per_bit(trace, layout, s_v, peak, tick)
        method = (
            f"bisection on log(e_v) for a {TARGET_SHARE:.0%} overloaded RSU share at the peak, "
            "S_v fixed; SUMO (libsumo) run from the scenario begin, hosting recorded over the window"
        )
    else:
        ev = float(cycles_per_bit)
        method = "e_v taken from the city calibration (shared physics); share measured the same way"
    return measure_overload(
        trace,
        layout,
        s_v,
        ev,
        peak,
        tick,
        method,
        calibrated=cycles_per_bit is None,
        satellite_queue_mb=params.satellite.queue_mb,
    )


def measure_overload(
    trace: HostingTrace,
    layout: EdgeLayout,
    data_size_mb: float,
    cycles_per_bit: float,
    peak_s: float,
    tick_s: float,
    method: str,
    calibrated: bool = False,
    satellite_queue_mb: float = math.inf,
) -> CalibrationResult:
    """The overloaded RSU share (at the peak, over the window), dropped data and hosting figures of ``trace``."""
    shares = overloaded_rsu_share(trace, layout, data_size_mb, cycles_per_bit, tick_s)
    at_peak = _peak_mask(trace, peak_s, PEAK_HALFWIDTH_S)
    return CalibrationResult(
        cycles_per_bit=cycles_per_bit,
        share_at_peak=float(shares[at_peak].mean()),
        share_mean_window=float(shares.mean()),
        share_max_window=float(shares.max()),
        dropped_share_at_peak=dropped_share_at_peak(
            trace, layout, data_size_mb, cycles_per_bit, peak_s, tick_s, satellite_queue_mb
        ),
        vehicles_at_peak=float(trace.vehicles[at_peak].mean()),
        satellite_hosted_share_at_peak=_satellite_share(trace, layout.satellite_index, at_peak),
        peak_time_s=peak_s,
        window_begin_s=float(trace.times_s[0]),
        window_end_s=float(trace.times_s[-1]),
        method=method,
        calibrated=calibrated,
    )
