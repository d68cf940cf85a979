"""The fast decision paths give today's decisions (issue 20): recorded ticks through both, compared.

* DM-MAPPO (the per-server actor deciding in turns): the fast path (``decide_in_turns_pairs`` over the ONNX
  Runtime graph) against the reference (``sequential.decide_in_turns`` over the torch module, kept as
  ``decide_reference``): exactly the same targets, probabilities to float32 rounding.
* AF-MARL: rho from the ONNX Runtime graph against the torch module, within 1e-6.
* The per-server actor's graph and fused pass against the module, pair by pair.
* The turns' scorer (``TurnScorer``: each pair's load-free features once a tick, the load columns per turn)
  against every feature computed in every pass: the same features to the bit, the same decisions.

On the small scenario's recording in every run; on a recorded city day's peak (``data/recordings/city-s8.npz``,
held out, where vehicles crowd servers and dozens migrate a tick) where it is there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from twin_service.config import ScenarioParams
from twin_service.engine import Decisions, Engine, PolicyDecisions
from twin_service.engine.recording import Recording
from twin_service.engine.replay import ReplayBackend
from twin_service.observe import PER_SERVER_FEATURES
from twin_service.policies import ModelRegistry, OffloadInputs, onnx_graphs
from twin_service.policies.af_marl import AfMarlOffloadPolicy
from twin_service.policies.learned import build_migration_policy, build_offload_policy
from twin_service.policies.per_server import PerServerMigrationPolicy, TurnScorer, candidate_mask, feasible_pairs
from twin_service.policies.sequential import decide_in_turns_pairs
from twin_service.scenario.folder import Scenario

REPO = Path(__file__).resolve().parents[2]
MODELS = ModelRegistry(REPO / "models")
CITY_DAY = REPO / "data" / "recordings" / "city-s8.npz"


def _policies(params: ScenarioParams) -> tuple[PerServerMigrationPolicy, PerServerMigrationPolicy, AfMarlOffloadPolicy]:
    """Two instances of the served DM-MAPPO model (same seed: the same draws) and the served AF-MARL model."""
    migration = MODELS.load("dm-mappo-city")

    def build() -> PerServerMigrationPolicy:
        return build_migration_policy(
            migration.manifest,
            migration.state_dict,
            task=params.task,
            channel=params.channel,
            satellite=params.satellite,
        )

    offload = MODELS.load("af-marl-city")
    return build(), build(), build_offload_policy(offload.manifest, offload.state_dict, params.offload)


def _compare_on_replay(scenario: Scenario, recording: Path, begin_s: float | None, ticks: int) -> dict[str, float]:
    """Replay ``ticks`` ticks deciding by the reference path; at each, decide by both paths and compare."""
    params = scenario.params
    reference, fast, af_marl = _policies(params)
    assert fast.runtime is not None and af_marl.runtime is not None, "ONNX Runtime is a dependency of the service"
    rec = Recording(recording)
    start = begin_s if begin_s is not None else rec.begin_s
    backend = ReplayBackend(rec, begin_s=start, end_s=start + ticks + 2, roads=False)
    engine = Engine(
        params,
        scenario.layout,
        scenario.projection,
        backend,
        PolicyDecisions(params, len(scenario.layout), seed=int(rec.meta.seed)),
        seed=int(rec.meta.seed),
    )
    moved, vehicles, worst_p, worst_rho = 0, 0, 0.0, 0.0
    try:
        for _ in range(ticks):
            _, ctx = engine.tick()
            ref = reference.decide_reference(ctx.observation, ctx.servers, ctx.host)
            got = fast.decide(ctx.observation, ctx.servers, ctx.host)
            np.testing.assert_array_equal(got.target, ref.target)
            worst_p = max(worst_p, float(np.abs(got.probabilities - ref.probabilities).max(initial=0.0)))
            inputs = OffloadInputs(ctx.offload_now, ctx.offload_window_mean(), ctx.host)
            with torch.inference_mode():
                expected = af_marl.network(torch.from_numpy(af_marl_obs(inputs))).double().numpy()
            worst_rho = max(worst_rho, float(np.abs(af_marl.rho(inputs) - expected).max(initial=0.0)))
            moved += int((ref.target != ctx.host).sum())
            vehicles += len(ctx.host)
            engine.apply(Decisions(ref.target, af_marl.rho(inputs)))
    finally:
        rec.close()
    assert worst_p < 1e-5 and worst_rho <= 1e-6, (worst_p, worst_rho)
    return {"moved": moved, "vehicles": vehicles}


def af_marl_obs(inputs: OffloadInputs) -> np.ndarray:
    from twin_service.policies.af_marl import actor_inputs

    return actor_inputs(inputs.now, inputs.window_mean).numpy()


def test_fast_paths_decide_as_the_reference_on_the_small_recording(small_scenario: Path, small_recording: Path):
    seen = _compare_on_replay(Scenario.load(small_scenario), small_recording, None, ticks=120)
    # Vehicles arrive with no host and every tick some move: the turns and re-scoring are exercised.
    assert seen["vehicles"] > 1000 and seen["moved"] > 50, seen


@pytest.mark.skipif(not CITY_DAY.is_file(), reason=f"{CITY_DAY} is not recorded (./scripts/record_days.sh city)")
def test_fast_paths_decide_as_the_reference_at_a_city_peak():
    seen = _compare_on_replay(Scenario.load("city"), CITY_DAY, 1700.0, ticks=25)
    assert seen["vehicles"] > 25 * 1000 and seen["moved"] > 25, seen


def test_the_actor_graph_and_fused_pass_score_as_the_module():
    reference, _, _ = _policies(Scenario.load("city").params)
    rng = np.random.default_rng(0)
    n, m, per_row = 300, 87, 9
    rows = np.repeat(np.arange(n), per_row)
    cols = np.concatenate([np.sort(rng.choice(m, per_row, replace=False)) for _ in range(n)])
    features = rng.normal(size=(len(rows), 14)).astype(np.float32)
    features[:, 6] = cols % 7 == 0  # is_current_host
    with torch.inference_mode():
        dense = reference.actor(
            torch.from_numpy(features), torch.from_numpy(rows).long(), torch.from_numpy(cols).long(), (n, m)
        )
        expected = dense[torch.from_numpy(rows).long(), torch.from_numpy(cols).long()].numpy()
        fused = reference.fused(torch.from_numpy(features), torch.from_numpy(rows).long(), n).numpy()
    assert reference.runtime is not None
    np.testing.assert_allclose(reference.runtime(features, rows, n), expected, atol=2e-5)
    np.testing.assert_allclose(fused, expected, atol=2e-5)
    # A vehicle's logits move when one of its servers' features does (the Deep Sets context): not a no-op.
    changed = features.copy()
    changed[0, 3] += 1.0
    moved = reference.runtime(changed, rows, n) - reference.runtime(features, rows, n)
    assert np.abs(moved[:per_row]).min() > 0 and np.abs(moved[per_row:]).max() == 0


@pytest.mark.parametrize(("d_model", "n_layers"), [(16, 1), (8, 2)])
def test_the_af_marl_graph_gives_the_module_rho(d_model: int, n_layers: int):
    """The graph regroups the token embedding, the positions and the pooled output by linearity: the module's rho
    within 1e-6, for other sizes than the served model's, on inputs far from a tick's and with the logit spread
    wide enough that rho is not saturated (a wrong block or position would move it by far more)."""
    from twin_service.policies.af_marl import AfMarlNetwork

    torch.manual_seed(d_model + n_layers)
    network = AfMarlNetwork(latent=12, d_model=d_model, n_layers=n_layers, hidden=24, cvae_hidden=20).eval()
    with torch.no_grad():
        network.actor.head[-1].bias.zero_()
        network.actor.head[-1].weight.mul_(20.0)  # an untrained head gives rho near 0.5 for every input
    obs = np.random.default_rng(3).normal(scale=2.0, size=(500, 20)).astype(np.float32)
    with torch.inference_mode():
        expected = network(torch.from_numpy(obs)).numpy()
    got = onnx_graphs.AfMarlRuntime(network)(obs)
    assert expected.std() > 0.01 and expected.min() > 0.01 and expected.max() < 0.99
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    # Each feature's token matters, and where it sits: swapping two features' values changes rho.
    swapped = obs.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    assert np.abs(onnx_graphs.AfMarlRuntime(network)(swapped) - got).max() > 1e-4


def test_without_onnx_runtime_the_torch_pass_serves(monkeypatch: pytest.MonkeyPatch, small_scenario: Path):
    monkeypatch.setattr(onnx_graphs, "available", lambda: False)
    params = Scenario.load(small_scenario).params
    plain, _, af_marl = _policies(params)
    assert plain.runtime is None and af_marl.runtime is None
    with_runtime, _, _ = (monkeypatch.undo(), _policies(params))[1]
    assert with_runtime.runtime is not None
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 14)).astype(np.float32)
    rows = np.repeat(np.arange(8), 5)
    np.testing.assert_allclose(
        plain.network_scores(features, rows, 8), with_runtime.network_scores(features, rows, 8), atol=2e-5
    )


def test_candidate_pairs_are_grouped_by_vehicle_in_server_order():
    # decide_in_turns_pairs relies on it (first_choices' cumulative sums run in server order within a vehicle).
    from twin_service.observe import ServerTable, migration_observation

    servers = ServerTable(
        ("a", "b", "c", "sat"),
        ("rsu", "rsu", "uav", "satellite"),
        np.array([500.0, 500, 800, 1e12]),
        np.array([3e9, 3e9, 3e9, 1e12]),
        np.array([3e10, 3e10, 3e10, 8e10]),
        np.array([0.0, 0, 50, 5.5e5]),
    )
    dist = np.array([[100.0, 400, 300, 5.5e5], [450, 50, 700, 5.5e5]])
    obs = migration_observation(dist, np.zeros(4), 1e6, servers, np.array([0, -1]))
    rows, cols = feasible_pairs(candidate_mask(obs, np.array([0, -1]), 2))
    assert list(rows) == sorted(rows)
    for r in range(2):
        assert list(cols[rows == r]) == sorted(cols[rows == r])


def _crowded_tick(seed: int = 7, stacked: bool = False):
    """A city-sized synthetic tick where a fifth of the RSUs are over their cache: hundreds of movers, in every turn.
    ``stacked``: the first 30 RSUs are 10 sites of 3 units each (as an import stacks them at busy sites).

    Returns ``(observation, servers, host)``."""
    from twin_service.config import BITS_PER_MB
    from twin_service.observe import ServerTable, VehicleMotion, migration_observation

    rng = np.random.default_rng(seed)
    m, n = 92, 800
    tiers = ("rsu",) * 81 + ("uav",) * 10 + ("satellite",)
    servers = ServerTable(
        tuple(f"s{k}" for k in range(m)),
        tiers,
        np.array([1200.0] * 81 + [1500.0] * 10 + [1e12]),
        np.array([300 * BITS_PER_MB] * 91 + [1e15]),
        np.array([32e9] * 91 + [80e9]),
        np.array([0.0] * 81 + [50.0] * 10 + [550e3]),
    )
    sxy = np.vstack([rng.uniform(0, 5000, size=(m - 1, 2)), [[2500.0, 2500.0]]])
    if stacked:
        sxy[:30] = np.repeat(sxy[:30:3], 3, axis=0)
    vxy = rng.uniform(0, 5000, size=(n, 2))
    dist = np.hypot(np.hypot(*(vxy[:, None, :] - sxy[None]).transpose(2, 0, 1)), servers.altitude_m).astype(np.float32)
    near = np.where(dist[:, :-1] <= 1200, dist[:, :-1], np.inf)
    host = np.where(np.isfinite(near).any(axis=1), np.argmin(near, axis=1), m - 1)
    backlog = np.where(rng.random(m) < 0.2, rng.uniform(250, 300, m), rng.uniform(0, 100, m)) * BITS_PER_MB
    backlog[-1] = 0.0
    loads = backlog + np.bincount(host, minlength=m) * 2 * BITS_PER_MB
    motion = VehicleMotion.from_twins(
        vxy[:, 0], vxy[:, 1], rng.uniform(0, 14, n), rng.uniform(0, 360, n), sxy[:, 0], sxy[:, 1]
    )
    obs = migration_observation(dist, loads, 2 * BITS_PER_MB, servers, host, motion=motion)
    return obs, servers, host


@pytest.mark.parametrize("stacked", [False, True])
def test_a_crowded_tick_is_decided_as_by_the_reference(stacked: bool):
    """Hundreds of movers, in every turn (a fifth of the RSUs over their cache): the window of re-scored turns
    narrows to one, and every decision is still the reference's (also where sites hold several units, whose
    stand-in unit changes with the turns' loads)."""
    reference, fast, _ = _policies(Scenario.load("city").params)
    obs, servers, host = _crowded_tick(stacked=stacked)
    ref = reference.decide_reference(obs, servers, host)
    got = fast.decide(obs, servers, host)
    assert (ref.target != host).sum() > 200
    np.testing.assert_array_equal(got.target, ref.target)
    np.testing.assert_allclose(got.probabilities, ref.probabilities, atol=1e-5)


