"""Health, latest tick and KPI history against a real Redis; 503 when Redis is not there."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import LAYOUT
from twin_service.api import create_app
from twin_service.config import Settings
from twin_service.policies import DEFAULT_MIGRATION_POLICY
from twin_service.twins import TwinStore, open_redis


def test_health_names_redis_tick_and_policies(client, filled):
    r = client.get("/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["redis"] == "ok"
    assert body["latest_tick"] == 12
    assert body["latest_tick_age_s"] > 0
    assert [(p["kind"], p["name"]) for p in body["defaults"]] == [
        ("migration", DEFAULT_MIGRATION_POLICY),
        ("offload", "nearest-least-loaded"),
    ]
    assert {p["name"] for p in body["policies"]} >= {"greedy", "random", "local-only"}


def test_health_before_the_first_tick_is_ok_without_a_tick(client):
    body = client.get("/v1/health").json()
    assert body["status"] == "ok" and body["latest_tick"] is None


def test_latest_tick_and_kpis(client, filled):
    r = client.get("/v1/ticks/latest")
    assert r.status_code == 200
    tick = r.json()
    assert (tick["tick"], tick["sim_time_s"], tick["n_vehicles"], tick["n_servers"]) == (12, 12.0, 40, 5)
    assert tick["kpis"]["latency_mean_s"] == filled[-1].kpis["latency_mean_s"]
    assert "host_index" in tick["vehicle_columns"] and "tier" in tick["server_columns"]
    samples = client.get("/v1/kpis", params={"last": 3}).json()["samples"]
    assert [s["tick"] for s in samples] == [10, 11, 12]
    assert client.get("/v1/kpis", params={"last": 0}).status_code == 422


def test_no_tick_yet_is_404(client):
    r = client.get("/v1/ticks/latest")
    assert r.status_code == 404 and "no tick written yet" in r.json()["detail"]


def test_unreachable_redis_is_503_with_retry_after(tmp_path):
    settings = Settings(redis_url=f"unix://{tmp_path}/no-redis-here.sock", models_dir=tmp_path)
    with TestClient(create_app(settings)) as c:
        for method, path, body in [
            ("GET", "/v1/health", None),
            ("GET", "/v1/ticks/latest", None),
            ("GET", "/v1/twins/vehicles", None),
            ("POST", "/v1/decisions/batch", {}),
            ("POST", "/v1/decisions/migration", {"vehicle_ids": ["veh1"]}),
        ]:
            r = c.request(method, path, json=body)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["retry-after"] == "2"
        assert c.get("/v1/health").json()["redis"] == "unreachable"
        assert c.get("/metrics").status_code == 200  # metrics still answer


def test_redis_stopping_under_a_running_service_gives_503_then_recovers_on_a_new_server(tmp_path):
    with open_redis(None) as handle:
        store = TwinStore(handle.client, "live")
        settings = Settings(redis_url=handle.url, key_prefix="live", models_dir=tmp_path)
        app = create_app(settings)
        client = TestClient(app)
        assert client.get("/v1/health").status_code == 200
        store.ping()
    # The embedded server is gone now (its socket too).
    t0 = time.perf_counter()
    r = client.get("/v1/health")
    assert r.status_code == 503 and "unreachable" in r.json()["redis"]
    assert client.get("/v1/kpis").status_code == 503
    assert time.perf_counter() - t0 < 5.0


def test_no_redis_configured_says_where_to_point_it(tmp_path):
    with TestClient(create_app(Settings(redis_url=None, models_dir=tmp_path))) as c:
        r = c.get("/v1/health")
        assert r.status_code == 503
        assert r.json()["redis"] == "not configured" and "URL the bridge prints" in r.json()["detail"]
        assert c.get("/v1/ticks/latest").status_code == 503


def test_a_malformed_redis_url_fails_at_start(tmp_path):
    with pytest.raises(ValueError, match="not a Redis URL"):
        create_app(Settings(redis_url="http://localhost:6379", models_dir=tmp_path))


def test_health_is_degraded_while_the_run_records_are_missing(client, store, make_fleet):
    """Ticks but no run records (what a FLUSHALL leaves until the bridge's next tick): 503, degraded, and why."""
    import numpy as np

    store.write_tick(make_fleet(1, 8, np.random.default_rng(0)))
    r = client.get("/v1/health")
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    body = r.json()
    assert body["status"] == "degraded" and body["redis"] == "ok" and body["latest_tick"] == 1
    assert any("metadata is missing" in reason for reason in body["reasons"])
    assert any("no edge-server layout is stored" in reason for reason in body["reasons"])
    assert body["detail"].startswith("cannot decide: ")
    assert client.post("/v1/decisions/batch", json={}).status_code == 409  # what degraded means


def test_health_counts_the_bridge_fallback_ticks(client, store, layout, make_fleet):
    import numpy as np

    store.write_run_meta("test-fleet", "0123456789abcdef")
    store.write_layout(layout)
    rng = np.random.default_rng(1)
    for tick in range(1, 41):
        frame = make_fleet(tick, 8, rng)
        frame.kpis["fallback"] = float(tick > 20)
        store.write_tick(frame)
    body = client.get("/v1/health").json()
    assert body["status"] == "ok"  # the service itself can decide
    assert (body["recent_ticks"], body["recent_fallback_ticks"]) == (30, 20)


def test_the_run_context_is_kept_while_the_run_stays_the_same(client, store, filled, monkeypatch):
    """Every RUN_CONTEXT_TTL_S the API asks Redis which run it serves: the same metadata and layout keep the context
    it built (its server tables with it); a new layout or new parameters give a new one."""
    from twin_service.api import state as api_state

    twin = client.app.state.twin
    first = twin.run_context(twin.store())
    table = first.servers(tuple(s["id"] for s in LAYOUT))
    clock = [1e6]
    monkeypatch.setattr(api_state.time, "monotonic", lambda: clock[0])
    clock[0] += 10 * api_state.RUN_CONTEXT_TTL_S  # due for a check: Redis still says the same run
    again = twin.run_context(twin.store())
    assert again is first and again.servers(tuple(s["id"] for s in LAYOUT)) is table
    moved = [dict(s, x_m=s["x_m"] + 5.0) if s["id"] == "rsu_0" else s for s in LAYOUT]
    store.write_layout(moved)
    assert twin.run_context(twin.store()) is first  # checked a moment ago: not asked again yet
    clock[0] += 10 * api_state.RUN_CONTEXT_TTL_S
    changed = twin.run_context(twin.store())
    assert changed is not first and changed.layout[0]["x_m"] == LAYOUT[0]["x_m"] + 5.0
    store.write_run_meta("test-fleet", "fedcba9876543210")
    clock[0] += 10 * api_state.RUN_CONTEXT_TTL_S
    assert twin.run_context(twin.store()).param_hash == "fedcba9876543210"
