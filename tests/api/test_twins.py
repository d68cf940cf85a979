"""Twins over HTTP: pagination, one twin with its window, 404 and 422."""

from __future__ import annotations

import pytest


def test_vehicle_pages_cover_the_tick_in_row_order(client, filled):
    last = filled[-1]
    seen = []
    offset = 0
    while True:
        page = client.get("/v1/twins/vehicles", params={"offset": offset, "limit": 15}).json()
        assert page["tick"] == 12 and page["total"] == 40 and page["limit"] == 15
        if not page["items"]:
            break
        seen += [item["id"] for item in page["items"]]
        offset += 15
    assert seen == last.vehicle_ids
    first = client.get("/v1/twins/vehicles", params={"limit": 1}).json()["items"][0]
    assert first["state"]["lon"] == last.vehicle_columns["lon"][0]
    assert first["state"]["road_id"] == last.vehicle_text["road_id"][0]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"tick": -3}])
def test_bad_paging_is_422_naming_the_field(client, filled, params):
    r = client.get("/v1/twins/vehicles", params=params)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_one_vehicle_with_history_and_window_mean(client, filled):
    r = client.get("/v1/twins/vehicles/veh12")  # present since tick 1 (ids veh1..veh40), so in all 10
    assert r.status_code == 200
    twin = r.json()
    assert twin["kind"] == "vehicle" and twin["tick"] == 12
    assert [h["tick"] for h in twin["history"]] == list(range(3, 13))
    speeds = [f.vehicle_columns["speed_mps"][f.vehicle_ids.index("veh12")] for f in filled[2:]]
    assert twin["window_mean"]["speed_mps"] == pytest.approx(sum(speeds) / len(speeds))
    older = client.get("/v1/twins/vehicles/veh12", params={"tick": 5}).json()
    assert older["tick"] == 5 and older["history"][-1]["tick"] == 5


def test_servers_list_and_detail(client, filled):
    page = client.get("/v1/twins/servers").json()
    assert [s["id"] for s in page["items"]] == ["rsu_0", "rsu_1", "rsu_2", "uav_0", "sat"]
    sat = client.get("/v1/twins/servers/sat").json()
    assert sat["state"]["tier"] == "satellite" and sat["kind"] == "server"


def test_unknown_ids_and_ticks_are_404(client, filled):
    assert client.get("/v1/twins/vehicles/ghost").status_code == 404
    assert client.get("/v1/twins/servers/ghost").status_code == 404
    r = client.get("/v1/twins/vehicles", params={"tick": 1})  # left the 10-tick window
    assert r.status_code == 404 and "not held" in r.json()["detail"]
    assert client.get("/v1/twins/vehicles/veh20", params={"tick": 999}).status_code == 404


def test_a_twin_read_returns_the_writers_window_from_the_first_request(client, redis_client, key_prefix, make_fleet):
    """The bridge may keep a longer window than the API's default of 10: its own counts."""
    import numpy as np

    from twin_service.twins import TwinStore

    writer = TwinStore(redis_client, key_prefix, window=12)
    writer.write_run_meta("test-fleet", "0123456789abcdef")
    rng = np.random.default_rng(1)
    for tick in range(1, 15):
        writer.write_tick(make_fleet(tick, 5, rng, vehicle_ids=[f"veh{k}" for k in range(5)]))
    twin = client.get("/v1/twins/vehicles/veh0").json()
    assert [h["tick"] for h in twin["history"]] == list(range(3, 15))
