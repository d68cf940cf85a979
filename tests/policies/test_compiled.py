"""numba's kernels give least-loaded's, the pair features' and the offloading cost model's numbers to the bit: each
against the numpy it replaces, and a whole crowded-city decision with the kernels on and off."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_service.config import BITS_PER_MB, ChannelParams, TaskParams
from twin_service.observe import LatencyModel, ServerTable, migration_observation, pair_latency_s, pair_latency_s_numpy
from twin_service.physics import compiled as physics_compiled
from twin_service.policies import compiled
from twin_service.policies.migration import LeastLoadedPolicy, best_moves, candidate_pairs

KERNEL_CACHES = (
    compiled._compiled_placement,
    physics_compiled._compiled_pair_kernels,
    compiled._compiled_candidate_kernels,
    physics_compiled._compiled_offload_kernel,
)


@pytest.fixture
def without_jit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside: every kernel off (``TWIN_NO_JIT``), so the callers run their numpy references; on again after."""
    monkeypatch.setenv(compiled.DISABLE_VAR, "1")
    for kernel in KERNEL_CACHES:
        kernel.cache_clear()
    yield
    monkeypatch.delenv(compiled.DISABLE_VAR)
    for kernel in KERNEL_CACHES:
        kernel.cache_clear()


def _model(asymmetric: bool) -> LatencyModel:
    channel = ChannelParams()
    if asymmetric:
        channel = channel.model_copy(update={"server_tx_power_w": 2.5, "bandwidth_down_hz": 2e8})
    return LatencyModel(TaskParams(), channel)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 80),
    m=st.integers(2, 14),
    wide=st.booleans(),
    asymmetric=st.booleans(),
)
def test_compiled_pair_latencies_equal_numpys(seed: int, n: int, m: int, wide: bool, asymmetric: bool):
    """Access and migration latency of random pairs, to the bit: float32 and float64 distances, NaN distances,
    distances under the 1 m clamp, vehicles without a host, the satellite at either end, a symmetric and an
    asymmetric link."""
    rng = np.random.default_rng(seed)
    dist = rng.uniform(0.0, 6000.0, (n, m)).astype(np.float64 if wide else np.float32)
    dist[rng.random((n, m)) < 0.05] = rng.uniform(0.0, 1.5)
    dist[rng.random((n, m)) < 0.02] = np.nan
    sat = np.zeros(m, dtype=bool)
    sat[-1] = True
    dist[:, -1] = 550e3
    host = rng.integers(-1, m, n)
    p = int(rng.integers(0, 3 * n * m))
    rows, cols = rng.integers(0, n, p), rng.integers(0, m, p)
    model = _model(asymmetric)
    access, migration = pair_latency_s(dist, host, rows, cols, sat, model)
    ref_access, ref_migration = pair_latency_s_numpy(dist, host, rows, cols, sat, model)
    np.testing.assert_array_equal(access, ref_access)
    np.testing.assert_array_equal(migration, ref_migration)
    assert (migration > 0).any() or not ((host[rows] >= 0) & (host[rows] != cols)).any()


