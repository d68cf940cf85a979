"""The training environments: PettingZoo's API, the shared engine and observation, rewards and ablations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from twin_service.bridge.runner import RunOptions, open_bridge
from twin_service.engine import Decisions
from twin_service.envs import EnvOptions, MigrationCore, MigrationEnv, OffloadCore, OffloadEnv, RewardStats, UavChurn
from twin_service.envs.sim import RsuOutage
from twin_service.observe import OFFLOAD_FEATURES
from twin_service.policies import migration_policy
from twin_service.policies.decide import decide_migration
from twin_service.twins.server import RedisHandle


def test_both_environments_pass_pettingzoos_parallel_api_test(small_recording: Path):
    parallel_api_test(MigrationEnv.from_recording(small_recording, episode_s=40, warmup_s=10), num_cycles=60)
    parallel_api_test(OffloadEnv.from_recording(small_recording, episode_s=40, warmup_s=10), num_cycles=60)


def test_the_migration_core_sees_what_the_live_bridge_serves(
    small_scenario: Path, small_recording: Path, redis_server: RedisHandle, key_prefix: str
):
    """Same engine, same observe.py: with the live run's policy, every batch is the live tick's observation."""
    warmup, ticks = 20, 40
    core = MigrationCore(
        small_scenario,
        [small_recording],
        EnvOptions(episode_s=ticks, warmup_s=warmup, starts_s=(float(warmup),), migration_policy="sticky-nearest"),
    )
    sticky = migration_policy("sticky-nearest", task=core.params.task)
    batches = [core.reset()]
    while not core.done:
        b = batches[-1]
        target = decide_migration(sticky, b.observation, b.observation.servers, b.host).target
        batches.append(core.step(target).next)

    options = RunOptions(
        scenario=small_scenario,
        seed=3,
        key_prefix=key_prefix,
        migration_policy="sticky-nearest",
        offload_policy="local-only",
    )
    with open_bridge(options, redis=redis_server) as (engine, _store, _):
        live = []
        for _ in range(warmup + ticks):
            _, ctx = engine.tick()
            engine.apply(engine.decisions.decide(ctx))
            live.append(ctx)
    for batch, ctx in zip(batches, live[warmup:], strict=True):
        assert batch.time_s == ctx.sim_time_s and batch.vehicle_ids == ctx.vehicle_ids
        np.testing.assert_array_equal(batch.obs, ctx.observation.features)
        np.testing.assert_array_equal(batch.mask, ctx.observation.mask)
        np.testing.assert_array_equal(batch.host, ctx.host)


def test_agents_come_and_go_and_rewards_follow_eq_22(small_recording: Path):
    stats = RewardStats(latency_mean_s=0.05, latency_std_s=0.02, load_mean_bits=4e8, load_std_bits=2e8)
    core = MigrationCore(None, [small_recording], EnvOptions(episode_s=60, warmup_s=30), reward_stats=stats, seed=1)
    batch = core.reset()
    assert batch.obs.shape == (len(batch), 2 * core.n_servers - 1) and batch.state.shape == (core.state_dim,)
    rng = np.random.default_rng(0)
    seen_leave = seen_enter = 0
    while not core.done:
        noise = rng.random(batch.mask.shape)
        noise[~batch.mask] = -1.0
        out = core.step(noise.argmax(axis=1))
        nxt = out.next
        # Alive flags match ids; the departed get reward 0 and are terminated.
        assert np.array_equal(out.alive, np.isin(batch.agent_ids, nxt.agent_ids))
        assert np.all(out.rewards[~out.alive] == 0.0) and np.all(out.terminated == ~out.alive)
        seen_leave += int((~out.alive).sum())
        seen_enter += int((~np.isin(nxt.agent_ids, batch.agent_ids)).sum())
        # Eq. 22 by hand for the survivors: -(2 z(T) + z(S_m) + xi) with the fixed moments.
        ctx = core.sim.engine and core._ctx
        rows = [nxt.vehicle_ids.index(v) for v, a in zip(batch.vehicle_ids, out.alive, strict=True) if a]
        m = ctx.migration
        expected = -(
            2 * (m.latency_s[rows] - 0.05) / 0.02 + (m.host_load_bits[rows] - 4e8) / 2e8 + m.failed[rows].astype(float)
        )
        np.testing.assert_allclose(out.rewards[out.alive], expected, rtol=1e-12)
        batch = nxt
    assert out.truncated and seen_leave > 0 and seen_enter > 0


def test_a_masked_action_is_refused(small_recording: Path):
    core = MigrationCore(None, [small_recording], EnvOptions(episode_s=20, warmup_s=10), seed=0)
    batch = core.reset()
    rows, cols = np.nonzero(~batch.mask)
    assert len(rows), "some server should be out of range of some vehicle"
    actions = np.full(len(batch), int(np.flatnonzero(batch.observation.servers.is_satellite)[0]))
    actions[rows[0]] = cols[0]
    with pytest.raises(ValueError, match="masked"):
        core.step(actions)


def test_ablations_take_servers_out_of_service(small_recording: Path):
    core = MigrationCore(None, [small_recording], EnvOptions(episode_s=30, warmup_s=10, no_uavs=True), seed=0)
    uav = int(core.sim.scenario.layout.uav_indices[0])
    batch = core.reset()
    while not core.done:
        assert not batch.mask[:, uav].any() and not (batch.host == uav).any()
        batch = core.step(np.full(len(batch), int(core.sim.scenario.layout.satellite_index))).next

    sat_core = MigrationCore(None, [small_recording], EnvOptions(episode_s=10, warmup_s=10, no_satellite=True), seed=0)
    batch = sat_core.reset()
    sat = int(sat_core.sim.scenario.layout.satellite_index)
    out = sat_core.step(np.full(len(batch), sat))  # the action of last resort, but nobody serves there now
    assert out.failed[out.alive].all()

    churn = MigrationCore(
        None, [small_recording], EnvOptions(episode_s=60, warmup_s=10, uav_churn=UavChurn(1, 0)), seed=0
    )
    batch = churn.reset()
    assert not batch.mask[:, uav].any(), "the arriving UAV is not there yet"
    appeared = False
    while not churn.done:
        appeared |= bool(batch.observation.servers.active[uav])
        batch = churn.step(np.full(len(batch), int(churn.sim.scenario.layout.satellite_index))).next
    assert appeared

    outage = MigrationCore(
        None, [small_recording], EnvOptions(episode_s=8, warmup_s=60, rsu_outage=RsuOutage(2, 2.0, 5.0)), seed=0
    )
    batch = outage.reset()
    actives = []
    while not outage.done:
        actives.append(batch.observation.servers.active.copy())
        batch = outage.step(np.full(len(batch), int(outage.sim.scenario.layout.satellite_index))).next
    down = [int((~a).sum()) for a in actives]
    assert down[:5] == [0, 2, 2, 2, 0]  # the ticks at start + 1 s ... start + 5 s: off over [start + 2, start + 5)


def test_parameter_overrides_change_the_physics(small_recording: Path):
    def latencies(size_mb: float) -> tuple[np.ndarray, np.ndarray]:
        core = MigrationCore(
            None,
            [small_recording],
            EnvOptions(
                episode_s=5,
                warmup_s=30,
                overrides={"task": {"migration_size_mb": size_mb}},
                migration_policy="sticky-nearest",  # least-loaded's own choices would depend on the size
            ),
            seed=0,
        )
        batch = core.reset()
        moved = np.where(batch.host == 0, 1, 0)  # everyone moves to RSU 0 or 1 (no mask here: forced)
        core.sim.engine.apply(Decisions(moved, np.zeros(len(batch))))
        _, ctx = core.sim.engine.tick()
        return ctx.migration.latency_s, ctx.migration.migrated

    small, migrated = latencies(40.0)
    mid, _ = latencies(80.0)
    large, _ = latencies(120.0)
    assert migrated.sum() > 5
    # Eq. 12: the migration latency is S_mig / R_mig, linear in the size; nothing else changes.
    np.testing.assert_allclose((large - mid)[migrated], (mid - small)[migrated], rtol=1e-9)
    assert np.all((mid - small)[migrated] > 0) and np.all((mid - small)[~migrated] == 0)


def test_the_offload_window_is_the_twin_stores(small_scenario: Path, redis_server: RedisHandle, key_prefix: str):
    """The context a learned offload policy gets in-process equals the API's, read from Redis."""
    options = RunOptions(scenario=small_scenario, seed=3, key_prefix=key_prefix)
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        for _ in range(25):
            frame, ctx = engine.tick()
            store.write_tick(frame)
            engine.apply(engine.decisions.decide(ctx))
        mine = ctx.offload_window_mean()
        stored = store.vehicles_window_mean()
    assert stored.ids == ctx.vehicle_ids
    for name in OFFLOAD_FEATURES:
        np.testing.assert_array_equal(mine[name], stored.columns[name], err_msg=name)


