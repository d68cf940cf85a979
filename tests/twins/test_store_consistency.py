"""A reader never sees two ticks mixed; a rewritten (retried) tick replaces the old one whole."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import redis

from twin_service.twins import (
    TickFrame,
    TwinStore,
    TwinStoreUnavailable,
    UnknownTickError,
    UnknownTwinError,
)


def _ids(tick: int) -> list[str]:
    start = tick % 13
    return [f"v{i}" for i in range(start, start + 20 + tick % 17)]


def _tick_frame(tick: int) -> TickFrame:
    """Every value, id set and text encodes the tick, so a mixed read cannot pass for one tick."""
    ids = _ids(tick)
    n = len(ids)
    return TickFrame(
        tick=tick,
        sim_time_s=float(tick),
        vehicle_ids=ids,
        vehicle_columns={"tick": np.full(n, float(tick)), "double": np.full(n, 2.0 * tick)},
        vehicle_text={"label": [f"t{tick}"] * n},
        server_ids=[f"s{tick % 3}"],
        server_columns={"tick": np.array([float(tick)])},
        kpis={"tick": float(tick)},
    )


def test_concurrent_reader_never_sees_two_ticks_mixed(redis_server, key_prefix, redis_client):
    writer_store = TwinStore(redis_client, key_prefix, window=4)
    reader_client = redis_server.new_client()
    reader_store = TwinStore(reader_client, key_prefix, window=4)
    writer_store.write_tick(_tick_frame(0))
    stop = threading.Event()
    problems: list[str] = []
    seen: set[int] = set()
    misses = 0

    def read() -> None:
        nonlocal misses
        while not stop.is_set():
            try:
                ids, cols, text = reader_store.vehicles_frame()
                twin = reader_store.vehicle("v15")
            except UnknownTickError:
                misses += 1  # fell a whole window behind the writer: allowed, never torn
                continue
            t = int(cols["tick"][0])
            seen.add(t)
            if ids != _ids(t):
                problems.append(f"ids of another tick than {t}")
            if not (np.all(cols["tick"] == t) and np.all(cols["double"] == 2 * t)):
                problems.append(f"numeric block mixes ticks around {t}")
            if text["label"] != [f"t{t}"] * len(ids):
                problems.append(f"text block mixes ticks around {t}")
            ticks = [h.tick for h in twin.history]
            if ticks != sorted(set(ticks)) or any(h.values["tick"] != h.tick for h in twin.history):
                problems.append(f"history of v15 torn: {ticks}")
            if any(h.values["label"] != f"t{h.tick}" for h in twin.history):
                problems.append("history text of another tick")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        deadline = time.monotonic() + 1.5
        tick = 1
        while time.monotonic() < deadline:
            writer_store.write_tick(_tick_frame(tick))
            tick += 1
    finally:
        stop.set()
        reader.join(timeout=10)
        reader_client.close()
    assert not problems, problems[:5]
    assert tick > 200, "the writer barely ran"
    assert len(seen) > 20, f"the reader saw only {len(seen)} ticks: no real interleaving"
    assert misses < len(seen)


def test_rewriting_a_tick_replaces_it_whole(store, make_frame, redis_client, count_keys):
    rng = np.random.default_rng(2)
    for tick in range(5):
        store.write_tick(make_frame(tick, ["a", "b", "c"], rng))
    keys_before = count_keys(redis_client, store.prefix)
    retry = make_frame(4, ["c", "d"], rng, columns=("x_m",))
    store.write_tick(retry)

    ids, cols, _ = store.vehicles_frame()
    assert ids == ["c", "d"]
    assert list(cols) == ["x_m"]
    np.testing.assert_array_equal(cols["x_m"], retry.vehicle_columns["x_m"])
    with pytest.raises(UnknownTwinError):
        store.vehicle("a")  # only in the first version of tick 4
    assert store.vehicle("c").state["x_m"] == retry.vehicle_columns["x_m"][0]
    assert [s.tick for s in store.kpi_history()] == [0, 1, 2, 3, 4]
    assert store.kpi_history()[-1].kpis == retry.kpis
    assert count_keys(redis_client, store.prefix) == keys_before


def test_retry_after_a_lost_reply_leaves_one_clean_tick(store, make_frame, monkeypatch):
    rng = np.random.default_rng(4)
    store.write_tick(make_frame(0, ["a", "b"], rng))
    frame = make_frame(1, ["b", "c"], rng)
    real_execute = redis.client.Pipeline.execute

    def execute_then_lose_reply(self, *args, **kwargs):
        real_execute(self, *args, **kwargs)
        raise redis.ConnectionError("connection reset after EXEC")

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute_then_lose_reply)
    with pytest.raises(TwinStoreUnavailable):
        store.write_tick(frame)
    monkeypatch.undo()

    store.write_tick(frame)  # the bridge retries the same tick
    assert store.vehicle_ids() == ["b", "c"]
    assert [h.tick for h in store.vehicle("b").history] == [0, 1]
    assert [s.tick for s in store.kpi_history()] == [0, 1]


def test_ticks_must_not_go_back_until_cleared(store, make_frame):
    rng = np.random.default_rng(6)
    store.write_tick(make_frame(7, ["a"], rng))
    with pytest.raises(ValueError, match="must not go back"):
        store.write_tick(make_frame(6, ["a"], rng))
    # Another writer process knows nothing of this one's cache: it asks Redis.
    other = TwinStore(store.redis, store.prefix, window=store.window)
    with pytest.raises(ValueError, match="must not go back"):
        other.write_tick(make_frame(3, ["a"], rng))
    store.clear()
    store.write_tick(make_frame(0, ["b"], rng))
    assert store.vehicle_ids() == ["b"]


def test_a_whole_tick_reads_as_one_version(store, make_frame):
    """tick_frames gives the meta, vehicles and servers of one write, the same as the separate reads."""
    rng = np.random.default_rng(9)
    for tick in range(3):
        store.write_tick(make_frame(tick, ["a", "b", "c"], rng))
    rewrite = make_frame(2, ["c", "d"], rng)
    written = store.write_tick(rewrite)
    meta, veh, srv = store.tick_frames()
    assert meta == written and meta.tick == 2 and meta.sim_time_s == rewrite.sim_time_s
    assert veh.ids == ["c", "d"] and veh.ids == store.vehicles_frame().ids
    np.testing.assert_array_equal(veh.columns["x_m"], rewrite.vehicle_columns["x_m"])
    assert srv.ids == store.servers_frame(2).ids == list(rewrite.server_ids)
    old_meta, old_veh, _ = store.tick_frames(1)
    assert old_meta.tick == 1 and old_veh.ids == ["a", "b", "c"]
