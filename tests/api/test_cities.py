"""Many cities on one Redis (or a real Redis Cluster): each bridge writes under its own key prefix, and the API
serves any of them by ``?city=NAME`` (default: its own, ``TWIN_KEY_PREFIX``); ``GET /v1/cities`` lists them."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import LAYOUT, fleet_frame
from tests.api.test_events import _log
from twin_service.api import create_app
from twin_service.config import Settings
from twin_service.twins import TwinStore, connect


@pytest.fixture
def other_city(redis_client, key_prefix) -> tuple[str, list]:
    """A second run beside the test's own: 7 vehicles, ticks 1..5, another scenario name."""
    name = key_prefix + ".other"
    store = TwinStore(redis_client, name, window=10)
    store.begin_run("rural", "fedcba9876543210", LAYOUT)
    rng = np.random.default_rng(9)
    frames = [fleet_frame(t, 7, rng, vehicle_ids=[f"r{k}" for k in range(7)]) for t in range(1, 6)]
    for frame in frames:
        store.write_tick(frame)
    return name, frames


def test_cities_are_listed_and_each_is_served_by_its_name(client, filled, other_city, key_prefix):
    name, frames = other_city
    listing = client.get("/v1/cities").json()
    assert listing["default"] == key_prefix and listing["cluster"] is False
    by_name = {c["name"]: c for c in listing["cities"]}
    assert by_name[key_prefix]["latest_tick"] == 12 and by_name[key_prefix]["scenario"] == "test-fleet"
    assert by_name[name]["latest_tick"] == 5 and by_name[name]["scenario"] == "rural"
    assert by_name[name]["n_vehicles"] == 7

    # Every route reads the city it is asked for; without ?city= the service's own.
    assert client.get("/v1/ticks/latest").json()["tick"] == 12
    latest = client.get("/v1/ticks/latest", params={"city": name}).json()
    assert latest["tick"] == 5 and latest["n_vehicles"] == 7
    page = client.get("/v1/twins/vehicles", params={"city": name}).json()
    assert page["total"] == 7 and {r["id"] for r in page["items"]} == {f"r{k}" for k in range(7)}
    twin = client.get("/v1/twins/vehicles/r3", params={"city": name}).json()
    assert [h["tick"] for h in twin["history"]] == [1, 2, 3, 4, 5]
    assert twin["state"]["x_m"] == pytest.approx(frames[-1].vehicle_columns["x_m"][3])
    assert client.get("/v1/twins/vehicles/r3").status_code == 404  # not in the default city
    kpis = client.get("/v1/kpis", params={"city": name, "last": 10}).json()["samples"]
    assert [s["tick"] for s in kpis] == [1, 2, 3, 4, 5]
    batch = client.post("/v1/decisions/batch", params={"city": name}, json={}).json()
    assert batch["tick"] == 5 and batch["vehicle_ids"] == [f"r{k}" for k in range(7)]
    assert client.get("/v1/health", params={"city": name}).json()["latest_tick"] == 5
    assert client.get("/v1/map", params={"city": name}).json()["scenario"] == "rural"


def test_the_stream_of_another_city_is_that_citys(client, filled, other_city):
    name, _ = other_city
    with client.stream("GET", "/v1/stream", params={"city": name, "max_events": 1}) as response:
        assert response.status_code == 200
        body = b"".join(response.iter_bytes()).decode()
    data = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
    snapshot = data[0]
    assert snapshot["tick"] == 5 and len(snapshot["vehicles"]) == 7


def test_an_unknown_or_malformed_city_is_refused(client, filled):
    missing = client.get("/v1/ticks/latest", params={"city": "atlantis"})
    assert missing.status_code == 404 and "atlantis" in missing.json()["detail"]
    for bad in ("{x}", "a b", "", "-x", "x" * 65):
        r = client.get("/v1/ticks/latest", params={"city": bad})
        assert r.status_code == 422, bad
        assert r.json()["detail"][0]["loc"] == ["query", "city"]


def test_the_city_parameter_is_in_the_openapi_document(client):
    doc = client.get("/openapi.json").json()
    assert "/v1/cities" in doc["paths"]
    for path, method in (("/v1/ticks/latest", "get"), ("/v1/twins/vehicles", "get"), ("/v1/decisions/batch", "post")):
        params = {p["name"]: p for p in doc["paths"][path][method]["parameters"]}
        assert params["city"]["in"] == "query" and "GET /v1/cities" in params["city"]["description"]


