"""The API's workload predictor: each server's load forecast from its window in Redis, shown as
``predicted_loads`` and used by the Eq. 23 mask; the same forecast the bridge's engine makes in memory."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.predictor_helpers import make_predictor
from twin_service.api import create_app
from twin_service.policies import UnknownPolicyError
from twin_service.predict.base import LoadWindow
from twin_service.predict.neural import NeuralForecaster

SAT = 4
RUN_PARAM_HASH = "0123456789abcdef"  # what the `filled` fixture's run names


def test_an_overload_forecast_masks_every_ground_server(settings, filled):
    make_predictor(settings.models_dir, "alarm", param_hash=RUN_PARAM_HASH, n_series=5, bias_std=1e3)
    with TestClient(create_app(settings, predictor="alarm")) as client:
        body = client.post("/v1/decisions/migration", json={}).json()
        batch = client.post("/v1/decisions/batch", json={}).json()
    forecast = NeuralForecaster.load(settings.models_dir / "alarm").forecast(
        LoadWindow(
            np.array([f.server_columns["load_bits"] for f in filled[-6:]]),
            np.array([f.server_columns["hosted"] for f in filled[-6:]]),
        )
    )
    assert body["predicted_load_bits"] == pytest.approx(forecast.tolist())
    assert min(body["predicted_load_bits"][:SAT]) > 300e6 * 8  # far above L_max
    assert "alarm@test" in body["load_source"] and "1 tick(s) ahead" in body["load_source"]
    assert all(d["feasible_server_ids"] == ["sat"] for d in body["decisions"])
    assert set(batch["target_index"]) == {SAT}


def test_a_calm_forecast_is_the_window_it_reads(settings, filled):
    make_predictor(settings.models_dir, "calm", param_hash=RUN_PARAM_HASH, n_series=5, bias_std=0.0)
    with TestClient(create_app(settings, predictor="calm")) as client:
        body = client.post("/v1/decisions/migration", json={"vehicle_ids": ["veh20"]}).json()
    assert body["predicted_load_bits"] == pytest.approx(filled[-1].server_columns["load_bits"].tolist())


def test_without_a_predictor_the_current_load_is_served(client, filled):
    body = client.post("/v1/decisions/migration", json={}).json()
    assert body["predicted_load_bits"] == filled[-1].server_columns["load_bits"].tolist()
    assert body["load_source"].startswith("current load_bits")


def test_an_unknown_or_unfit_predictor(settings, filled):
    with pytest.raises(UnknownPolicyError, match="unknown workload predictor 'nope'"):
        create_app(settings, predictor="nope")
    make_predictor(settings.models_dir, "elsewhere", param_hash="ffffffffffffffff", n_series=5)
    with TestClient(create_app(settings, predictor="elsewhere")) as client:
        r = client.post("/v1/decisions/migration", json={})
        health = client.get("/v1/health")
    assert r.status_code == 409 and "trained on scenario parameters ffffffffffffffff" in r.text
    # The health check says so too: the service cannot decide for this run.
    assert health.status_code == 503 and health.json()["status"] == "degraded"
    assert "trained on scenario parameters ffffffffffffffff" in health.json()["detail"]


def test_the_api_forecasts_what_the_bridge_forecast(
    small_scenario, small_recording, redis_server, key_prefix, tmp_path
):
    """The bridge's engine forecasts from its in-memory history; the API from the same window in Redis."""
    from twin_service.bridge.runner import RunOptions, open_bridge
    from twin_service.config import Settings
    from twin_service.scenario.folder import Scenario

    sc = Scenario.load(small_scenario)
    make_predictor(tmp_path, "grid-lt", param_hash=sc.params.param_hash, n_series=len(sc.layout), seed=7)
    options = RunOptions(
        scenario=small_scenario,
        key_prefix=key_prefix,
        replay=small_recording,
        forecaster="grid-lt",
        models_dir=tmp_path,
    )
    with open_bridge(options, redis=redis_server) as (engine, store, _):
        for _ in range(20):
            frame, ctx = engine.tick()
            store.write_tick(frame)
            engine.apply(engine.decisions.decide(ctx))
    settings = Settings(redis_url=redis_server.url, key_prefix=key_prefix, models_dir=tmp_path)
    with TestClient(create_app(settings, predictor="grid-lt")) as client:
        body = client.post("/v1/decisions/migration", json={}).json()
    assert body["tick"] == ctx.tick
    assert body["predicted_load_bits"] == frame.server_columns["predicted_load_bits"].tolist()
    assert body["predicted_load_bits"] == ctx.observation.predicted_load_bits.tolist()
    assert body["predicted_load_bits"] != frame.server_columns["load_bits"].tolist()
