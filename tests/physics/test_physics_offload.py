"""Paper B, Eq. 5-15, 21-22, 53: partial offloading delay, energy, price, cost and reward."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin_service.physics import (
    edge_cpu_share_hz,
    local_delay_s,
    local_energy_j,
    offload_outcome,
    offload_rate_bps,
    offload_reward,
)

# One task: C = 1 Gcycle, D = 1 MB = 8e6 bit, T = 1 s, on a 2 GHz vehicle, r = 40 Mbit/s,
# RSU share f' = 3 GHz. kappa = 1e-6 J/cycle on board, kappa' = 5e-7 at the RSU; P = 0.1 W;
# delta = 0.1; twin sync t_DT = 10 ms, E_DT = 2 J; p_n = 1, E_max = 2000 J, P_max = 1.
CONSTANTS = dict(
    kappa_local=1e-6,
    kappa_edge=5e-7,
    tx_power_w=0.1,
    output_ratio=0.1,
    twin_sync_energy_j=2.0,
    twin_sync_delay_s=0.01,
    price_per_task=1.0,
    energy_max_j=2000.0,
    price_max=1.0,
)


def outcome(rho: object, **overrides: object):  # noqa: ANN201 - test helper
    args = dict(data_bits=8e6, cycles=1e9, deadline_s=1.0, vehicle_cpu_hz=2e9, rate_bps=40e6, edge_cpu_hz=3e9)
    args.update(overrides)
    return offload_outcome(rho, **args, **CONSTANTS)


def test_local_only_formulas() -> None:
    # Eq. 5: 1e9 / 2e9 = 0.5 s; Eq. 6: 1e-6 * 1e9 = 1000 J
    assert local_delay_s(1e9, 2e9) == pytest.approx(0.5)
    assert local_energy_j(1e9, 1e-6) == pytest.approx(1000.0)


def test_rho_zero_is_exactly_local() -> None:
    # nothing offloaded: t = C / f = 0.5 s, E = kappa C = 1000 J, price 0, no sync overhead;
    # Omega = 0.5 / 1 + 1000 / 2000 + 0 = 1.0, reward 1.0
    o = outcome(0.0)
    assert o.upload_s == 0.0 and o.compute_s == 0.0 and o.download_s == 0.0
    assert o.delay_s == local_delay_s(1e9, 2e9)
    assert o.energy_j == local_energy_j(1e9, 1e-6)
    assert o.price == 0.0
    assert o.cost == pytest.approx(1.0)
    assert o.reward == pytest.approx(1.0)
    assert o.success


def test_rho_half() -> None:
    # up 0.5 * 8e6 / 40e6 = 0.1 s; RSU 0.5e9 / 3e9 = 0.166667 s; down 0.1 * 0.5 * 8e6 / 40e6 = 0.01 s;
    # + t_DT 0.01 s = 0.286667 s, against the local half 0.5e9 / 2e9 = 0.25 s -> t = 0.286667 s.
    # E: tx 0.1 W * 0.1 s = 0.01; RSU 0.5 * 5e-7 * 1e9 + 2 = 252; rx 0.1 * 0.01 = 0.001; local half 500
    # -> 752.011 J. Price 0.5. Omega = 0.286667 + 752.011 / 2000 + 0.5 = 1.162672; reward 0.860088.
    o = outcome(0.5)
    assert o.upload_s == pytest.approx(0.1)
    assert o.compute_s == pytest.approx(0.1666667)
    assert o.download_s == pytest.approx(0.01)
    assert o.local_part_s == pytest.approx(0.25)
    assert o.delay_s == pytest.approx(0.2866667)
    assert o.tx_energy_j == pytest.approx(0.01)
    assert o.compute_energy_j == pytest.approx(252.0)
    assert o.download_energy_j == pytest.approx(0.001)
    assert o.local_part_energy_j == pytest.approx(500.0)
    assert o.energy_j == pytest.approx(752.011)
    assert o.price == pytest.approx(0.5)
    assert o.cost == pytest.approx(1.1626722)
    assert o.reward == pytest.approx(0.8600877)


def test_rho_one() -> None:
    # up 0.2 + RSU 0.333333 + down 0.02 + t_DT 0.01 = 0.563333 s (local part 0).
    # E: 0.02 + (500 + 2) + 0.002 + 0 = 502.022 J. Omega = 0.563333 + 0.251011 + 1 = 1.814344; reward 0.551163
    o = outcome(1.0)
    assert o.local_part_s == 0.0
    assert o.delay_s == pytest.approx(0.5633333)
    assert o.energy_j == pytest.approx(502.022)
    assert o.cost == pytest.approx(1.8143443)
    assert o.reward == pytest.approx(0.5511633)
    assert o.success


def test_missed_deadline_is_a_failure() -> None:
    # T = 0.3 s: rho 0.5 (0.2867 s) meets it, rho 1 (0.5633 s) and rho 0 (0.5 s) miss it
    o = outcome(np.array([0.0, 0.5, 1.0]), deadline_s=0.3)
    np.testing.assert_array_equal(o.success, [False, True, False])


def test_edge_cpu_share_c6() -> None:
    # RSU0 (3 GHz): rho 0.5 + 1.0 = 1.5 -> 3e9 / 1.5 = 2 GHz each. RSU1 (2.5 GHz): rho 0.5 + 0 -> sum
    # below 1, capped at f_m (C.4) = 2.5 GHz. Vehicle with no RSU (-1): 0 Hz.
    share = edge_cpu_share_hz([0, 0, 1, -1, 1], [0.5, 1.0, 0.5, 0.7, 0.0], [3e9, 2.5e9])
    np.testing.assert_allclose(share, [2e9, 2e9, 2.5e9, 0.0, 2.5e9])


def test_offload_reward_is_finite_at_zero_cost() -> None:
    assert offload_reward(0.0) == pytest.approx(1e9)
    assert offload_reward(4.0) == pytest.approx(0.25)


task = dict(
    rho=st.floats(0.0, 1.0),
    data_bits=st.floats(0.5 * 8e6, 2.0 * 8e6),
    cycles=st.floats(0.5e9, 1.5e9),
    deadline_s=st.floats(0.1, 1.0),
    vehicle_cpu_hz=st.floats(1.5e9, 2.5e9),
    distance_m=st.floats(1.0, 5000.0),
    rsu_cpu_hz=st.floats(2.5e9, 3.5e9),
    sharers=st.floats(0.0, 50.0),
)


@given(**task)
def test_any_fraction_gives_finite_nonnegative_terms(
    rho: float,
    data_bits: float,
    cycles: float,
    deadline_s: float,
    vehicle_cpu_hz: float,
    distance_m: float,
    rsu_cpu_hz: float,
    sharers: float,
) -> None:
    rate = offload_rate_bps(distance_m, 10e6, 0.1, 3.0, 1.2e-3, -174.0, max_rate_bps=50e6)
    share = rsu_cpu_hz / max(rho + sharers, 1.0)
    o = outcome(
        rho,
        data_bits=data_bits,
        cycles=cycles,
        deadline_s=deadline_s,
        vehicle_cpu_hz=vehicle_cpu_hz,
        rate_bps=rate,
        edge_cpu_hz=share,
    )
    for name in (
        "upload_s",
        "compute_s",
        "download_s",
        "local_part_s",
        "delay_s",
        "tx_energy_j",
        "compute_energy_j",
        "download_energy_j",
        "local_part_energy_j",
        "energy_j",
        "price",
    ):
        value = getattr(o, name)
        assert np.isfinite(value) and value >= 0.0, name
    assert np.isfinite(o.cost) and o.cost > 0.0
    assert np.isfinite(o.reward) and o.reward > 0.0
    # the task never finishes before either part of it does
    assert o.delay_s >= o.local_part_s
    assert o.delay_s >= o.upload_s + o.compute_s + o.download_s


@given(task["cycles"], task["vehicle_cpu_hz"], task["data_bits"], st.floats(0.0, 1e9))
def test_rho_zero_matches_local_for_any_task(cycles: float, cpu: float, data_bits: float, rate: float) -> None:
    # even with a dead link (rate 0) a fully local task is exactly Eq. 5 / Eq. 6
    o = outcome(0.0, cycles=cycles, vehicle_cpu_hz=cpu, data_bits=data_bits, rate_bps=rate)
    assert o.delay_s == local_delay_s(cycles, cpu)
    assert o.energy_j == local_energy_j(cycles, CONSTANTS["kappa_local"])