def test_the_cities_of_a_redis_cluster_are_served_from_any_node(redis_cluster, tmp_path):
    """Two bridges' runs on a real 3+3 Redis Cluster; the service, introduced by one node, lists and serves both."""
    cluster = connect(redis_cluster.url, cluster=True)
    rng = np.random.default_rng(3)
    sizes = {"hamburg": 30, "rural": 9}
    for name, n in sizes.items():
        store = TwinStore(cluster, name, window=10)
        store.begin_run(name, "0123456789abcdef", LAYOUT)
        for t in range(1, 4):
            store.write_tick(fleet_frame(t, n, rng, vehicle_ids=[f"{name}-{k}" for k in range(n)]))
        _log(store, range(1, 4), [f"{name}-{k}" for k in range(n)])
    url = f"redis://{redis_cluster.masters()[-1].address}"
    settings = Settings(redis_url=url, redis_cluster=True, key_prefix="hamburg", models_dir=tmp_path / "models")
    with TestClient(create_app(settings)) as client:
        listing = client.get("/v1/cities").json()
        assert listing["cluster"] is True and listing["default"] == "hamburg"
        assert {c["name"]: (c["scenario"], c["latest_tick"], c["n_vehicles"]) for c in listing["cities"]} == {
            "hamburg": ("hamburg", 3, 30),
            "rural": ("rural", 3, 9),
        }
        for name, n in sizes.items():
            params = {} if name == "hamburg" else {"city": name}
            page = client.get("/v1/twins/vehicles", params={**params, "limit": 100}).json()
            assert page["total"] == n and {r["id"] for r in page["items"]} == {f"{name}-{k}" for k in range(n)}
            twin = client.get(f"/v1/twins/vehicles/{name}-2", params=params).json()
            assert [h["tick"] for h in twin["history"]] == [1, 2, 3]
            batch = client.post("/v1/decisions/batch", params=params, json={}).json()
            assert batch["tick"] == 3 and len(batch["vehicle_ids"]) == n
            latest = client.get("/v1/ticks/latest", params=params).json()
            assert (latest["tick"], latest["n_vehicles"]) == (3, n) and latest["kpis"]["vehicles"] == n
            kpis = client.get("/v1/kpis", params={**params, "last": 5}).json()["samples"]
            assert [s["tick"] for s in kpis] == [1, 2, 3]
            servers = client.get("/v1/twins/servers", params=params).json()
            assert servers["total"] == len(LAYOUT)
            sat = client.get("/v1/twins/servers/sat", params=params).json()
            assert [h["tick"] for h in sat["history"]] == [1, 2, 3]
            assert client.get("/v1/map", params=params).json()["scenario"] == name
            migration = client.post("/v1/decisions/migration", params=params, json={"vehicle_ids": [f"{name}-1"]})
            offload = client.post("/v1/decisions/offload", params=params, json={"vehicle_ids": [f"{name}-1"]})
            assert migration.status_code == offload.status_code == 200
            with client.stream("GET", "/v1/stream", params={**params, "max_events": 1}) as response:
                body = b"".join(response.iter_bytes()).decode()
            snapshot = json.loads(next(line[5:] for line in body.splitlines() if line.startswith("data:")))
            assert snapshot["tick"] == 3 and len(snapshot["vehicles"]) == n
            outage = {"kind": "server_outage", "server": LAYOUT[0]["id"], "duration_s": 30}
            posted = client.post("/v1/events", params=params, json=outage)
            assert posted.status_code == 201, posted.text
            listed = client.get("/v1/events", params=params).json()["events"]
            assert [(e["id"], e["server"]) for e in listed] == [(posted.json()["id"], LAYOUT[0]["id"])]
            logged = client.get("/v1/decisions/log", params={**params, "vehicle": f"{name}-1", "last": 2}).json()
            assert [d["tick"] for d in logged["decisions"]] == [2, 3]
        assert client.get("/v1/health").json()["latest_tick"] == 3
        assert client.get("/metrics").status_code == 200


def test_while_a_citys_master_fails_over_the_api_answers_503_then_serves_it_again(redis_cluster, tmp_path):
    """The master holding one city dies: that city is 503 with Retry-After (never a 500) until its replica has
    taken over, then served again from the replica, with every tick it had; a city on another master is served
    all along."""
    writer = connect(redis_cluster.url, cluster=True)
    stores = {}
    for name in ("hamburg", *(f"rural-{k}" for k in range(20))):
        store = TwinStore(writer, name, window=10)
        if stores and redis_cluster.master_of(store.keys.run).port == redis_cluster.master_of("{hamburg}:run").port:
            continue  # the second city lives on another master
        store.begin_run(name, "0123456789abcdef", LAYOUT)
        rng = np.random.default_rng(4)
        for t in range(1, 4):
            store.write_tick(fleet_frame(t, 12, rng))
        stores[name] = store
        if len(stores) == 2:
            break
    (home, store), (elsewhere, _) = stores.items()
    master = redis_cluster.master_of(store.keys.run)
    replica = redis_cluster.replicas_of(master)[0]
    other = next(n for n in redis_cluster.masters() if n.port != master.port)
    settings = Settings(redis_url=f"redis://{other.address}", redis_cluster=True, key_prefix=home, models_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/ticks/latest").json()["tick"] == 3
        assert client.get("/v1/ticks/latest", params={"city": elsewhere}).json()["tick"] == 3
        redis_cluster.kill(master)
        statuses, elsewhere_statuses = [], []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            elsewhere_statuses.append(client.get("/v1/ticks/latest", params={"city": elsewhere}).status_code)
            r = client.get("/v1/ticks/latest")
            statuses.append(r.status_code)
            if r.status_code == 200:
                break
            assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0, r.text
            time.sleep(0.2)
        assert statuses[0] == 503 and statuses[-1] == 200, statuses
        assert set(elsewhere_statuses) == {200}, elsewhere_statuses
        assert r.json()["tick"] == 3 and r.json()["n_vehicles"] == 12
        assert redis_cluster.master_of(store.keys.run).port == replica.port
