"""The dashboard's data: ``/v1/map``, the ``/v1/stream`` delta stream (over a real uvicorn and Redis), the
delta encoder, and the pages the service serves itself (dashboard, API docs without a CDN)."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_service.api import create_app
from twin_service.api.live import VEHICLE_FIELDS, DeltaEncoder, LiveTick
from twin_service.api.serve import ApiThread
from twin_service.config import SCENARIOS_DIR, Settings
from twin_service.twins import TickFrame, TwinStore

# --------------------------------------------------------------------------------------------
# The delta encoder
# --------------------------------------------------------------------------------------------


class Client:
    """What a client (the dashboard) does with the events: the state it holds."""

    def __init__(self) -> None:
        self.vehicles: dict[str, tuple] = {}
        self.servers: dict[int, tuple] = {}

    def apply(self, delta: dict) -> None:
        for vid in delta["left"]:
            del self.vehicles[vid]
        for vid, *row in delta["vehicles"]:
            self.vehicles[vid] = tuple(row)
        for index, *row in delta["servers"]:
            self.servers[index] = tuple(row)


def _live(tick: int, ids: list[str], table: np.ndarray, servers: np.ndarray) -> LiveTick:
    cols = {name: table[:, j] for j, name in enumerate(VEHICLE_FIELDS)}
    srv_cols = {"x_m": servers[:, 0], "y_m": servers[:, 1], "load_bits": servers[:, 2]}
    return LiveTick.from_columns(tick, float(tick), 0.0, ids, cols, ["a", "b", "c"], srv_cols, servers[:, 2] * 2)


@st.composite
def runs(draw: st.DrawFn) -> list[LiveTick]:
    pool = [f"veh{k}" for k in range(12)]
    ticks = []
    for tick in range(draw(st.integers(1, 6))):
        ids = draw(st.lists(st.sampled_from(pool), unique=True, max_size=12))
        xs = st.sampled_from([0.0, 10.04, 10.06, 250.0])  # 10.04 and 10.06 round to different tenths
        rows = [[draw(xs), 5.0, draw(st.integers(0, 2)), draw(st.integers(0, 1))] for _ in ids]
        table = np.array(rows, dtype=float).reshape(len(ids), 4)
        servers = np.array([[0.0, 0.0, draw(st.sampled_from([0.0, 8e6, 16e6]))] for _ in range(3)])
        ticks.append(_live(tick, ids, table, servers))
    return ticks


@settings(max_examples=150, deadline=None)
@given(run=runs(), skip=st.sets(st.integers(0, 5)))
def test_applying_the_deltas_gives_the_exact_state_of_each_sent_tick(run: list[LiveTick], skip: set[int]):
    """Whatever ticks a slow client misses, after each event it holds exactly that tick's rows."""
    encoder, client = DeltaEncoder(), Client()
    held: LiveTick | None = None
    for k, live in enumerate(run):
        if k in skip and k != len(run) - 1:
            continue
        delta = encoder.encode(live)
        before = dict(client.vehicles)
        client.apply(delta)
        rows = {v: (r[0], r[1], int(r[2]), int(r[3])) for v, r in zip(live.vehicle_ids, live.vehicles, strict=True)}
        assert client.vehicles == rows
        assert delta["n_vehicles"] == len(rows)
        # Only what changed is sent; a migration is a host change of a vehicle the client held.
        assert {v[0] for v in delta["vehicles"]} == {vid for vid, row in rows.items() if before.get(vid) != row}
        assert delta["migrations"] == [
            [vid, before[vid][2], row[2]] for vid, row in rows.items() if vid in before and before[vid][2] != row[2]
        ]
        assert {i: r[-1] for i, r in client.servers.items()} == dict(enumerate(live.servers[:, -1].astype(int)))
        held = live
    assert held is run[-1]


def test_positions_are_sent_to_a_tenth_of_a_metre_and_an_unchanged_tick_sends_nothing():
    encoder = DeltaEncoder()
    servers = np.zeros((3, 3))
    first = encoder.encode(_live(1, ["v"], np.array([[10.04, 5.0, 1, 0]]), servers))
    assert first["vehicles"] == [["v", 10.0, 5.0, 1, 0]] and len(first["servers"]) == 3
    again = encoder.encode(_live(2, ["v"], np.array([[10.01, 5.0, 1, 0]]), servers))
    assert again["vehicles"] == [] and again["servers"] == [] and again["left"] == [] and again["tick"] == 2
    encoder.reset()
    fresh = encoder.encode(_live(3, ["v"], np.array([[10.01, 5.0, 1, 0]]), servers))
    assert fresh["vehicles"] == [["v", 10.0, 5.0, 1, 0]]


# --------------------------------------------------------------------------------------------
# /v1/map
# --------------------------------------------------------------------------------------------


