"""Current set, sliding-window history and window mean over ticks with arrivals and departures."""

from __future__ import annotations

import numpy as np
import pytest

from twin_service.twins import TickFrame, TwinStore, UnknownTickError, UnknownTwinError


def _row(frame: TickFrame, vid: str) -> int:
    return frame.vehicle_ids.index(vid)


def _run(store: TwinStore, make_frame, n_ticks: int, seed: int = 7) -> list[TickFrame]:
    """Vehicles arrive and leave at random; ``blinker`` exists only on even ticks."""
    rng = np.random.default_rng(seed)
    arrive = rng.integers(0, n_ticks - 5, size=60)
    stay = rng.integers(1, 15, size=60)
    frames = []
    for tick in range(n_ticks):
        ids = [f"veh{k}" for k in range(60) if arrive[k] <= tick < arrive[k] + stay[k]]
        if tick % 2 == 0:
            ids.insert(len(ids) // 2, "blinker")
        frame = make_frame(tick, ids, rng)
        store.write_tick(frame)
        frames.append(frame)
    return frames


def test_current_set_history_and_window_mean_match_the_frames(store, make_frame):
    frames = _run(store, make_frame, n_ticks=41)
    last, window = frames[-1], frames[-store.window :]
    assert store.vehicle_ids() == last.vehicle_ids
    assert "blinker" in last.vehicle_ids
    assert store.latest_tick().tick == last.tick

    for vid in last.vehicle_ids:
        twin = store.vehicle(vid)
        seen = [f for f in window if vid in f.vehicle_ids]
        assert [h.tick for h in twin.history] == [f.tick for f in seen]
        assert len(twin.history) <= store.window
        row = _row(last, vid)
        for col, values in last.vehicle_columns.items():
            assert twin.state[col] == values[row]
            expected = np.mean([f.vehicle_columns[col][_row(f, vid)] for f in seen])
            assert twin.window_mean[col] == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert twin.state["road_id"] == last.vehicle_text["road_id"][row]
        assert twin.history[0].values["host_id"] == seen[0].vehicle_text["host_id"][_row(seen[0], vid)]

    assert [h.tick for h in store.vehicle("blinker").history] == [36, 38, 40]

    bulk = store.vehicles_window_mean()
    assert bulk.ids == last.vehicle_ids
    for i, vid in enumerate(bulk.ids):
        seen = [f for f in window if vid in f.vehicle_ids]
        assert bulk.counts[i] == len(seen)
        for col in last.vehicle_columns:
            expected = np.mean([f.vehicle_columns[col][_row(f, vid)] for f in seen])
            assert bulk.columns[col][i] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_blinker_history_holds_only_ticks_where_it_existed(store, make_frame):
    _run(store, make_frame, n_ticks=40)
    with pytest.raises(UnknownTwinError):
        store.vehicle("blinker")  # tick 39 is odd: not present now
    twin = store.vehicle("blinker", tick=38)
    # The window of tick 38 is 34..38, but the store holds 35..39 now: tick 34 is gone.
    assert [h.tick for h in twin.history] == [36, 38]


def test_frame_round_trips_exactly(store, make_frame):
    rng = np.random.default_rng(1)
    frame = make_frame(3, [f"v{i}" for i in range(25)], rng)
    store.write_tick(frame)
    ids, columns, text = store.vehicles_frame()
    assert ids == frame.vehicle_ids
    assert list(columns) == list(frame.vehicle_columns)
    for col, values in frame.vehicle_columns.items():
        np.testing.assert_array_equal(columns[col], values)
    assert text == frame.vehicle_text
    sids, scols, stext = store.servers_frame()
    assert sids == frame.server_ids
    np.testing.assert_array_equal(scols["load_bits"], frame.server_columns["load_bits"])
    assert stext["tier"] == ["rsu", "rsu", "uav", "satellite"]
    assert store.kpis() == frame.kpis


def test_departed_vehicle_leaves_at_once_and_its_history_after_the_window(store, make_frame, redis_client):
    rng = np.random.default_rng(3)
    for tick in range(10):
        store.write_tick(make_frame(tick, ["stay", "leaver"], rng))
    store.write_tick(make_frame(10, ["stay"], rng))

    assert store.vehicle_ids() == ["stay"]
    with pytest.raises(UnknownTwinError):
        store.vehicle("leaver")
    assert store.vehicle("leaver", tick=9).history[-1].tick == 9  # still in the window

    def ticks_holding_leaver() -> list[int]:
        held = sorted(int(t) for t in redis_client.zrange(store.keys.ticks, 0, -1))
        return [t for t in held if "leaver" in store.vehicle_ids(tick=t)]

    assert ticks_holding_leaver() == [6, 7, 8, 9]
    for tick in range(11, 10 + store.window):
        store.write_tick(make_frame(tick, ["stay"], rng))
    assert ticks_holding_leaver() == []
    with pytest.raises(UnknownTickError):
        store.vehicle("leaver", tick=9)
    assert len(store.vehicle("stay").history) == store.window


def test_columns_may_change_between_ticks(store, make_frame):
    rng = np.random.default_rng(5)
    store.write_tick(make_frame(0, ["a", "b"], rng, columns=("x_m", "speed_mps")))
    store.write_tick(make_frame(1, ["b", "a"], rng, columns=("speed_mps", "energy_j", "x_m")))
    twin = store.vehicle("a")
    assert set(twin.history[0].values) == {"x_m", "speed_mps", "road_id", "host_id"}
    assert set(twin.history[1].values) == {"x_m", "speed_mps", "energy_j", "road_id", "host_id"}
    assert twin.window_mean["energy_j"] == twin.state["energy_j"]  # only one tick holds it
    assert twin.window_mean["x_m"] == pytest.approx((twin.history[0].values["x_m"] + twin.history[1].values["x_m"]) / 2)
    bulk = store.vehicles_window_mean()
    assert bulk.ids == ["b", "a"]
    assert bulk.columns["x_m"][1] == pytest.approx(twin.window_mean["x_m"])
    assert bulk.columns["energy_j"][1] == twin.window_mean["energy_j"]


def test_memory_stays_flat_over_2000_ticks(redis_client, key_prefix, make_frame, count_keys):
    store = TwinStore(redis_client, key_prefix, window=10, log_maxlen=50)
    rng = np.random.default_rng(11)
    base = make_frame(0, [f"veh{i}" for i in range(50)], rng)
    used = {}
    for tick in range(2000):
        start = tick // 3  # a new vehicle every third tick, the oldest leaves
        ids = [f"veh{i}" for i in range(start, start + 50)]
        frame = TickFrame(
            tick=tick,
            sim_time_s=float(tick),
            vehicle_ids=ids,
            vehicle_columns={c: v + tick for c, v in base.vehicle_columns.items()},
            vehicle_text={"road_id": [f"E{tick % 97}"] * 50},
            server_ids=base.server_ids,
            server_columns=base.server_columns,
            server_text=base.server_text,
            kpis=base.kpis,
        )
        store.write_tick(frame)
        if tick in (199, 1999):
            used[tick] = (count_keys(redis_client, key_prefix), redis_client.info("memory")["used_memory"])
    keys_then, mem_then = used[199]
    keys_now, mem_now = used[1999]
    assert keys_now == keys_then
    assert keys_now <= 10 * len(store.keys.tick_keys(0)) + 3  # + latest, ticks, log
    assert len(store.vehicle_ids()) == 50
    assert mem_now - mem_then < 256 * 1024, f"used_memory grew by {mem_now - mem_then} bytes"


def test_a_reader_that_keeps_blocks_gives_what_a_fresh_reader_reads(store, make_frame):
    """The window mean reuses the blocks it decoded for earlier ticks (issue 20): tick after tick, and after a
    tick of the window is rewritten, it equals what a reader without any kept block computes."""
    rng = np.random.default_rng(3)
    ids = [f"veh{k}" for k in range(30)]
    for tick in range(25):
        store.write_tick(make_frame(tick, ids[tick % 5 :], rng))
        if tick % 3 == 0:
            fresh = TwinStore(store.redis, store.prefix, window=store.window)
            kept, read = store.vehicles_window_mean(), fresh.vehicles_window_mean()
            assert kept.ids == read.ids
            for col in read.columns:
                np.testing.assert_array_equal(kept.columns[col], read.columns[col])
    before = store.vehicles_window_mean()
    store.write_tick(make_frame(24, ids, rng))  # the latest tick written again (a retry: a new write id)
    after = store.vehicles_window_mean()
    read = TwinStore(store.redis, store.prefix, window=store.window).vehicles_window_mean()
    assert any(not np.array_equal(after.columns[c], before.columns[c]) for c in read.columns)
    for col in read.columns:
        np.testing.assert_array_equal(after.columns[col], read.columns[col])