def test_only_the_load_columns_depend_on_the_loads():
    """What lets the turns keep the other columns (``TurnScorer``): other loads change the load columns, and only
    those."""
    from twin_service.observe import LOAD_COLUMNS, LOAD_FEATURES, LatencyModel, per_server_features

    obs, _, host = _crowded_tick()
    assert set(LOAD_FEATURES) <= set(PER_SERVER_FEATURES) and len(LOAD_COLUMNS) == len(LOAD_FEATURES)
    rng = np.random.default_rng(3)
    other = replace(obs, predicted_load_bits=obs.predicted_load_bits * rng.uniform(0.2, 2.0, obs.mask.shape[1]))
    latency = LatencyModel()
    a = per_server_features(obs, host, latency)
    b = per_server_features(other, host, latency)
    free = [k for k in range(len(PER_SERVER_FEATURES)) if k not in LOAD_COLUMNS]
    np.testing.assert_array_equal(a[..., free], b[..., free])
    for k in LOAD_COLUMNS:  # each load column moves with the loads for some pair
        assert (a[..., k] != b[..., k]).any(), PER_SERVER_FEATURES[k]


def _record_network_inputs(policy: PerServerMigrationPolicy) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every ``(features, rows, logits)`` the policy's network is given from now on."""
    calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    network = policy.network_scores

    def recorded(features: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
        scores = network(features, rows, n)
        calls.append((features.copy(), rows.copy(), scores))
        return scores

    policy.network_scores = recorded  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("execution", ["argmax", "sample"])
def test_the_turns_keep_the_load_free_features_and_decide_as_without(execution: str, stacked: bool):
    """The served path (``TurnScorer``: load-free features from the first pass, load columns per turn) against
    every feature computed in every pass (``pair_scores``), on a crowded tick whose turns change loads: the same
    features to the bit in every pass, so the same logits, targets and probabilities."""
    cached, uncached, _ = _policies(Scenario.load("city").params)
    obs, _, host = _crowded_tick(seed=11, stacked=stacked)
    n = obs.mask.shape[0]
    order = np.random.default_rng(5).permutation(n)
    uniforms = None if execution == "argmax" else np.random.default_rng(6).random(n)
    got_calls, want_calls = _record_network_inputs(cached), _record_network_inputs(uncached)
    scorer = TurnScorer(cached)
    loads_seen: list[np.ndarray] = []

    def tracked(sub, sub_host, rows):  # noqa: ANN001, ANN202
        loads_seen.append(np.asarray(sub.predicted_load_bits).copy())
        return scorer(sub, sub_host, rows)

    got = decide_in_turns_pairs(obs, host, tracked, order, 32, uniforms)
    want = decide_in_turns_pairs(obs, host, lambda sub, h, rows: uncached.pair_scores(sub, h), order, 32, uniforms)

    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-6)
    assert len(got_calls) == len(want_calls) > 2
    for (f_got, r_got, s_got), (f_want, r_want, s_want) in zip(got_calls, want_calls, strict=True):
        np.testing.assert_array_equal(r_got, r_want)
        np.testing.assert_array_equal(f_got, f_want)
        np.testing.assert_allclose(s_got, s_want, rtol=0, atol=1e-6)
    # Re-scored turns saw loads the earlier moves changed, and their pairs' load-free features came from the first
    # pass.
    assert any(not np.array_equal(loads, loads_seen[0]) for loads in loads_seen[1:])
    assert (got[0] != host).sum() > 200
    assert scorer.reused_pairs > 1000, scorer.reused_pairs


