"""Decision endpoints over a real Redis: per vehicle, batch, stateless mode, policies and models, errors."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from twin_service.api import create_app
from twin_service.config import BITS_PER_MB, Settings
from twin_service.policies import DEFAULT_MIGRATION_POLICY, save_model
from twin_service.policies.manifest import ModelManifest, migration_spec
from twin_service.policies.torch_policy import build_actor

SERVER_IDS = ["rsu_0", "rsu_1", "rsu_2", "uav_0", "sat"]
SAT = 4


def test_migration_per_vehicle_is_feasible_and_matches_the_batch(client, filled):
    batch = client.post("/v1/decisions/batch", json={}).json()
    assert batch["tick"] == 12 and batch["server_ids"] == SERVER_IDS
    assert batch["vehicle_ids"] == filled[-1].vehicle_ids
    assert batch["source"] == f"{DEFAULT_MIGRATION_POLICY}@1+nearest-least-loaded@1"
    ids = ["veh20", "veh12", "veh51"]
    r = client.post("/v1/decisions/migration", json={"vehicle_ids": ids})
    assert r.status_code == 200
    body = r.json()
    assert body["tick"] == 12 and body["policy"] == {"name": DEFAULT_MIGRATION_POLICY, "version": "1"}
    assert body["predicted_load_bits"] == filled[-1].server_columns["load_bits"].tolist()
    for d in body["decisions"]:
        k = batch["vehicle_ids"].index(d["vehicle_id"])
        assert d["target_index"] == batch["target_index"][k]
        assert d["target_server_id"] == SERVER_IDS[d["target_index"]]
        assert d["target_server_id"] in d["feasible_server_ids"] and "sat" in d["feasible_server_ids"]
        assert sum(d["probabilities"].values()) == pytest.approx(1.0)
        assert d["host_index"] == int(filled[-1].vehicle_columns["host_index"][k])
    assert [d["vehicle_id"] for d in body["decisions"]] == ids


def test_offload_per_vehicle_matches_the_batch(client, filled):
    assert client.post("/v1/decisions/batch", json={}).json()["expected"] is None
    batch = client.post("/v1/decisions/batch", json={"include_expected": True}).json()
    r = client.post("/v1/decisions/offload", json={"vehicle_ids": ["veh30"], "policy": "local-only"})
    assert r.status_code == 200
    (d,) = r.json()["decisions"]
    assert d["rho"] == 0.0 and d["host_server_id"] in SERVER_IDS
    k = batch["vehicle_ids"].index("veh30")
    assert d["deadline_s"] == filled[-1].vehicle_columns["deadline_s"][k]
    # Locally: C / f seconds (paper B Eq. 5).
    local_s = filled[-1].vehicle_columns["cycles"][k] / filled[-1].vehicle_columns["f_hz"][k]
    assert d["expected_delay_s"] == pytest.approx(local_s)
    assert d["deadline_met"] == (local_s <= d["deadline_s"])
    assert all(0.0 <= rho <= 1.0 for rho in batch["rho"])
    assert len(batch["expected"]["cost"]) == 40
    per_vehicle = client.post("/v1/decisions/offload", json={"vehicle_ids": ["veh30"]}).json()["decisions"][0]
    assert per_vehicle["rho"] == batch["rho"][k]
    assert per_vehicle["expected_cost"] == pytest.approx(batch["expected"]["cost"][k])


def test_an_overloaded_server_is_never_a_target(client, store, filled, make_fleet):
    rng = np.random.default_rng(9)
    frame = make_fleet(13, 60, rng, backlog_mb=(299.0, 0.0, 0.0, 0.0, 0.0))
    store.write_tick(frame)
    batch = client.post("/v1/decisions/batch", json={"tick": 13}).json()
    target = np.array(batch["target_index"])
    assert not (target == 0).any()
    on_rsu0 = np.array(batch["host_index"]) == 0
    assert on_rsu0.any()  # its twins had to move
    # Capacity-aware: no server ends above its cache from the twins moved onto it.
    moved_in = np.bincount(target[target != np.array(batch["host_index"])], minlength=5) * 2 * BITS_PER_MB
    load = frame.server_columns["load_bits"]
    assert np.all((load + moved_in)[1:4] <= 300 * BITS_PER_MB)


def test_a_rewritten_tick_is_decided_again(client, store, filled, make_fleet):
    first = client.post("/v1/decisions/batch", json={}).json()
    rng = np.random.default_rng(77)
    store.write_tick(make_fleet(12, 40, rng, vehicle_ids=[f"new{k}" for k in range(40)]))
    second = client.post("/v1/decisions/batch", json={}).json()
    assert second["tick"] == 12 and second["vehicle_ids"][0] == "new0" != first["vehicle_ids"][0]


def test_older_ticks_and_policies_by_name(client, filled):
    r = client.post(
        "/v1/decisions/batch", json={"tick": 8, "migration_policy": "greedy", "offload_policy": "local-only"}
    )
    body = r.json()
    assert body["tick"] == 8 and body["sim_time_s"] == 8.0
    assert body["migration_policy"]["name"] == "greedy" and body["rho"] == [0.0] * 40
    rnd = client.post("/v1/decisions/migration", json={"policy": "random"}).json()
    assert rnd["policy"]["name"] == "random" and len(rnd["decisions"]) == 40
    for d in rnd["decisions"]:
        assert d["target_server_id"] in d["feasible_server_ids"]
        probs = list(d["probabilities"].values())
        assert probs == pytest.approx([1 / len(probs)] * len(probs))


def test_unknown_vehicles_ticks_and_policies(client, filled):
    r = client.post("/v1/decisions/migration", json={"vehicle_ids": ["veh20", "ghost"]})
    assert r.status_code == 404 and "'ghost'" in r.json()["detail"]
    assert client.post("/v1/decisions/offload", json={"tick": 999}).status_code == 404
    r = client.post("/v1/decisions/migration", json={"policy": "no-such"})
    assert r.status_code == 422
    assert (
        r.json()["detail"][0]["loc"] == ["body", "policy"] and DEFAULT_MIGRATION_POLICY in r.json()["detail"][0]["msg"]
    )
    r = client.post("/v1/decisions/batch", json={"offload_policy": "greedy"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "offload_policy"]
    r = client.post("/v1/decisions/migration", json={"tick": "soon"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "tick"]
    r = client.post("/v1/decisions/migration", json={"vehicle_id": ["veh20"]})  # misspelt field
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "vehicle_id"]


def _stateless(layout, vehicles, **extra):
    servers = [
        {k: s[k] for k in ("id", "tier", "lon", "lat", "altitude_m", "range_m", "cache_mb", "cpu_hz")} for s in layout
    ]
    servers[1]["load_bits"] = 299 * BITS_PER_MB  # rsu_1 is full
    return {"observation": {"servers": servers, "vehicles": vehicles, **extra}}


def test_stateless_migration_decides_from_the_request(client, layout):
    near_rsu1 = {"id": "a", "lon": layout[1]["lon"], "lat": layout[1]["lat"] + 0.001, "host_index": -1}
    near_rsu2 = {"id": "b", "lon": layout[2]["lon"], "lat": layout[2]["lat"], "host_index": SAT}
    request = _stateless(layout, [near_rsu1, near_rsu2]) | {"policy": "sticky-nearest"}
    r = client.post("/v1/decisions/migration", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tick"] is None
    a, b = body["decisions"]
    assert "rsu_1" not in a["feasible_server_ids"]  # full: 299 + 2 MB > 300 MB
    assert a["target_server_id"] == "uav_0"  # 580 m away at 50 m altitude, in its 700 m range
    assert b["target_server_id"] == "rsu_2"  # back from the satellite to the ground

    # The default policy weighs latency, not distance, but reads the same request: never the full rsu_1.
    r = client.post("/v1/decisions/migration", json=_stateless(layout, [near_rsu1, near_rsu2]))
    assert r.status_code == 200 and r.json()["policy"]["name"] == DEFAULT_MIGRATION_POLICY
    for d in r.json()["decisions"]:
        assert d["target_server_id"] in d["feasible_server_ids"] and d["target_server_id"] != "rsu_1"


def test_stateless_offload_and_its_validation(client, layout):
    vehicle = {"id": "a", "lon": layout[0]["lon"], "lat": layout[0]["lat"], "host_index": 0, "f_hz": 1e9,
               "r_bps": 8e7, "data_bits": 8e6, "cycles": 1e9, "deadline_s": 0.5}  # fmt: skip
    r = client.post("/v1/decisions/offload", json=_stateless(layout, [vehicle]))
    assert r.status_code == 200, r.text
    (d,) = r.json()["decisions"]
    assert d["rho"] in (0.0, 1.0) and d["host_server_id"] == "rsu_0"

    missing = {k: v for k, v in vehicle.items() if k != "cycles"}
    r = client.post("/v1/decisions/offload", json=_stateless(layout, [missing]))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "observation", "vehicles", 0, "cycles"]

    no_sat = _stateless(layout, [vehicle])
    no_sat["observation"]["servers"] = no_sat["observation"]["servers"][:4]
    r = client.post("/v1/decisions/offload", json=no_sat)
    assert r.status_code == 422 and "exactly one satellite" in r.text

    far = dict(vehicle, host_index=9)
    assert "host_index out of range" in client.post("/v1/decisions/offload", json=_stateless(layout, [far])).text
    both = _stateless(layout, [vehicle]) | {"tick": 3}
    assert client.post("/v1/decisions/offload", json=both).status_code == 422


def test_request_size_limits(settings, filled, layout):
    small = settings.model_copy(update={"max_vehicles_per_request": 3})
    with TestClient(create_app(small, max_body_bytes=4096)) as c:
        r = c.post("/v1/decisions/migration", json={"vehicle_ids": [f"veh{k}" for k in range(12, 16)]})
        assert r.status_code == 422
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body", "vehicle_ids"] and "at most 3 vehicles" in err["msg"]
        vehicles = [{"id": f"v{k}", "lon": 9.99, "lat": 53.55} for k in range(4)]
        r = c.post("/v1/decisions/migration", json=_stateless(layout, vehicles))
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "observation", "vehicles"]
        assert c.post("/v1/decisions/batch", json={}).status_code == 200  # a whole tick is not limited
        r = c.post("/v1/decisions/migration", json={"vehicle_ids": ["x" * 200] * 30})
        assert r.status_code == 413 and "larger than 4096" in r.json()["detail"]


def test_api_key_guards_the_decisions_only(settings, filled):
    keyed = settings.model_copy(update={"api_key": "s3cret"})
    with TestClient(create_app(keyed)) as c:
        assert c.post("/v1/decisions/batch", json={}).status_code == 401
        r = c.post("/v1/decisions/batch", json={}, headers={"X-API-Key": "wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "ApiKey"
        assert c.post("/v1/decisions/batch", json={}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/v1/twins/vehicles").status_code == 200
        assert c.get("/v1/health").status_code == 200


def _model(settings: Settings, name: str, n_servers: int, param_hash: str) -> None:
    obs, act = migration_spec(n_servers)
    manifest = ModelManifest(
        name=name, kind="migration", algorithm="DM-MAPPO", version="0.0.1", observation=obs, action=act,
        scenario_param_hash=param_hash, command="pytest", seed=0,
    )  # fmt: skip
    save_model(settings.models_dir / name, manifest, build_actor(manifest).state_dict())


def test_a_stored_model_serves_when_it_fits_and_is_refused_when_not(settings, filled):
    _model(settings, "tiny", 5, "0123456789abcdef")  # the run's hash (see conftest)
    _model(settings, "six-servers", 6, "0123456789abcdef")
    _model(settings, "other-scenario", 5, "ffffffffffffffff")
    with TestClient(create_app(settings)) as c:
        names = {p["name"] for p in c.get("/v1/health").json()["policies"]}
        assert {"tiny", "six-servers", "other-scenario"} <= names
        r = c.post("/v1/decisions/migration", json={"policy": "tiny"})
        assert r.status_code == 200 and r.json()["policy"] == {"name": "tiny", "version": "0.0.1"}
        for d in r.json()["decisions"]:
            assert d["target_server_id"] in d["feasible_server_ids"]
        r = c.post("/v1/decisions/migration", json={"policy": "six-servers"})
        assert r.status_code == 409 and "trained for 6 servers, the scenario has 5" in r.json()["detail"]
        r = c.post("/v1/decisions/batch", json={"migration_policy": "other-scenario"})
        assert r.status_code == 409 and "ffffffffffffffff" in r.json()["detail"]
        assert "the run's scenario parameters are not known here" in r.json()["detail"]  # and what to do
    with TestClient(create_app(settings, migration_policy="tiny")) as c:
        assert c.post("/v1/decisions/batch", json={}).json()["migration_policy"]["name"] == "tiny"
