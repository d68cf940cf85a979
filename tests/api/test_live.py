"""The dashboard's data: ``/v1/map``, the ``/v1/stream`` delta stream (over a real uvicorn and Redis), the
delta encoder, and the pages the service serves itself (dashboard, API docs without a CDN)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
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
        assert snap["load_source"].startswith("current load_bits")
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


def _serve(settings: Settings, **update: object) -> ApiThread:
    app = create_app(settings.model_copy(update=update))
    api = ApiThread(app, "127.0.0.1", _free_port()).start()
    api.app = app  # type: ignore[attr-defined]
    return api


class Reader(threading.Thread):
    """A stream client on a thread of its own, keeping every event it reads."""

    def __init__(self, url: str, until_tick: int) -> None:
        super().__init__(daemon=True)
        self.url, self.until_tick = url, until_tick
        self.events: list[tuple[str, dict]] = []
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with httpx.stream("GET", f"{self.url}/v1/stream", timeout=20) as r:
                self.connected.set()
                for kind, body in _events(r.iter_lines()):
                    self.events.append((kind, body))
                    if body.get("tick", -1) >= self.until_tick:
                        return
        except httpx.HTTPError:  # the server stopped under a client that reads on
            pass


def test_many_clients_share_one_read_of_each_tick(settings, store, filled, make_fleet):
    """Six viewers, four new ticks: the hub reads each tick once, and every viewer rebuilds every tick."""
    api = _serve(settings)
    hub = api.app.state.live
    try:
        readers = [Reader(api.url, 16) for _ in range(6)]
        for reader in readers:
            reader.start()
            assert reader.connected.wait(10)
        deadline = time.monotonic() + 10
        while not all(reader.events for reader in readers) and time.monotonic() < deadline:
            time.sleep(0.02)
        rng = np.random.default_rng(3)
        frames = {}
        for tick in range(13, 17):
            frames[tick] = make_fleet(tick, 40, rng, vehicle_ids=[f"veh{k}" for k in range(tick, tick + 40)])
            store.write_tick(frames[tick])
            time.sleep(0.3)  # a tick every 0.3 s: each one is read while the viewers are there
        for reader in readers:
            reader.join(20)
        stats = hub.stats
    finally:
        api.stop()
    assert stats.ticks_read == 5  # tick 12 (for the first viewer) and 13-16: once each, not once per viewer
    assert stats.snapshots_built <= 2 and stats.clients_dropped == 0
    for reader in readers:
        kinds = [(kind, body.get("tick")) for kind, body in reader.events if kind != "status"]
        assert kinds == [("snapshot", 12), ("tick", 13), ("tick", 14), ("tick", 15), ("tick", 16)]
        client = Client()
        for kind, body in reader.events:
            if kind != "status":
                client.apply(body)
        cols = frames[16].vehicle_columns
        assert client.vehicles == {
            vid: (round(cols["x_m"][k], 1), round(cols["y_m"][k], 1), int(cols["host_index"][k]), 0)
            for k, vid in enumerate(frames[16].vehicle_ids)
        }


def test_connections_beyond_the_cap_get_503(settings, filled):
    api = _serve(settings, stream_max_clients=2)
    try:
        with (
            httpx.stream("GET", f"{api.url}/v1/stream", timeout=10) as one,
            httpx.stream("GET", f"{api.url}/v1/stream", timeout=10) as two,
        ):
            assert one.status_code == two.status_code == 200
            third = httpx.get(f"{api.url}/v1/stream", timeout=10)
            assert third.status_code == 503 and third.headers["retry-after"] == "2"
            assert "at most" in third.json()["detail"] and "TWIN_STREAM_MAX_CLIENTS" in third.json()["detail"]
        deadline = time.monotonic() + 5
        while api.app.state.live.clients and time.monotonic() < deadline:  # the two went away: slots free again
            time.sleep(0.05)
        r = httpx.get(f"{api.url}/v1/stream?max_events=1", timeout=10)
        assert r.status_code == 200 and "event: snapshot" in r.text
    finally:
        api.stop()


def test_a_client_that_does_not_read_is_dropped_and_decisions_stay_quick(settings, store, filled, make_fleet):
    """A raw socket that sends the request and never reads: after its small buffer fills it is disconnected
    (the server resets the connection), while a reading client and the decision route go on undisturbed."""
    api = _serve(settings, stream_buffer_ticks=2)
    hub = api.app.state.live
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        silent.connect(("127.0.0.1", int(api.url.rsplit(":", 1)[1])))
        silent.sendall(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = Reader(api.url, 10_000)
        reader.start()
        rng = np.random.default_rng(4)
        ids = [f"veh{k}" for k in range(3000)]  # large deltas: every vehicle moves every tick
        decided_ms = []
        tick = 13
        deadline = time.monotonic() + 60
        while not hub.stats.clients_dropped and time.monotonic() < deadline:
            store.write_tick(make_fleet(tick, len(ids), rng, vehicle_ids=ids))
            started = time.perf_counter()
            r = httpx.post(f"{api.url}/v1/decisions/batch", json={"tick": tick}, timeout=10)
            decided_ms.append((time.perf_counter() - started) * 1e3)
            assert r.status_code == 200
            tick += 1
            time.sleep(0.12)
        assert hub.stats.clients_dropped == 1, "the silent client was never dropped"
        dropped_at = tick
        silent.settimeout(5)
        with pytest.raises(ConnectionResetError):  # reset by the server: what it buffered is gone with it
            while silent.recv(1 << 20):
                pass
        assert len(hub.clients) == 1  # the reader is still there
        store.write_tick(make_fleet(tick, len(ids), rng, vehicle_ids=ids))
        deadline = time.monotonic() + 10
        while not any(b.get("tick") == tick for _, b in reader.events) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        silent.close()
        api.stop()
    assert dropped_at - 13 <= 40, f"dropped only after {dropped_at - 13} ticks"
    assert any(b.get("tick") == tick for _, b in reader.events), "the reading client stopped getting ticks"
    assert max(decided_ms) < 2000


def test_a_client_is_resynced_when_it_falls_behind_and_dropped_when_it_reads_nothing():
    from twin_service.api.live import LiveClient, _Event

    client = LiveClient(buffer_ticks=3)
    client.held = 1
    for seq in (2, 3, 4):
        client.offer(_Event(b"x", seq))
    client.sent = 5  # it read meanwhile: a full queue means a fresh snapshot, not a drop
    client.offer(_Event(b"x", 5))
    assert client.held is None and [e.seq for e in client.queue] == [5] and not client.dropped
    for seq in (6, 7):
        client.offer(_Event(b"x", seq))
    client.offer(_Event(b"x", 8))  # full again and nothing taken since the last time: dropped
    assert client.dropped and not client.queue


def test_the_stream_says_why_it_cannot_decide(settings, store, make_fleet):
    """Ticks without the run's records (the state a FLUSHALL leaves, before the bridge heals it): a status event
    says degraded, and why; the dashboard turns it into a banner."""
    rng = np.random.default_rng(6)
    store.write_tick(make_fleet(1, 10, rng))
    api = _serve(settings)
    try:
        with httpx.stream("GET", f"{api.url}/v1/stream", timeout=20) as r:
            kind, body = next(_events(r.iter_lines()))
    finally:
        api.stop()
    assert kind == "status" and body["state"] == "degraded"
    assert any("no edge-server layout is stored" in reason for reason in body["reasons"])
    assert any("metadata is missing" in reason for reason in body["reasons"])


# --------------------------------------------------------------------------------------------
# Pages and the OpenAPI document
# --------------------------------------------------------------------------------------------


def test_stream_is_in_the_openapi_document_with_its_key(client):
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/v1/stream"]["get"]
    assert "text/event-stream" in op["responses"]["200"]["content"]
    assert op["security"] == [{"APIKeyHeader": []}]
    assert {p["name"] for p in op["parameters"]} == {"max_events", "city"}  # city: which run (issue 24)
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
