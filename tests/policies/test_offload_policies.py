"""Offloading heuristics: hand-computed cases and what always holds (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_service.config import OffloadParams
from twin_service.observe import OFFLOAD_FEATURES
from twin_service.policies import OFFLOAD_HEURISTICS, OffloadInputs, expected_outcome, offload_policy
from twin_service.policies.offload import LocalOnlyPolicy, NearestLeastLoadedPolicy

# No price (p_n = 0) and no twin-sync cost, so that offloading pays whenever it is faster. The edge
# spends as much energy per cycle as the vehicle (kappa' = kappa), as the hand-computed figures assume.
FREE = OffloadParams(price_per_task=0.0, kappa_edge=1e-6)
PRICED = OffloadParams(price_per_task=1.0, price_max=1.0, kappa_edge=1e-6)


def inputs(deadline_s, host=None, *, cycles=1e9, f_hz=1e9, r_bps=8e7, data_bits=8e6, host_cpu_hz=4e9):
    n = len(deadline_s)

    def col(v):
        return np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()

    now = {k: np.zeros(n) for k in OFFLOAD_FEATURES}
    now.update(
        f_hz=col(f_hz),
        r_bps=col(r_bps),
        data_bits=col(data_bits),
        cycles=col(cycles),
        deadline_s=col(deadline_s),
        host_cpu_hz=col(host_cpu_hz),
        energy_frac=col(1.0),
    )
    return OffloadInputs(now, None, None if host is None else np.asarray(host, dtype=np.int64))


def test_local_only_is_the_local_cost_model():
    x = inputs([0.5, 2.0])
    d = LocalOnlyPolicy(FREE).decide(x)
    assert d.rho.tolist() == [0.0, 0.0]
    # 1 Gcycle on 1 GHz: 1 s (Eq. 5), 1e-6 J/cycle: 1000 J (Eq. 6); cost 1/T + 1000/1500 (Eq. 22).
    assert d.delay_s == pytest.approx([1.0, 1.0])
    assert d.energy_j == pytest.approx([1000.0, 1000.0])
    assert d.cost == pytest.approx([2.0 + 2 / 3, 0.5 + 2 / 3])
    assert d.success.tolist() == [False, True]


def test_nearest_least_loaded_offloads_when_it_meets_the_deadline_cheaper():
    # Alone on a 4 GHz host: upload 8 Mbit / 80 Mbit/s = 0.1 s, compute 1 Gcycle / 4 GHz = 0.25 s,
    # download 0.1 * 0.1 s = 0.01 s: 0.36 s <= 0.5 s, where local takes 1 s.
    d = NearestLeastLoadedPolicy(FREE).decide(inputs([0.5], host=[0]))
    assert d.rho.tolist() == [1.0]
    assert d.delay_s == pytest.approx([0.36])
    # Energy: radio 0.1 W * (0.1 + 0.01) s + edge 1e-6 * 1e9 J; cost 0.36/0.5 + 1000.011/1500.
    assert d.energy_j == pytest.approx([1000.011])
    assert d.cost == pytest.approx([0.72 + 1000.011 / 1500])
    assert d.success.tolist() == [True]


def test_offloaders_share_the_host_cpu_and_only_those_it_still_serves_offload():
    # Two vehicles on one host: together each gets 2 GHz, compute 0.5 s, delay 0.61 s. Vehicle 0
    # (deadline 0.5 s) cannot share; vehicle 1 (deadline 0.9 s) tolerates up to 3 offloaders.
    same = NearestLeastLoadedPolicy(FREE).decide(inputs([0.5, 0.9], host=[0, 0]))
    assert same.rho.tolist() == [0.0, 1.0]
    assert same.delay_s == pytest.approx([1.0, 0.36])
    # Three vehicles with the lenient deadline on one host all fit: 0.1 + 0.75 + 0.01 = 0.86 s <= 0.9 s.
    three = NearestLeastLoadedPolicy(FREE).decide(inputs([0.9, 0.9, 0.9, 0.9], host=[0, 0, 0, 0]))
    assert three.rho.sum() == 3.0
    assert three.delay_s[three.rho == 1.0] == pytest.approx([0.86] * 3)
    # On two different hosts both offload; without hosts each vehicle is alone.
    apart = NearestLeastLoadedPolicy(FREE).decide(inputs([0.5, 0.9], host=[0, 1]))
    assert apart.rho.tolist() == [1.0, 1.0]
    assert NearestLeastLoadedPolicy(FREE).decide(inputs([0.5, 0.9])).rho.tolist() == [1.0, 1.0]


def test_no_host_means_no_offloading_and_a_priced_offload_must_still_pay():
    assert NearestLeastLoadedPolicy(FREE).decide(inputs([0.5], host=[-1])).rho.tolist() == [0.0]
    # With p_n = P_max (P / P_max = rho adds 1 to the cost) the 0.36 s offload above costs
    # 0.72 + 0.667 + 1 = 2.387 against local 2 + 0.667 = 2.667: still worth it; at T = 0.9 s it is not
    # (1.067 + 1 = 2.067 against 1.111 + 0.667 = 1.778).
    priced = NearestLeastLoadedPolicy(PRICED).decide(inputs([0.5, 0.9]))
    assert priced.rho.tolist() == [1.0, 0.0]


def test_policies_by_name():
    for name in OFFLOAD_HEURISTICS:
        assert offload_policy(name).name == name
    with pytest.raises(LookupError, match="unknown offload policy"):
        offload_policy("no-such-policy")


@st.composite
def offload_cases(draw):
    n = draw(st.integers(0, 16))

    def floats(lo, hi):
        return np.array(draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n)))

    now = {k: np.zeros(n) for k in OFFLOAD_FEATURES}
    now.update(
        f_hz=floats(1.5e9, 2.5e9),
        r_bps=floats(20e6, 150e6),
        data_bits=floats(4e6, 16e6),
        cycles=floats(0.5e9, 1.5e9),
        deadline_s=floats(0.1, 1.0),
        host_cpu_hz=floats(2.5e9, 3.5e9),
    )
    host = np.array(draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)), dtype=np.int64)
    params = OffloadParams(price_per_task=draw(st.sampled_from([0.0, 0.1, 1.0])))
    return OffloadInputs(now, None, host), params


@settings(max_examples=150, deadline=None)
@given(offload_cases())
def test_rho_is_a_fraction_and_every_offloader_is_served_better_than_locally(case):
    x, params = case
    n = x.size
    local = expected_outcome(np.zeros(n), x, params)
    for name in OFFLOAD_HEURISTICS:
        d = offload_policy(name, offload=params).decide(x)
        assert d.rho.shape == (n,)
        assert np.all((d.rho >= 0) & (d.rho <= 1))
        again = expected_outcome(d.rho, x, params)  # the reported outcome is the cost model's, to the bit
        for field in ("delay_s", "energy_j", "cost", "success", "edge_cpu_hz"):
            np.testing.assert_array_equal(getattr(d, field), getattr(again, field), err_msg=f"{name}: {field}")
        off = d.rho > 0
        assert np.all(d.success[off]) and np.all(d.cost[off] < local.cost[off])
        assert not np.any(off & (x.host_index < 0))
