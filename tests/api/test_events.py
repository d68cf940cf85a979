"""``/v1/events`` and ``/v1/decisions/log`` against a real Redis holding a run: posted, listed, ended, refused with a
422 naming the field, kept across an API restart; the log read per vehicle, per tick and as a stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from twin_service.api import create_app
from twin_service.config import BITS_PER_MB, Settings
from twin_service.twins import TwinStore
from twin_service.twins.declog import DecisionLogEntry, pack_rows, top_scores


def test_post_list_get_and_end_an_outage(client: TestClient, filled, store: TwinStore) -> None:
    posted = client.post("/v1/events", json={"kind": "server_outage", "server": "rsu_1", "duration_s": 60})
    assert posted.status_code == 201, posted.text
    event = posted.json()
    assert event["kind"] == "server_outage" and event["server"] == "rsu_1" and event["duration_s"] == 60
    assert event["status"] == "pending" and event["source"] == "api" and not event["end_requested"]
    assert posted.headers["location"] == f"/v1/events/{event['id']}"

    second = client.post("/v1/events", json={"kind": "channel", "factor": 0.5, "note": "rain"}).json()
    assert int(second["id"]) == int(event["id"]) + 1

    listed = client.get("/v1/events").json()
    assert [e["id"] for e in listed["events"]] == [event["id"], second["id"]]
    assert listed["pending"] == 2 and listed["active"] == 0
    assert client.get(f"/v1/events/{second['id']}").json()["note"] == "rain"

    # the bridge's course, as it writes it with a tick, shows in the views
    store.redis.hset(store.keys.events_state, event["id"], json.dumps({"status": "active", "start_tick": 13}))
    assert client.get("/v1/events", params={"status": "active"}).json()["events"][0]["start_tick"] == 13

    ended = client.delete(f"/v1/events/{event['id']}")
    assert ended.status_code == 202 and ended.json()["end_requested"] is True
    assert client.delete("/v1/events/999").status_code == 404
    assert client.get("/v1/events/999").status_code == 404

    store.redis.hset(
        store.keys.events_state, event["id"], json.dumps({"status": "ended", "reason": "ended by request"})
    )
    again = client.delete(f"/v1/events/{event['id']}")
    assert again.status_code == 200 and again.json()["reason"] == "ended by request"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "server_outage", "server": "rsu_99", "duration_s": 60}, "server"),
        ({"kind": "server_outage", "server": "rsu_1", "duration_s": -5}, "duration_s"),
        ({"kind": "server_outage", "server": "rsu_1", "duration_s": "NaN"}, "duration_s"),
        ({"kind": "server_outage", "server": "rsu_1", "duration_s": "Infinity"}, "duration_s"),
        ({"kind": "server_outage", "server": "rsu_1", "duration_s": 0}, "duration_s"),
        ({"kind": "server_outage", "duration_s": 10}, "server"),
        ({"kind": "meteor", "server": "rsu_1"}, "kind"),
        ({"server": "rsu_1"}, "kind"),
        ({"kind": "uav_recall", "server": "rsu_1"}, "server"),  # not a UAV
        ({"kind": "demand_scale", "factor": -1}, "factor"),
        ({"kind": "channel", "factor": 0.5, "colour": "red"}, "colour"),
        ({"kind": "channel", "factor": 0.5, "at_s": 1.0}, "at_s"),  # before the run's sim time (12 s)
    ],
)
def test_bad_events_get_a_422_naming_the_field(client: TestClient, filled, body: dict, field: str) -> None:
    # NaN and Infinity as a client would send them with allow_nan (Python's json does)
    response = client.post(
        "/v1/events",
        content=json.dumps(body).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity"),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    locs = [err["loc"] for err in response.json()["detail"]]
    assert any(loc[0] == "body" and loc[-1] == field for loc in locs), locs
    assert client.get("/v1/events").json()["events"] == []  # nothing stored


def test_no_run_is_a_409_and_a_launch_with_nothing_recalled_too(client: TestClient, store: TwinStore) -> None:
    assert client.post("/v1/events", json={"kind": "server_outage", "server": "rsu_1"}).status_code == 409
    store.write_layout([{"id": "uav_0", "tier": "uav"}, {"id": "sat", "tier": "satellite"}])
    refused = client.post("/v1/events", json={"kind": "uav_launch"})
    assert refused.status_code == 409 and "nothing to launch" in refused.json()["detail"]
    assert client.post("/v1/events", json={"kind": "uav_recall"}).status_code == 201
    assert client.post("/v1/events", json={"kind": "uav_launch"}).status_code == 201


def test_events_survive_an_api_restart(settings: Settings, filled) -> None:
    with TestClient(create_app(settings)) as first:
        posted = first.post("/v1/events", json={"kind": "server_outage", "server": "sat", "duration_s": 30}).json()
    with TestClient(create_app(settings)) as second:
        listed = second.get("/v1/events").json()["events"]
        assert [(e["id"], e["server"], e["duration_s"]) for e in listed] == [(posted["id"], "sat", 30.0)]
        assert second.delete(f"/v1/events/{posted['id']}").status_code == 202


def test_posting_and_ending_need_the_key_listing_does_not(settings: Settings, filled) -> None:
    keyed = settings.model_copy(update={"api_key": "s3cret"})
    with TestClient(create_app(keyed)) as client:
        body = {"kind": "server_outage", "server": "rsu_0"}
        assert client.post("/v1/events", json=body).status_code == 401
        created = client.post("/v1/events", json=body, headers={"X-API-Key": "s3cret"})
        assert created.status_code == 201
        assert client.get("/v1/events").status_code == 200
        assert client.delete(f"/v1/events/{created.json()['id']}").status_code == 401


def _log(store: TwinStore, ticks: range, ids: list[str], m: int = 5) -> None:
    rng = np.random.default_rng(2)
    for tick in ticks:
        n = len(ids)
        probs = rng.dirichlet(np.ones(m), size=n).astype(np.float32)
        top_i, top_s = top_scores(probs)
        target = probs.argmax(axis=1)
        host = np.where(np.arange(n) % 2 == 0, target, (target + 1) % m)
        rows = pack_rows(ids, host, target, np.full(n, 0.25), np.full(n, 3), top_i, top_s, np.full(n, 8 * BITS_PER_MB))
        store.append_decisions(
            DecisionLogEntry(tick, float(tick), "api:least-loaded@1+nearest-least-loaded@1", False, rows)
        )


def test_decision_log_per_vehicle_and_per_tick(client: TestClient, filled, store: TwinStore) -> None:
    _log(store, range(1, 13), ["veh0", "veh1", "veh2"])
    got = client.get("/v1/decisions/log", params={"vehicle": "veh1", "last": 4})
    assert got.status_code == 200, got.text
    body = got.json()
    assert [d["tick"] for d in body["decisions"]] == [9, 10, 11, 12]
    d = body["decisions"][-1]
    assert d["migrates"] is True and d["host_server_id"] != d["target_server_id"]
    assert d["target_server_id"] == d["top"][0]["server_id"] and d["rho"] == 0.25 and d["mask_size"] == 3
    assert d["predicted_load_mb"] == pytest.approx(8.0) and d["source"].startswith("api:least-loaded@1")
    assert body["log"] == {"oldest_tick": 1, "newest_tick": 12, "ticks": 12}

    window = client.get("/v1/decisions/log", params={"vehicle": "veh0", "from_tick": 3, "to_tick": 5, "last": 10})
    assert [d["tick"] for d in window.json()["decisions"]] == [3, 4, 5]
    ticks = client.get("/v1/decisions/log", params={"last": 2}).json()["ticks"]
    assert [t["tick"] for t in ticks] == [11, 12] and ticks[0]["vehicles"] == 3 and ticks[0]["migrations"] == 1
    assert client.get("/v1/decisions/log", params={"vehicle": "nobody"}).status_code == 404
    assert client.get("/v1/decisions/log", params={"last": 0}).status_code == 422


def test_decision_log_stream_follows_the_log(client: TestClient, filled, store: TwinStore) -> None:
    _log(store, range(1, 4), ["veh0", "veh1"])
    with client.stream("GET", "/v1/decisions/log/stream", params={"vehicle": "veh1", "max_events": 1}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    events = [block for block in text.split("\n\n") if "event: decision" in block]
    assert len(events) == 1
    data = json.loads(next(line[6:] for line in events[0].splitlines() if line.startswith("data: ")))
    assert data["tick"] == 3 and data["rho"] == 0.25  # the newest entry first
    assert client.get("/v1/decisions/log/stream", params={"vehicle": "nobody"}).status_code == 404
