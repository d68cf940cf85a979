"""Prometheus metrics: per-route latency, decisions served, latest tick age; one registry per app."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from twin_service.api import create_app
from twin_service.policies import DEFAULT_MIGRATION_POLICY


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_routes_decisions_and_tick_age(client, filled):
    client.post("/v1/decisions/migration", json={"vehicle_ids": ["veh20", "veh21"]})
    client.post("/v1/decisions/batch", json={})
    client.get("/v1/twins/vehicles/veh20")
    client.get("/v1/twins/vehicles/ghost")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text)
    count = "twin_api_request_seconds_count"
    key = lambda route, status, method="GET": (count, (("method", method), ("route", route), ("status", status)))  # noqa: E731
    assert s[key("/v1/decisions/migration", "200", "POST")] == 1
    assert s[key("/v1/twins/vehicles/{vehicle_id}", "200")] == 1  # the template, not the raw path
    assert s[key("/v1/twins/vehicles/{vehicle_id}", "404")] == 1
    decisions = "twin_api_decisions_total"
    assert s[(decisions, (("kind", "migration"), ("policy", DEFAULT_MIGRATION_POLICY)))] == 2 + 40
    assert s[(decisions, (("kind", "offload"), ("policy", "nearest-least-loaded")))] == 40
    age = s[("twin_api_latest_tick_age_seconds", ())]
    assert age > 0 and s[("twin_api_latest_tick", ())] == 12


def test_each_app_has_its_own_registry(settings, filled):
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        a.get("/v1/health")
        assert 'route="/v1/health"' in a.get("/metrics").text
        assert 'route="/v1/health"' not in b.get("/metrics").text


def test_an_unexpected_error_is_a_json_500_without_a_trace(settings):
    def broken_store():
        raise RuntimeError("secret internals")

    app = create_app(settings, store_factory=broken_store)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/v1/ticks/latest")
        assert r.status_code == 500
        assert r.json()["detail"].startswith("internal error ") and "secret" not in r.text
