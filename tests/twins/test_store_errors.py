"""Clear errors: unknown twins and ticks, invalid frames, and Redis out of reach (fast, no hang)."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from twin_service.twins import (
    TickFrame,
    TwinStore,
    TwinStoreUnavailable,
    UnknownTickError,
    UnknownTwinError,
    open_redis,
)


def test_unknown_twin_is_a_key_error_naming_the_id(store, make_frame):
    store.write_tick(make_frame(0, ["a"], np.random.default_rng(0)))
    with pytest.raises(UnknownTwinError, match="'nobody'") as info:
        store.vehicle("nobody")
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownTwinError):
        store.server("rsu_99")
    assert store.server("rsu_1").state["tier"] == "rsu"


def test_no_tick_yet_and_ticks_outside_the_window(store, make_frame):
    assert store.latest_tick() is None
    with pytest.raises(UnknownTickError, match="no tick written yet"):
        store.vehicles_frame()
    with pytest.raises(UnknownTickError):
        store.vehicle("a")
    rng = np.random.default_rng(1)
    for tick in range(8):
        store.write_tick(make_frame(tick, ["a"], rng))
    with pytest.raises(UnknownTickError, match="tick 2 is not held"):
        store.vehicles_frame(tick=2)
    with pytest.raises(UnknownTickError):
        store.vehicle("a", tick=2)
    with pytest.raises(UnknownTickError):
        store.kpis(tick=99)
    assert store.vehicles_frame(tick=3).ids == ["a"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(vehicle_ids=["a", "a"]), "not unique"),
        (dict(vehicle_ids=["a", "b\nc"]), "newline"),
        (dict(vehicle_columns={"x_m": np.zeros(3)}), "shape"),
        (dict(vehicle_text={"road_id": ["e1"]}), "expected 2"),
        (dict(vehicle_text={"road_id": ["e1", "e\x002"]}), "NUL"),
        (dict(vehicle_text={"road_id": ["e1", 2]}), "expected str instance"),
        (dict(vehicle_text={"x_m": ["e1", "e2"]}), "both numeric and text"),
    ],
)
def test_invalid_frames_are_refused_before_anything_is_written(store, change, message):
    fields = dict(
        tick=0,
        sim_time_s=0.0,
        vehicle_ids=["a", "b"],
        vehicle_columns={"x_m": np.zeros(2)},
        vehicle_text={"road_id": ["e1", "e2"]},
    )
    fields.update(change)
    with pytest.raises((ValueError, TypeError), match=message):
        store.write_tick(TickFrame(**fields))
    assert store.latest_tick() is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast():
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    start = time.monotonic()
    with pytest.raises(TwinStoreUnavailable, match="no Redis answering"), open_redis(url):
        pass
    with open_redis(url, check=False) as handle:
        store = TwinStore(handle.client, "down")
        frame = TickFrame(tick=0, sim_time_s=0.0, vehicle_ids=["a"], vehicle_columns={"x": np.ones(1)})
        with pytest.raises(TwinStoreUnavailable, match="write_tick") as info:
            store.write_tick(frame)
        assert info.value.__cause__ is not None
        with pytest.raises(TwinStoreUnavailable):
            store.latest_tick()
        with pytest.raises(TwinStoreUnavailable):
            store.vehicle("a")
    assert time.monotonic() - start < 5


def test_stopped_embedded_server_fails_fast(make_frame):
    rng = np.random.default_rng(2)
    with open_redis(None) as handle:
        client = handle.new_client()
        store = TwinStore(client, "run")
        store.write_tick(make_frame(0, ["a"], rng))
        assert store.vehicle_ids() == ["a"]
    start = time.monotonic()
    with pytest.raises(TwinStoreUnavailable):
        store.write_tick(make_frame(1, ["a"], rng))
    with pytest.raises(TwinStoreUnavailable):
        store.vehicles_frame()
    assert time.monotonic() - start < 5
    client.close()


def test_store_refuses_a_decoding_client(redis_server):
    client = redis_server.client.__class__.from_url(redis_server.url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        TwinStore(client, "x")
    client.close()
