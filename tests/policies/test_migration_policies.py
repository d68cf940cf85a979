"""Migration heuristics: exact choices on tiny cases, and no policy ever picks a masked server (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_service.config import BITS_PER_MB
from twin_service.observe import MigrationObservation, ServerTable, migration_observation
from twin_service.policies import MIGRATION_HEURISTICS, migration_policy
from twin_service.policies.decide import check_feasible
from twin_service.policies.migration import GreedyPolicy, RandomPolicy, StickyNearestPolicy

MB = BITS_PER_MB


def table(n_ground: int = 3) -> ServerTable:
    """``n_ground`` RSUs (600 m range, 10 MB cache) and the satellite last."""
    m = n_ground + 1
    return ServerTable(
        ids=tuple(f"rsu_{i}" for i in range(n_ground)) + ("sat",),
        tiers=("rsu",) * n_ground + ("satellite",),
        range_m=np.array([600.0] * n_ground + [1e12]),
        load_max_bits=np.array([10 * MB] * n_ground + [np.inf]),
        cpu_hz=np.full(m, 32e9),
        altitude_m=np.array([0.0] * n_ground + [550e3]),
    )


def observe(dist, loads_mb, host=None, servers=None, incoming_mb=2.0) -> MigrationObservation:
    servers = servers or table(len(loads_mb) - 1)
    host_arr = None if host is None else np.asarray(host)
    return migration_observation(
        np.asarray(dist, dtype=np.float64), np.asarray(loads_mb) * MB, incoming_mb * MB, servers, host_arr
    )


SAT = 3


def test_sticky_nearest_keeps_a_feasible_host_and_moves_the_others():
    dist = [
        [500.0, 100.0, 900.0, 550e3],  # on rsu_0, still in range: stays although rsu_1 is nearer
        [700.0, 300.0, 900.0, 550e3],  # on rsu_0, now out of range: nearest feasible is rsu_1
        [100.0, 400.0, 900.0, 550e3],  # on the satellite, rsu_0 feasible: comes back to the ground
        [900.0, 900.0, 900.0, 550e3],  # new (host -1), nothing in range: satellite
    ]
    obs = observe(dist, [4, 4, 0, 0], host=[0, 0, SAT, -1])
    decision = StickyNearestPolicy(incoming_bits=2 * MB).decide(obs, table(), np.array([0, 0, SAT, -1]))
    assert decision.target.tolist() == [0, 1, 0, SAT]
    assert decision.probabilities.tolist()[1] == [0.0, 1.0, 0.0, 0.0]


def test_sticky_nearest_does_not_herd_movers_onto_one_server():
    # Four twins leave an out-of-range host at once; rsu_1 (6 MB used of 10) has room for two 2 MB twins.
    dist = np.array([[700.0, 100.0 + k, 500.0, 550e3] for k in range(4)])
    host = np.zeros(4, dtype=np.int64)
    obs = observe(dist, [8, 6, 0, 0], host=host)
    target = StickyNearestPolicy(incoming_bits=2 * MB).decide(obs, table(), host).target
    assert target.tolist() == [1, 1, 2, 2]
    # The mask alone (every twin fits rsu_1 by itself) would have sent all four there.
    assert obs.mask[:, 1].all()


def test_greedy_without_exploration_is_the_nearest_feasible_server_and_its_probabilities_are_exact():
    dist = [[500.0, 100.0, 900.0, 550e3], [700.0, 650.0, 300.0, 550e3]]
    obs = observe(dist, [0, 9, 0, 0])  # rsu_1 would overflow (9 + 2 > 10 MB)
    assert GreedyPolicy(epsilon=0.0).decide(obs, table()).target.tolist() == [0, 2]
    probs = GreedyPolicy(epsilon=0.1).decide(obs, table()).probabilities
    # Row 0: feasible {rsu_0, sat}: 0.9 + 0.1/2 on rsu_0, 0.1/2 on the satellite, 0 on masked servers.
    assert probs[0] == pytest.approx([0.95, 0.0, 0.0, 0.05])
    assert probs[1] == pytest.approx([0.0, 0.0, 0.95, 0.05])


def test_greedy_explores_about_ten_percent_reproducibly():
    n = 20_000
    dist = np.tile([100.0, 200.0, 300.0, 550e3], (n, 1))
    obs = observe(dist, [0, 0, 0, 0])
    a = GreedyPolicy(seed=7).decide(obs, table()).target
    b = GreedyPolicy(seed=7).decide(obs, table()).target
    assert np.array_equal(a, b)
    # 10 % explore uniformly over 4 feasible servers, so 7.5 % land away from the nearest.
    assert np.mean(a != 0) == pytest.approx(0.075, abs=0.01)


def test_random_is_uniform_over_the_feasible_set():
    n = 20_000
    dist = np.tile([100.0, 700.0, 300.0, 550e3], (n, 1))  # rsu_1 out of range
    obs = observe(dist, [0, 0, 0, 0])
    decision = RandomPolicy(seed=3).decide(obs, table())
    assert not (decision.target == 1).any()
    assert np.bincount(decision.target, minlength=4) / n == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3], abs=0.015)
    assert decision.probabilities[0] == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])


def test_policies_by_name():
    for name in MIGRATION_HEURISTICS:
        assert migration_policy(name).name == name
    with pytest.raises(LookupError, match="unknown migration policy"):
        migration_policy("no-such-policy")


@st.composite
def migration_cases(draw):
    n_ground = draw(st.integers(1, 5))
    n = draw(st.integers(0, 12))
    m = n_ground + 1
    dist = draw(st.lists(st.floats(0, 1500), min_size=n * m, max_size=n * m))
    loads = draw(st.lists(st.sampled_from([0.0, 2.0, 6.0, 8.0, 9.0, 12.0]), min_size=m, max_size=m))
    host = draw(st.lists(st.integers(-1, m - 1), min_size=n, max_size=n))
    name = draw(st.sampled_from(MIGRATION_HEURISTICS))
    seed = draw(st.integers(0, 2**16))
    return n_ground, np.array(dist).reshape(n, m), loads, np.array(host, dtype=np.int64), name, seed


@settings(max_examples=200, deadline=None)
@given(migration_cases())
def test_no_policy_returns_a_masked_server(case):
    n_ground, dist, loads, host, name, seed = case
    servers = table(n_ground)
    dist[:, -1] = 550e3
    obs = observe(dist, loads, host=host, servers=servers)
    decision = migration_policy(name, seed=seed).decide(obs, servers, host)
    check_feasible(decision, obs.mask, name)
    assert obs.mask[np.arange(len(host)), decision.target].all()
    probs = decision.probabilities
    assert probs.shape == obs.mask.shape
    assert np.all(probs[~obs.mask] == 0.0)
    assert np.allclose(probs.sum(axis=1), 1.0)