def test_pair_latencies_out_of_range_are_refused_as_numpy_refuses():
    """The compiled loops do not check bounds: an index out of range goes to numpy, which raises."""
    dist, sat = np.ones((3, 4)), np.array([False, False, False, True])
    with pytest.raises(IndexError):
        pair_latency_s(dist, np.zeros(3, dtype=np.int64), np.array([0, 3]), np.array([1, 1]), sat, LatencyModel())
    with pytest.raises(IndexError):
        pair_latency_s(dist, np.array([0, 9, 0]), np.array([1]), np.array([2]), sat, LatencyModel())


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), m=st.integers(1, 12), share=st.floats(0.0, 1.0))
def test_compiled_candidate_pairs_and_best_moves_equal_numpys(seed: int, n: int, m: int, share: float):
    """The candidates' feasible pairs (row-major), where each vehicle's start, and each vehicle's best move with
    full servers, NaN costs and its own host among its pairs, to the bit."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n, m)) < 0.4
    candidates = np.flatnonzero(rng.random(n) < share)
    current = rng.integers(-1, m, n)
    fits = rng.random(m) < 0.8
    load = rng.uniform(0, 300, m) * BITS_PER_MB
    cpu = rng.uniform(20e9, 80e9, m)
    fast_pairs = candidate_pairs(mask, candidates)
    base = rng.uniform(0.0, 0.2, len(fast_pairs[0]))
    base[rng.random(len(base)) < 0.05] = np.nan
    fast_best = best_moves(*fast_pairs[:2], base, current, fits, load, cpu, 72.3, 2 * BITS_PER_MB, n)
    assert compiled.candidate_pairs_compiled(mask, candidates) is not None, "numba is a dependency: it must run"
    cr, pc = np.nonzero(mask[candidates])
    pr = candidates[cr]
    for got, want in zip(fast_pairs, (pr, pc, np.searchsorted(pr, np.arange(n + 1))), strict=True):
        np.testing.assert_array_equal(got, want)
    move = np.where((current[pr] == pc) | ~fits[pc], np.inf, base + 72.3 * (load[pc] + 2 * BITS_PER_MB) / cpu[pc])
    want_best = np.full(n, np.inf)
    with np.errstate(invalid="ignore"):  # NaN costs
        np.minimum.at(want_best, pr, move)
    np.testing.assert_array_equal(fast_best, want_best)


def _crowded_city(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    m, n = 92, 1500
    tiers = tuple(["rsu"] * (m - 2) + ["uav", "satellite"])
    servers = ServerTable(
        ids=tuple(f"s{i}" for i in range(m)),
        tiers=tiers,
        range_m=np.array([1200.0] * (m - 2) + [1500.0, np.inf]),
        load_max_bits=np.array([300.0 * BITS_PER_MB] * (m - 1) + [np.inf]),
        cpu_hz=np.array([32e9] * (m - 1) + [80e9]),
        altitude_m=np.array([0.0] * (m - 2) + [50.0, 550e3]),
    )
    xy = rng.uniform(0, 5000, size=(m, 2))
    vxy = rng.uniform(0, 5000, size=(n, 2))
    dist = np.hypot(*(vxy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)).astype(np.float32)
    dist[:, -1] = 550e3
    near = np.where(dist[:, :-1] <= 1200, dist[:, :-1], np.inf)
    host = np.where(np.isfinite(near).any(axis=1), np.argmin(near, axis=1), m - 1)
    host[rng.random(n) < 0.05] = -1  # new twins
    s_v = TaskParams().data_size_mb * BITS_PER_MB
    backlog = np.where(rng.random(m) < 0.2, rng.uniform(250, 300, m), rng.uniform(0, 100, m)) * BITS_PER_MB
    loads = backlog + np.bincount(host[host >= 0], minlength=m) * s_v
    return migration_observation(dist, loads, s_v, servers, host), servers, host


@pytest.mark.parametrize("seed", [5, 6])
def test_a_crowded_city_is_decided_alike_with_the_kernels_off(seed: int, request: pytest.FixtureRequest):
    """A whole least-loaded decision over 1,500 vehicles (hundreds of movers): the same targets with every kernel
    compiled as with the numpy and Python references."""
    obs, servers, host = _crowded_city(seed)
    assert compiled.warm_up(), "numba is a dependency: every kernel must compile"
    fast = LeastLoadedPolicy().decide(obs, servers, host).target
    request.getfixturevalue("without_jit")
    assert compiled.candidate_pairs_compiled(obs.mask, np.arange(3)) is None  # the references run now
    slow = LeastLoadedPolicy().decide(obs, servers, host).target
    assert (slow != np.maximum(host, 0)).sum() > 100  # many movers: the placement was exercised
    np.testing.assert_array_equal(fast, slow)


def _column(rng: np.random.Generator, n: int, lo: float, hi: float, odd: float) -> np.ndarray:
    """Floats in [lo, hi) with a share ``odd`` of zeros, NaNs and infinities."""
    x = rng.uniform(lo, hi, n)
    pick = rng.random(n)
    x[pick < odd / 3] = 0.0
    x[(pick >= odd / 3) & (pick < 2 * odd / 3)] = np.nan
    x[(pick >= 2 * odd / 3) & (pick < odd)] = np.inf
    return x


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 70), odd=st.sampled_from([0.0, 0.1, 0.4]))
def test_the_compiled_offloading_cost_model_equals_numpys(seed: int, n: int, odd: float):
    """Paper B's cost model, every one of its fourteen terms to the bit: fractions in [0, 1] with whole and no
    offloads, zero and NaN and infinite inputs (0/0, x/0), the reward's floor and the deadline's boundary."""
    from twin_service.config import OffloadParams
    from twin_service.physics.offload import offload_outcome, offload_outcome_numpy

    rng = np.random.default_rng(seed)
    rho = rng.choice([0.0, 1.0, 0.5, 0.25], n)
    partial = rng.random(n) < 0.5
    rho[partial] = rng.uniform(0.0, 1.0, int(partial.sum()))
    ranges = ((4e6, 16e6), (0.5e9, 1.5e9), (0.1, 1.0), (1e9, 3e9), (2e7, 1.5e8), (0.0, 4e9))
    columns = [rho] + [_column(rng, n, lo, hi, odd) for lo, hi in ranges]
    p = OffloadParams(price_per_task=float(rng.choice([0.0, 1.0])))
    kwargs = dict(
        kappa_local=p.kappa_local,
        kappa_edge=p.kappa_edge,
        tx_power_w=p.tx_power_w,
        output_ratio=p.output_ratio,
        twin_sync_energy_j=p.twin_sync_energy_j,
        twin_sync_delay_s=p.twin_sync_delay_s,
        price_per_task=p.price_per_task,
        energy_max_j=p.energy_max_j,
        price_max=p.price_max,
    )
    assert compiled.warm_up(), "numba is a dependency: every kernel must compile"
    fast = offload_outcome(*columns, **kwargs)
    with np.errstate(all="ignore"):
        slow = offload_outcome_numpy(*columns, **kwargs)
    for name, got, want in zip(fast._fields, fast, slow, strict=True):
        assert got.dtype == want.dtype and got.shape == (n,), name
        np.testing.assert_array_equal(got, want, err_msg=name)
