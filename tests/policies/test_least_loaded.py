"""least-loaded: the load-balancing heuristic, checked against a plain reference and by hand."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_service.config import BITS_PER_MB, ChannelParams, SatelliteParams, TaskParams
from twin_service.observe import ServerTable, migration_observation
from twin_service.physics import (
    access_latency_s,
    free_space_rate_bps,
    migration_rate_bps,
    satellite_leg_delay_s,
    satellite_propagation_delay_s,
)
from twin_service.policies import migration_policy
from twin_service.policies.migration import LeastLoadedPolicy

TASK = TaskParams(cycles_per_bit=72.3)
CH = ChannelParams()
SAT = SatelliteParams()
S_V = TASK.data_size_mb * BITS_PER_MB


def _servers(m: int) -> ServerTable:
    tiers = tuple(["rsu"] * (m - 2) + ["uav", "satellite"])
    return ServerTable(
        ids=tuple(f"s{i}" for i in range(m)),
        tiers=tiers,
        range_m=np.array([1200.0] * (m - 2) + [1500.0, np.inf]),
        load_max_bits=np.array([300.0 * BITS_PER_MB] * (m - 1) + [np.inf]),
        cpu_hz=np.array([32e9] * (m - 1) + [80e9]),
        altitude_m=np.array([0.0] * (m - 2) + [50.0, 550e3]),
    )


def _reference(obs, servers, host) -> np.ndarray:
    """The rule written out plainly: dense costs for every vehicle and server, no pruning."""
    n, m = obs.mask.shape
    sat = servers.is_satellite
    prop = float(satellite_propagation_delay_s(SAT.altitude_m))
    d = obs.distances_m.astype(np.float64)
    up = free_space_rate_bps(d, CH.bandwidth_up_hz, CH.vehicle_tx_power_w, CH.noise_w, CH.carrier_hz)
    down = free_space_rate_bps(d, CH.bandwidth_down_hz, CH.server_tx_power_w, CH.noise_w, CH.carrier_hz)
    access = access_latency_s(S_V, up, sat[None, :], CH.satellite_rate_bps, prop) + access_latency_s(
        S_V, down, sat[None, :], CH.satellite_rate_bps, prop
    )
    mig = np.zeros((n, m))
    for v in range(n):
        h = host[v]
        for j in range(m):
            if h >= 0 and j != h:
                rate = migration_rate_bps(
                    d[v, h] + d[v, j], CH.bandwidth_mig_hz, CH.server_tx_power_w, CH.noise_w, CH.carrier_hz,
                    sat[h], sat[j], CH.satellite_rate_bps,
                )  # fmt: skip
                mig[v, j] = TASK.migration_size_mb * BITS_PER_MB / rate + satellite_leg_delay_s(sat[h], sat[j], prop)
    e_v, cpu, limit = TASK.cycles_per_bit, servers.cpu_hz, servers.load_max_bits
    load = obs.predicted_load_bits.astype(np.float64).copy()
    target = np.full(n, -1)
    stay, best = np.full(n, np.inf), np.full(n, np.inf)
    for v in range(n):
        h = host[v]
        if h >= 0 and obs.mask[v, h]:
            stay[v] = access[v, h] + e_v * load[h] / cpu[h]
        for j in range(m):
            if obs.mask[v, j] and j != h and (sat[j] or load[j] + S_V <= limit[j]):
                best[v] = min(best[v], access[v, j] + mig[v, j] + e_v * (load[j] + S_V) / cpu[j])
    movers = [v for v in range(n) if not np.isfinite(stay[v]) or best[v] < stay[v]]
    for v in range(n):
        if v not in movers:
            target[v] = host[v]
    for v in movers:
        if host[v] >= 0:
            load[host[v]] -= S_V
    gain = {v: np.inf if not np.isfinite(stay[v]) else stay[v] - best[v] for v in movers}
    for v in sorted(movers, key=lambda v: (-gain[v], v)):
        options = [j for j in range(m) if obs.mask[v, j] and (sat[j] or load[j] + S_V <= limit[j])]
        costs = [access[v, j] + mig[v, j] + e_v * (load[j] + S_V) / cpu[j] for j in options]
        target[v] = options[int(np.argmin(costs))]
        load[target[v]] += S_V
    return target


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 40), m=st.integers(3, 9))
def test_least_loaded_equals_the_plain_rule(seed: int, n: int, m: int):
    rng = np.random.default_rng(seed)
    servers = _servers(m)
    dist = rng.uniform(50, 1800, size=(n, m)).astype(np.float32)
    dist[:, -1] = 550e3
    host = rng.integers(-1, m, size=n)
    loads = rng.uniform(0, 320, size=m) * BITS_PER_MB
    loads[-1] = rng.uniform(0, 50) * BITS_PER_MB
    obs = migration_observation(dist, loads, S_V, servers, host)
    policy = LeastLoadedPolicy(TASK, CH, SAT)
    got = policy.decide(obs, servers, host).target
    np.testing.assert_array_equal(got, _reference(obs, servers, host))
    assert obs.mask[np.arange(n), got].all()


def test_by_hand_a_twin_leaves_a_crowded_server_only_when_the_move_pays():
    servers = _servers(4)  # rsu 0, rsu 1, uav 2, satellite 3
    e_v = TASK.cycles_per_bit
    per_twin_s = e_v * S_V / 32e9  # 36.15 ms of compute per twin on an RSU
    dist = np.array([[400.0, 500.0, 3000.0, 550e3]], dtype=np.float32)
    policy = LeastLoadedPolicy(TASK, CH, SAT)
    rate = migration_rate_bps(900.0, CH.bandwidth_mig_hz, CH.server_tx_power_w, CH.noise_w, CH.carrier_hz, False,
                              False, CH.satellite_rate_bps)  # fmt: skip
    penalty = TASK.migration_size_mb * BITS_PER_MB / float(rate)  # about 0.15 s to move 60 MB 400 + 500 m
    # RSU 0 hosts the twin with k twins' data; RSU 1 is empty. Moving saves (k - 1) * per_twin_s of compute,
    # pays the penalty and a little access latency (500 m instead of 400 m).
    for k, expected in ((4, 0), (12, 1)):
        loads = np.array([k * S_V, 0.0, 0.0, 0.0])
        obs = migration_observation(dist, loads, S_V, servers, np.array([0]))
        assert obs.mask[0, :2].all() and not obs.mask[0, 2]
        assert policy.decide(obs, servers, np.array([0])).target[0] == expected, k
    assert 4 * per_twin_s - per_twin_s < penalty < 12 * per_twin_s - per_twin_s


def test_twins_placed_together_spread_as_the_loads_update():
    servers = _servers(4)
    dist = np.tile(np.array([[300.0, 310.0, 3000.0, 550e3]], dtype=np.float32), (6, 1))
    obs = migration_observation(dist, np.zeros(4), S_V, servers, np.full(6, -1))
    target = migration_policy("least-loaded", task=TASK, channel=CH, satellite=SAT).decide(obs, servers, None).target
    assert sorted(np.bincount(target, minlength=4)[:2]) == [3, 3]  # not all six on the nearest


def test_sampled_execution_draws_allowed_servers_as_often_as_their_probability():
    import torch

    from twin_service.policies.manifest import ActionSpec, Architecture, ModelManifest, ObservationSpec
    from twin_service.policies.torch_policy import ExecutionSampler

    def manifest(execution: str) -> ModelManifest:
        return ModelManifest(
            name="m", kind="migration", algorithm="x", version="1",
            observation=ObservationSpec(feature_dim=5, n_servers=3), action=ActionSpec(type="discrete", n=3),
            architecture=Architecture(options={"execution": execution}), scenario_param_hash="h",
            command="c", seed=7,
        )  # fmt: skip

    probs = torch.tensor([[0.2, 0.0, 0.8]] * 4000)
    logits = torch.log(probs.clamp(min=1e-12))
    draws = ExecutionSampler(manifest("sample")).choose(logits, probs)
    assert set(draws.tolist()) == {0, 2}  # never the masked server
    assert abs((draws == 2).mean() - 0.8) < 0.03
    np.testing.assert_array_equal(draws, ExecutionSampler(manifest("sample")).choose(logits, probs))  # seeded
    assert (ExecutionSampler(manifest("argmax")).choose(logits, probs) == 2).all()


def _array_placement(order, starts, pc, base, load, limit, sat, cpu, s_v, e_v, sat_index):  # noqa: ANN001, ANN202
    """The placement loop as it was written before issue 20, with small array operations per mover."""
    picks = []
    for v in order.tolist():
        lo, hi = starts[v], starts[v + 1]
        options = pc[lo:hi]
        room = sat[options] | (load[options] + s_v <= limit[options])
        options, costs = options[room], base[lo:hi][room]
        if not options.size:
            picks.append(sat_index)
            continue
        costs = costs + e_v * (load[options] + s_v) / cpu[options]
        pick = int(options[np.argmin(costs)])
        picks.append(pick)
        load[pick] += s_v
    return np.array(picks, dtype=np.int64)


def test_a_crowded_city_is_placed_as_by_the_array_loop(monkeypatch):
    """Hundreds of movers (a fifth of the RSUs over their cache): the plain-float loop places every twin where
    the array loop did, to the bit (the same operations in the same order)."""
    import twin_service.policies.migration as migration

    rng = np.random.default_rng(5)
    m, n = 92, 1500
    servers = _servers(m)
    xy = rng.uniform(0, 5000, size=(m, 2))
    vxy = rng.uniform(0, 5000, size=(n, 2))
    dist = np.hypot(*(vxy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)).astype(np.float32)
    dist[:, -1] = 550e3
    near = np.where(dist[:, :-1] <= 1200, dist[:, :-1], np.inf)
    host = np.where(np.isfinite(near).any(axis=1), np.argmin(near, axis=1), m - 1)
    host[rng.random(n) < 0.05] = -1  # new twins
    backlog = np.where(rng.random(m) < 0.2, rng.uniform(250, 300, m), rng.uniform(0, 100, m)) * BITS_PER_MB
    loads = backlog + np.bincount(host[host >= 0], minlength=m) * S_V
    obs = migration_observation(dist, loads, S_V, servers, host)
    policy = LeastLoadedPolicy(TASK, CH, SAT)
    fast = policy.decide(obs, servers, host).target
    calls = []
    monkeypatch.setattr(
        migration, "place_one_at_a_time", lambda order, *a: calls.append(len(order)) or _array_placement(order, *a)
    )
    slow = policy.decide(obs, servers, host).target
    assert calls and calls[0] > 200  # the loop was exercised with hundreds of movers
    np.testing.assert_array_equal(fast, slow)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), m=st.integers(2, 12))
def test_the_compiled_placement_equals_the_python_loop(seed: int, n: int, m: int):
    """numba's kernel places every mover where the Python loop does, loads to the bit; full servers, the satellite's
    unlimited room, NaN costs (argmin's first NaN) and movers without options included."""
    from twin_service.policies.compiled import place_one_at_a_time_compiled
    from twin_service.policies.migration import place_one_at_a_time_python

    rng = np.random.default_rng(seed)
    counts = rng.integers(0, m + 1, size=n)
    starts = np.concatenate([[0], np.cumsum(counts)])
    options = np.concatenate([np.sort(rng.choice(m, size=c, replace=False)) for c in counts]).astype(np.intp)
    base = rng.uniform(0.0, 0.3, size=len(options))
    base[rng.random(len(options)) < 0.03] = np.nan
    load = rng.uniform(250, 320, size=m) * BITS_PER_MB
    limit = np.full(m, 300.0 * BITS_PER_MB)
    sat = np.zeros(m, dtype=bool)
    sat[-1] = True
    limit[-1] = np.inf
    cpu = rng.uniform(20e9, 80e9, size=m)
    order = rng.permutation(n).astype(np.intp)
    args = (starts, options, base)
    tail = (limit, sat, cpu, S_V, TASK.cycles_per_bit, m - 1)
    load_py, load_jit = load.copy(), load.copy()
    expected = place_one_at_a_time_python(order, *args, load_py, *tail)
    got = place_one_at_a_time_compiled(order, *args, load_jit, *tail)
    assert got is not None, "numba is a dependency: the compiled placement must run"
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(load_jit, load_py)