def test_a_turn_where_servers_filled_up_scores_its_new_candidates_as_without():
    """When earlier moves fill a server, the vehicles near it weigh their next nearest server instead, a pair the
    first pass did not score: its load-free features are computed then, the same as computing them all."""
    cached, uncached, _ = _policies(Scenario.load("city").params)
    obs, _, host = _crowded_tick(seed=13)
    scorer = TurnScorer(cached)
    got_calls, want_calls = _record_network_inputs(cached), _record_network_inputs(uncached)
    n = obs.mask.shape[0]
    scorer(obs, host, np.arange(n))
    # A later turn: the twenty emptiest RSUs full (they drop out of the mask), a third of the vehicles re-scored.
    servers = obs.servers
    full = np.argsort(obs.predicted_load_bits[:81])[:20]
    loads = obs.predicted_load_bits.copy()
    loads[full] = servers.load_max_bits[full]
    rows = np.sort(np.random.default_rng(2).choice(n, n // 3, replace=False))
    sub = obs.subset(rows, loads, host[rows])
    sub = replace(sub, mask=sub.mask & obs.mask[rows])
    got = scorer(sub, host[rows], rows)
    want = uncached.pair_scores(sub, host[rows])
    assert scorer.reused_pairs > scorer.computed_pairs > 50, (scorer.reused_pairs, scorer.computed_pairs)
    np.testing.assert_array_equal(got.rows, want.rows)
    np.testing.assert_array_equal(got.cols, want.cols)
    np.testing.assert_array_equal(got_calls[-1][0], want_calls[-1][0])
    np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-6)


def test_closing_speed_is_the_velocity_along_the_offset_to_the_server():
    """``VehicleMotion.closing_mps`` (a pair feature), computed per coordinate for speed: by hand, and to the bit
    the dot product of the (P, 2) offsets and velocities over the distance."""
    from twin_service.observe import VehicleMotion

    # Heading 0 is north: 10 m/s towards a server 100 m north, across one east, away from one south.
    by_hand = VehicleMotion.from_twins([0.0], [0.0], [10.0], [0.0], [0.0, 100.0, 0.0], [100.0, 0.0, -50.0])
    np.testing.assert_allclose(by_hand.closing_mps(np.zeros(3, np.intp), np.arange(3)), [10.0, 0.0, -10.0], atol=1e-12)
    rng = np.random.default_rng(4)
    motion = VehicleMotion(rng.normal(0, 3e3, (50, 2)), rng.normal(0, 10, (50, 2)), rng.normal(0, 3e3, (30, 2)))
    rows, cols = rng.integers(0, 50, 2000), rng.integers(0, 30, 2000)
    d = motion.server_xy_m[cols] - motion.vehicle_xy_m[rows]
    expected = (d * motion.velocity_mps[rows]).sum(axis=1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1.0)
    np.testing.assert_array_equal(motion.closing_mps(rows, cols), expected)


def _argpartition_nearest(dist: np.ndarray, k: int) -> np.ndarray:
    """The finite entries among argpartition's k first of each row: what ``nearest_finite`` must give."""
    n, m = dist.shape
    cols = np.argpartition(dist, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (n, 1))
    rows = np.repeat(np.arange(n), cols.shape[1])
    cols = cols.reshape(-1)
    finite = np.isfinite(dist[rows, cols])
    keep = np.zeros(dist.shape, dtype=bool)
    keep[rows[finite], cols[finite]] = True
    return keep


@pytest.mark.parametrize("k", [1, 3, 8, 30, 40])
def test_the_nearest_candidates_are_argpartitions(k: int):
    """``nearest_finite`` (a value partition, argpartition only for rows tied at the k-th value) keeps the servers
    argpartition keeps: distinct distances, ties everywhere (whole metres), unreachable servers, a NaN."""
    from twin_service.policies.per_server import nearest_finite

    rng = np.random.default_rng(k)
    distinct = rng.uniform(0, 2000, (400, 30)).astype(np.float32)
    tied = rng.integers(0, 6, (400, 30)).astype(np.float32)
    for dist in (distinct, tied):
        dist[rng.random(dist.shape) < 0.3] = np.inf
        dist[:20] = np.inf  # out of reach of everything
        dist[20:40, : min(k, 29)] = np.inf  # fewer than k servers in reach
        dist[40, 3] = np.nan
        np.testing.assert_array_equal(nearest_finite(dist, k), _argpartition_nearest(dist, k))
    if k < tied.shape[1]:  # rows tied at the k-th value are there: the fallback to argpartition is exercised
        kth = np.partition(tied, k - 1, axis=1)[:, k - 1]
        assert ((tied <= kth[:, None]).sum(axis=1) > k)[np.isfinite(kth)].sum() > 50


def test_the_candidate_servers_of_a_crowded_tick_are_argpartitions():
    obs, _, host = _crowded_tick()
    keep = candidate_mask(obs, host, 8)
    sat = obs.servers.is_satellite
    dist = np.where(obs.mask & ~sat[None, :], obs.distances_m.astype(np.float32), np.inf)
    expected = _argpartition_nearest(dist, 8)
    expected[:, sat] = obs.mask[:, sat]
    expected[np.arange(len(host)), host] |= obs.mask[np.arange(len(host)), host]
    np.testing.assert_array_equal(keep, expected)
    assert 7 < keep.sum(axis=1).mean() < 10


@pytest.mark.parametrize("server_tx_power_w", [1.0, 2.5])
def test_the_access_latency_counts_both_legs(server_tx_power_w: float):
    """``pair_latency_s`` computes a symmetric link's one leg once (the defaults); either way the access latency
    is the uplink's plus the downlink's (Eq. 6-7), each by its own rate."""
    from twin_service.config import BITS_PER_MB
    from twin_service.observe import LatencyModel, pair_latency_s
    from twin_service.physics import access_latency_s, free_space_rate_bps, satellite_propagation_delay_s

    model = LatencyModel()
    channel = model.channel.model_copy(update={"server_tx_power_w": server_tx_power_w})
    model = LatencyModel(model.task, channel, model.satellite)
    c = model.channel
    rng = np.random.default_rng(9)
    dist = rng.uniform(1, 3000, (50, 6))
    sat = np.array([False] * 5 + [True])
    rows, cols = rng.integers(0, 50, 300), rng.integers(0, 6, 300)
    access, _ = pair_latency_s(dist, np.full(50, -1), rows, cols, sat, model)
    data = model.task.data_size_mb * BITS_PER_MB
    prop = float(satellite_propagation_delay_s(model.satellite.altitude_m))
    d = dist[rows, cols]
    legs = [
        access_latency_s(data, free_space_rate_bps(d, bw, p, c.noise_w, c.carrier_hz, c.gain_coefficient), sat[cols],
                         c.satellite_rate_bps, prop)
        for bw, p in ((c.bandwidth_up_hz, c.vehicle_tx_power_w), (c.bandwidth_down_hz, c.server_tx_power_w))
    ]  # fmt: skip
    np.testing.assert_array_equal(access, legs[0] + legs[1])
    assert (legs[0] == legs[1]).all() == (server_tx_power_w == c.vehicle_tx_power_w)


def test_a_site_of_several_units_is_one_candidate_its_unit_with_the_most_room():
    """Where an import stacked RSU units at a site, each vehicle weighs the site once, by its unit with the most free
    room (so its eight nearest candidates are eight sites), plus its own host whichever unit that is; a layout
    without stacked units (the city's) gets no stand-ins and its candidates are as before."""
    from twin_service.policies.per_server import candidates, spare_units

    plain, _, plain_host = _crowded_tick(seed=17)
    assert spare_units(plain) is None
    obs, _, host = _crowded_tick(seed=17, stacked=True)
    spare = spare_units(obs)
    assert spare is not None and spare.sum() == 20 and not spare[30:].any()
    room = obs.servers.load_max_bits - obs.predicted_load_bits
    for site in range(10):
        units = np.arange(3 * site, 3 * site + 3)
        standing = units[~spare[units]]
        assert len(standing) == 1 and room[standing[0]] == room[units].max()
    keep = candidate_mask(obs, host, 8)
    assert (keep & spare[None, :]).sum() <= int(spare[host].sum())  # a spare unit is a candidate only as a host
    rows_with_host_spare = spare[host]
    assert not (keep[~rows_with_host_spare][:, spare]).any()
    # Eight nearest distinct sites where eight are feasible (the satellite and the host besides).
    sat = obs.servers.is_satellite
    offered = obs.mask & ~sat[None, :] & ~spare[None, :]
    full = offered.sum(axis=1) >= 8
    ground = keep & ~sat[None, :]
    ground[np.arange(len(host)), host] &= ~rows_with_host_spare
    assert (ground[full & ~rows_with_host_spare].sum(axis=1) >= 8).all()
    np.testing.assert_array_equal(
        candidates(plain.mask, plain.distances_m, plain.servers.is_satellite, plain_host, 8, None),
        candidate_mask(plain, plain_host, 8),
    )