def test_the_offload_core_rewards_are_inverse_costs(small_recording: Path):
    core = OffloadCore(None, [small_recording], EnvOptions(episode_s=20, warmup_s=15), seed=2)
    batch = core.reset()
    assert batch.obs.shape == (len(batch), 2 * len(OFFLOAD_FEATURES))
    np.testing.assert_allclose(batch.obs[:, 0], batch.now["f_hz"] / 1e9, rtol=1e-6)
    successes = []
    for rho in (0.0, 1.0, 0.5):
        out = core.step(np.full(len(batch), rho))
        alive = out.alive
        np.testing.assert_allclose(out.rewards[alive], 1.0 / out.cost[alive])
        assert np.isnan(out.cost[~alive]).all()
        successes.append(out.success[alive].mean())
        batch = out.next
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        core.step(np.full(len(batch), 1.5))
    assert len(set(np.round(successes, 6))) > 1, "rho should change the outcome"


def test_scheduled_events_reach_the_environments_as_they_reach_a_live_run(small_recording: Path):
    """``EnvOptions.events`` (``evaluate --events``): the outage a live run would apply, at its sim times."""
    from twin_service.events import parse_event

    probe = MigrationCore(None, [small_recording], EnvOptions(episode_s=10, warmup_s=10), seed=0)
    probe.reset()
    rsu = int(probe.sim.scenario.layout.rsu_indices[0])
    server = str(probe.sim.scenario.layout.ids[rsu])
    start = float(probe.sim.engine.last_sim_time_s) + 3.0
    event = parse_event({"kind": "server_outage", "server": server, "at_s": start, "duration_s": 2})
    core = MigrationCore(None, [small_recording], EnvOptions(episode_s=10, warmup_s=10, events=(event,)), seed=0)
    batch = core.reset()
    seen = []
    while not core.done:
        t = float(core.sim.engine.last_sim_time_s)
        seen.append((t, bool(batch.observation.servers.active[rsu]), bool(batch.mask[:, rsu].any())))
        batch = core.step(np.full(len(batch), int(core.sim.scenario.layout.satellite_index))).next
    out = [t for t, active, _ in seen if not active]
    assert out == [start, start + 1.0], seen
    assert not any(masked for t, _, masked in seen if t in out)