def test_map_has_the_scenario_roads_and_the_servers(client, store: TwinStore, filled):
    store.write_run_meta("city", "0123456789abcdef", scenario_dir=str(SCENARIOS_DIR / "city"))
    r = client.get("/v1/map", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"  # httpx decodes it
    body = r.json()
    assert body["scenario"] == "city" and body["roads_detail"] == ""
    assert body["boundary"] == [0.0, 0.0, 5000.0, 5000.0] and len(body["roads"]) > 500
    assert [s["id"] for s in body["servers"]] == ["rsu_0", "rsu_1", "rsu_2", "uav_0", "sat"]
    sat, uav = body["servers"][4], body["servers"][3]
    assert sat["range_m"] is None and sat["cache_bits"] is None
    assert uav["range_m"] == 700.0 and uav["cache_bits"] == 300 * 8e6 and len(uav["patrol_xy"]) == 2
    plain = client.get("/v1/map", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json() == body


def test_map_of_a_scenario_not_found_here_says_why_and_still_has_the_servers(client, filled):
    body = client.get("/v1/map").json()
    assert body["roads"] == [] and "test-fleet" in body["roads_detail"]
    assert len(body["servers"]) == 5
    assert body["boundary"] == [0.0, 0.0, 1000.0, 1000.0]  # around the RSUs and the UAV


def test_map_before_any_run(client):
    body = client.get("/v1/map").json()
    assert body["roads"] == [] and body["servers"] == [] and body["roads_detail"] == "no run in Redis yet"


# --------------------------------------------------------------------------------------------
# /v1/stream, over a real server
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(settings: Settings) -> Iterator[str]:
    api = ApiThread(create_app(settings.model_copy(update={"api_key": "k"})), "127.0.0.1", _free_port()).start()
    try:
        yield api.url
    finally:
        api.stop()


def _events(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    event, data = "", []
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and data:
            yield event, json.loads("".join(data))
            event, data = "", []


def test_stream_sends_a_snapshot_then_deltas_that_rebuild_each_tick(served, store, filled, make_fleet):
    rng = np.random.default_rng(9)
    with httpx.stream("GET", f"{served}/v1/stream", headers={"X-API-Key": "k"}, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.iter_lines())
        kind, snap = next(events)
        assert kind == "snapshot" and snap["tick"] == 12
        assert snap["server_ids"] == ["rsu_0", "rsu_1", "rsu_2", "uav_0", "sat"]
        assert snap["server_tiers"][3:] == ["uav", "satellite"] and "no workload predictor" in snap["load_source"]
        assert [s["tick"] for s in snap["kpis"]] == list(range(1, 13))
        assert snap["run"]["scenario"] == "test-fleet" and snap["run"]["window"] == 10
        client = Client()
        client.apply(snap)
        previous: TickFrame = filled[-1]
        for tick in (13, 14):
            ids = previous.vehicle_ids[3:] + [f"new{tick}"]  # three leave, one arrives, the rest move
            frame = make_fleet(tick, len(ids), rng, vehicle_ids=ids)
            store.write_tick(frame)
            kind, delta = next(events)
            assert kind == "tick" and delta["tick"] == tick
            assert set(delta["left"]) == set(previous.vehicle_ids[:3])
            assert [s["tick"] for s in delta["kpis"]] == [tick]
            assert delta["kpis"][0]["kpis"]["latency_mean_s"] == frame.kpis["latency_mean_s"]
            client.apply(delta)
            cols = frame.vehicle_columns
            assert client.vehicles == {
                vid: (round(cols["x_m"][k], 1), round(cols["y_m"][k], 1), int(cols["host_index"][k]), 0)
                for k, vid in enumerate(ids)
            }
            loads = {i: row[2] for i, row in client.servers.items()}
            assert loads == dict(enumerate(np.round(frame.server_columns["load_bits"]).astype(int).tolist()))
            forecast = {i: row[-1] for i, row in client.servers.items()}
            assert forecast == loads  # no predictor loaded: the forecast served is the current load
            previous = frame


def test_stream_needs_the_key_when_the_service_has_one(served, filled):
    assert httpx.get(f"{served}/v1/stream").status_code == 401
    r = httpx.get(f"{served}/v1/stream", headers={"X-API-Key": "wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "ApiKey"
    r = httpx.get(f"{served}/v1/stream?max_events=1", headers={"X-API-Key": "k"}, timeout=10)
    assert r.status_code == 200 and "event: snapshot" in r.text


def test_stream_is_503_while_redis_is_unreachable(tmp_path):
    settings = Settings(redis_url=f"unix://{tmp_path}/no-redis-here.sock", models_dir=tmp_path)
    with TestClient(create_app(settings)) as c:
        r = c.get("/v1/stream")
        assert r.status_code == 503 and r.headers["retry-after"] == "2"


# --------------------------------------------------------------------------------------------
# Pages and the OpenAPI document
# --------------------------------------------------------------------------------------------


def test_stream_is_in_the_openapi_document_with_its_key(client):
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/v1/stream"]["get"]
    assert "text/event-stream" in op["responses"]["200"]["content"]
    assert op["security"] == [{"APIKeyHeader": []}]
    assert {p["name"] for p in op["parameters"]} == {"max_events", "poll_ms"}
    assert "/v1/map" in doc["paths"]


def test_docs_and_dashboard_are_served_without_a_cdn(client):
    docs = client.get("/docs")
    assert docs.status_code == 200
    external = re.findall(r"""(?:src|href)=["']?(https?:)?//""", docs.text)
    assert not [e for e in external if e], external
    for asset in re.findall(r"""(?:src|href)=["']?(/[^"' >]+)""", docs.text):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/redoc").status_code == 404  # ReDoc only comes from a CDN: off
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard/"
    page = client.get("/dashboard/")
    assert page.status_code == 200 and '<canvas id="map"' in page.text
    for asset in re.findall(r"""(?:src|href)="([^"#:]+)\"""", page.text):
        if not asset.startswith(".."):
            assert client.get(f"/dashboard/{asset}").status_code == 200, asset
    script = client.get("/dashboard/dashboard.js").text
    assert not re.findall(r"https?://", script), "the dashboard names an outside address"
