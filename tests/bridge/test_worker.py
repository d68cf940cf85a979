"""libsumo in a worker process, and the pipeline that keeps it stepping ahead of the bridge."""

from __future__ import annotations

import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest

from twin_service.bridge.backends import open_backend
from twin_service.bridge.pipeline import PipelinedTicks
from twin_service.bridge.runner import RunFailed, RunOptions, Scenario, open_bridge, run_loop
from twin_service.bridge.worker import ProcessBackend
from twin_service.engine import Engine, PolicyDecisions, VehicleBatch
from twin_service.twins.server import RedisHandle


def test_a_vehicle_batch_crosses_the_pipe_exactly():
    rng = np.random.default_rng(3)
    n = 257
    batch = VehicleBatch(
        [f"flow_{i}.{i * 7}" for i in range(n)],
        rng.uniform(-1e4, 1e4, n),
        rng.uniform(-1e4, 1e4, n),
        rng.uniform(0, 40, n),
        rng.uniform(0, 360, n),
        [f":junction_{i % 13}_0" if i % 5 == 0 else f"edge-{i % 31}" for i in range(n)],
    )
    back = pickle.loads(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
    assert back.ids == batch.ids and back.road_ids == batch.road_ids
    for name in ("x_m", "y_m", "speed_mps", "heading_deg"):
        np.testing.assert_array_equal(getattr(back, name), getattr(batch, name))
        assert getattr(back, name).flags.writeable
    empty = pickle.loads(pickle.dumps(VehicleBatch([], *(np.zeros(0),) * 4, [])))
    assert empty.ids == [] and empty.road_ids == [] and len(empty.x_m) == 0


def test_the_worker_steps_in_lockstep_with_in_process_libsumo(small_scenario: Path):
    """Fast-forwarding (no reads) and stepping in the worker give exactly what libsumo here gives."""
    cfg = Scenario.load(small_scenario).sumocfg
    here = open_backend("libsumo", cfg, seed=2)
    worker = ProcessBackend(cfg, seed=2)
    try:
        for _ in range(40):
            here.step()
            assert worker.advance() > 0.0
        assert worker.time_s == here.time_s and worker.vehicle_count() == here.vehicle_count() > 5
        with pytest.raises(Exception, match="no step"):
            worker.observe_tick()  # an advance reads nothing
        here.step()
        worker.step()
        a, b = here.observe_tick(), worker.observe_tick()
        assert a.time_s == b.time_s and a.arrived == b.arrived
        assert a.vehicles.ids == b.vehicles.ids and a.vehicles.road_ids == b.vehicles.road_ids
        for name in ("x_m", "y_m", "speed_mps", "heading_deg"):
            np.testing.assert_array_equal(getattr(a.vehicles, name), getattr(b.vehicles, name))
        assert b.step_s > 0.0 and b.read_s > 0.0
    finally:
        worker.close()
        here.close()


def test_the_pipeline_never_steps_beyond_what_the_run_wants(small_scenario: Path):
    """Two steps run ahead of the bridge, but none past the last tick ``may_step`` allows."""
    scenario = Scenario.load(small_scenario)
    backend = ProcessBackend(scenario.sumocfg, seed=2)
    engine = Engine(
        scenario.params,
        scenario.layout,
        scenario.projection,
        backend,
        PolicyDecisions(scenario.params, len(scenario.layout), seed=2),
        seed=2,
    )
    last_tick = 7
    pipeline = PipelinedTicks(engine, may_step=lambda ahead: engine.tick_number + 1 + ahead <= last_tick)
    assert pipeline.depth == 2
    try:
        start = backend.time_s
        frames = [pipeline.tick()[0] for _ in range(last_tick)]
        assert [f.tick for f in frames] == list(range(1, last_tick + 1))
        assert [f.sim_time_s for f in frames] == [start + k * backend.delta_t_s for k in range(1, last_tick + 1)]
        pipeline.close()
        assert backend.time_s == frames[-1].sim_time_s  # nothing stepped ahead, nothing left in flight
        # Stepping on afterwards continues from exactly there.
        backend.step()
        assert backend.time_s == frames[-1].sim_time_s + backend.delta_t_s
    finally:
        pipeline.close()
        backend.close()


def test_vehicles_departing_together_do_not_herd_onto_one_server(small_scenario: Path):
    """First placement is capacity-aware: a crowd appearing at one RSU fills it, the rest go next door."""
    from twin_service.engine import SumoTick

    scenario = Scenario.load(small_scenario)
    backend = open_backend("libsumo", scenario.sumocfg, seed=2)
    try:
        engine = Engine(
            scenario.params,
            scenario.layout,
            scenario.projection,
            backend,
            PolicyDecisions(scenario.params, len(scenario.layout), seed=2),
            seed=2,
        )
        rsu = int(np.flatnonzero(engine.tier_code == 0)[0])
        room = int(engine.load_max_bits[rsu] // engine.data_bits)
        crowd = room + 6
        x = np.full(crowd, engine.srv_x[rsu]) + np.linspace(0.0, 5.0, crowd)
        y = np.full(crowd, engine.srv_y[rsu])
        ids = [f"crowd{i}" for i in range(crowd)]
        tick = SumoTick(
            time_s=backend.time_s + 1.0,
            wall_time=0.0,
            arrived=(),
            vehicles=VehicleBatch(ids, x, y, np.zeros(crowd), np.zeros(crowd), ["e"] * crowd),
            expected_remaining=crowd,
        )
        frame, _ = engine.compute(tick)
    finally:
        backend.close()
    host = frame.vehicle_columns["host_index"].astype(int)
    assert 0 < room < crowd
    assert np.sum(host == rsu) == room  # the nearest server takes what it has room for...
    assert np.all(host[:room] == rsu)  # ...nearest first
    assert frame.server_columns["overloaded"][rsu] == 0.0
    assert np.all(host[room:] != rsu)


def test_a_killed_worker_stops_the_run_after_its_last_whole_tick(
    small_scenario: Path, redis_server: RedisHandle, key_prefix: str, tmp_path: Path
):
    """kill -9 of the SUMO worker: a SumoError (not a BrokenPipeError), every tick stored whole, the summary kept."""
    csv_path = tmp_path / "kpis.csv"
    options = RunOptions(scenario=small_scenario, key_prefix=key_prefix, parallel=True, ticks=200, kpi_csv=csv_path)
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        assert isinstance(engine.backend, ProcessBackend)

        def kill_at_tick_30() -> bool:
            if engine.tick_number == 30:
                os.kill(engine.backend._proc.pid, signal.SIGKILL)
            return False

        with pytest.raises(
            RunFailed, match=r"^SUMO step failed: the SUMO worker process was killed \(SIGKILL\)$"
        ) as err:
            run_loop(engine, store, options, should_stop=kill_at_tick_30)
        summary = err.value.summary
        # Ticks the worker had sent before it died are used; then the run stops, with nothing half done.
        assert 30 <= summary["ticks"] <= 30 + PipelinedTicks.REMOTE_DEPTH
        meta = store.latest_tick()
        assert meta is not None and meta.tick == summary["ticks"] == engine.tick_number
        block = store.vehicles_frame(meta.tick)
        assert len(block.ids) == meta.n_vehicles and all(len(c) == meta.n_vehicles for c in block.columns.values())
    rows = csv_path.read_text().splitlines()
    assert len(rows) == 1 + summary["ticks"] and rows[-1].startswith(f"{summary['ticks']},")
