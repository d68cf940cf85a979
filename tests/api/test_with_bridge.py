"""With a real bridge run (libsumo, the committed city scenario): the decisions the API serves from Redis are
exactly those the bridge would get in process from the same tick."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from twin_service.api import create_app
from twin_service.bridge.runner import RunOptions, open_bridge
from twin_service.config import Settings, load_params, resolve_scenario
from twin_service.policies import decide_all, migration_policy, offload_policy


@pytest.fixture
def bridge_run(redis_server, key_prefix):
    """40 ticks of the city from its demand ramp (t = 1500 s), written to Redis; yields the last context."""
    options = RunOptions(scenario="city", key_prefix=key_prefix, begin_s=1500.0)
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        for _ in range(40):
            frame, ctx = engine.tick()
            store.write_tick(frame)
            engine.apply(engine.decisions.decide(ctx))
        yield engine, ctx


def test_api_decisions_equal_the_in_process_decisions(bridge_run, redis_server, key_prefix, tmp_path):
    engine, ctx = bridge_run
    assert len(ctx.vehicle_ids) > 50
    params = load_params(resolve_scenario("city"))
    in_process = decide_all(
        ctx,
        migration_policy("sticky-nearest", task=params.task),
        offload_policy("nearest-least-loaded", offload=params.offload),
    )
    settings = Settings(redis_url=redis_server.url, key_prefix=key_prefix, models_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        served = client.post("/v1/decisions/batch", json={"include_expected": True}).json()
        assert client.app.state.twin.run_context(client.app.state.twin.store()).params_source == "scenario city"
    assert served["tick"] == ctx.tick and served["vehicle_ids"] == ctx.vehicle_ids
    assert served["server_ids"] == list(engine.server_ids)
    assert served["host_index"] == ctx.host.tolist()
    assert served["target_index"] == in_process.target.tolist()
    assert served["rho"] == in_process.rho.tolist()
    assert np.allclose(served["expected"]["cost"], in_process.offload.cost)


def test_the_service_rebuilds_the_bridges_own_observation(bridge_run, redis_server, key_prefix, tmp_path):
    """What a trained migration policy is fed: the server table, features and mask the API rebuilds from Redis
    (stored layout, finite stand-ins for the satellite) are exactly the bridge's in-process ones."""
    from twin_service.api.service import snapshot_from_store

    engine, ctx = bridge_run
    settings = Settings(redis_url=redis_server.url, key_prefix=key_prefix, models_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        state = client.app.state.twin
        served = snapshot_from_store(state, None).inputs
    assert served.vehicle_ids == ctx.vehicle_ids
    for name in ("range_m", "load_max_bits", "cpu_hz", "altitude_m"):
        np.testing.assert_array_equal(getattr(served.servers, name), getattr(ctx.servers, name), err_msg=name)
    np.testing.assert_array_equal(served.observation.mask, ctx.observation.mask)
    np.testing.assert_allclose(served.observation.features, ctx.observation.features, rtol=0, atol=1e-6)
    sat = ctx.servers.satellite_index
    load_column = len(ctx.servers.ground_air_indices) + sat
    assert np.all(served.observation.features[:, load_column] == 0.0)  # unlimited room: never a load fraction
