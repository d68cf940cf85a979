"""The load dynamic behind the e_v calibration, and the committed city's overload at the peak."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin_service.bridge.calibrate import record_hosting
from twin_service.config import load_params
from twin_service.scenario.calibrate import (
    PEAK_HALFWIDTH_S,
    WARMUP_S,
    HostingTrace,
    calibrate_cycles_per_bit,
    overloaded_rsu_share,
    round_up_3sig,
    rsu_load_trace,
    share_at_peak,
)
from twin_service.scenario.edge_servers import EdgeLayout, EdgeServer, read_edge_servers


def _layout(n_rsu: int, cache_mb: float) -> EdgeLayout:
    rsus = tuple(
        EdgeServer(f"r{k}", "rsu", 100.0 * k, 0.0, 0.0, 0.0, 0.0, 1200.0, cache_mb, 32e9) for k in range(n_rsu)
    )
    sat = EdgeServer("s", "satellite", 0.0, 0.0, 0.0, 0.0, 550e3, math.inf, 1e9, 80e9)
    return EdgeLayout((*rsus, sat))


def test_load_and_backlog_by_hand():
    """RSU 0 hosts 3 vehicles of 1 MB each tick and drains 2 MB (32 GHz / 2000 cycles/bit = 16 Mbit)."""
    layout = _layout(2, cache_mb=4.0)
    hosts = tuple(np.array([0, 0, 0, 2]) for _ in range(4))  # one vehicle on the satellite
    trace = HostingTrace(np.arange(4.0), hosts)
    loads = rsu_load_trace(trace, layout, data_size_mb=1.0, cycles_per_bit=2000.0)
    np.testing.assert_allclose(loads[:, 0] / 8e6, [3, 4, 5, 6])  # MB: backlog grows by 1 MB a tick
    np.testing.assert_allclose(loads[:, 1], 0.0)
    np.testing.assert_allclose(loads[:, 2] / 8e6, [1, 1, 1, 1])  # 80 GHz drains it all
    shares = overloaded_rsu_share(trace, layout, 1.0, 2000.0)
    np.testing.assert_allclose(shares, [0, 0, 0.5, 0.5])  # overloaded once S' > 4 MB


def test_bisection_hits_the_target():
    """Five RSUs hosting 1..5 vehicles: 20 % overloaded means only the busiest one."""
    layout = _layout(5, cache_mb=300.0)
    host = np.repeat(np.arange(5), np.arange(1, 6))
    trace = HostingTrace(np.arange(0.0, 300.0), tuple(host for _ in range(300)))
    ev = calibrate_cycles_per_bit(trace, layout, data_size_mb=2.0, peak_s=200.0)
    assert share_at_peak(trace, layout, 2.0, ev, 200.0) >= 0.2
    assert share_at_peak(trace, layout, 2.0, ev * 0.99, 200.0) < 0.2 or ev == round_up_3sig(ev * 0.99)
    assert share_at_peak(trace, layout, 2.0, ev, 200.0) < 0.4


def test_round_up_keeps_three_digits():
    assert [round_up_3sig(v) for v in (59.96, 60.0, 60.01, 0.012341)] == [60.0, 60.0, 60.1, 0.0124]


@pytest.mark.timeout(120)
def test_committed_city_overloads_10_to_30_percent_of_rsus_at_peak(city_dir):
    """SUMO (libsumo) up to just past the peak, nearest-server hosting, the committed e_v."""
    params = load_params(city_dir)
    layout = read_edge_servers(city_dir / params.scenario.edge_servers_file)
    peak = params.demand.peak_time_s
    trace = record_hosting(
        city_dir / params.scenario.sumocfg,
        layout,
        city_dir / params.scenario.net_file,
        record_from_s=peak - WARMUP_S,
        end_s=peak + PEAK_HALFWIDTH_S,
        seed=params.scenario.seed,
    )
    assert trace.vehicles.mean() > 1000
    share = share_at_peak(trace, layout, params.task.data_size_mb, params.task.cycles_per_bit, peak)
    assert 0.10 <= share <= 0.30
    assert share == pytest.approx(params.calibration["overloaded_rsu_share_at_peak"], abs=1e-3)
