"""Run-wide data, KPIs, paging, servers, and clear()."""

from __future__ import annotations

import numpy as np
import pytest

from twin_service.twins import TwinStore


def test_layout_and_run_meta_round_trip(store):
    assert store.read_layout() == []
    layout = [
        {"id": "rsu_0", "tier": "rsu", "x": 10.5, "y": -3.0, "range_m": 1200.0},
        {"id": "sat", "tier": "satellite", "x": None, "y": None},
    ]
    store.write_layout(layout)
    assert store.read_layout() == layout
    store.write_run_meta("city", "0123abcd", seed=3)
    meta = store.read_run_meta()
    assert (meta["scenario"], meta["param_hash"], meta["seed"], meta["window"]) == (
        "city",
        "0123abcd",
        "3",
        "5",
    )


def test_clear_removes_every_key_of_its_prefix_only(redis_client, key_prefix, make_frame, count_keys):
    rng = np.random.default_rng(0)
    mine = TwinStore(redis_client, key_prefix)
    neighbour = TwinStore(redis_client, key_prefix + "-other")
    for tick in range(3):
        mine.write_tick(make_frame(tick, ["a", "b"], rng))
        neighbour.write_tick(make_frame(tick, ["c"], rng))
    mine.write_layout([{"id": "rsu_0"}])
    mine.write_run_meta("city", "hash")
    held = count_keys(redis_client, key_prefix)
    assert held > 10
    assert mine.clear() == held
    assert count_keys(redis_client, key_prefix) == 0
    assert mine.latest_tick() is None
    assert neighbour.vehicle_ids() == ["c"]
    neighbour.clear()


def test_kpis_and_kpi_history_outlive_the_window(store, make_frame):
    rng = np.random.default_rng(1)
    frames = [make_frame(tick, ["a"], rng) for tick in range(12)]
    for frame in frames:
        store.write_tick(frame)
    assert store.kpis() == frames[-1].kpis
    assert store.kpis(tick=9) == frames[9].kpis
    history = store.kpi_history(last_n=8)
    assert [s.tick for s in history] == list(range(4, 12))  # beyond the 5-tick window
    assert [s.kpis for s in history] == [f.kpis for f in frames[4:]]
    assert history[-1].sim_time_s == 11.0
    assert len(store.kpi_history()) == 12
    assert store.kpi_history(last_n=0) == []


def test_list_vehicles_pages_in_row_order(store, make_frame):
    ids = [f"v{i:03d}" for i in range(23)][::-1]
    store.write_tick(make_frame(0, ids, np.random.default_rng(2)))
    page = store.list_vehicles(offset=20, limit=10)
    assert page.ids == ids[20:]
    assert page.total == 23
    assert store.list_vehicles(tick=0, offset=0, limit=5).ids == ids[:5]
    assert store.list_vehicles(offset=40).ids == []
    with pytest.raises(ValueError):
        store.list_vehicles(offset=-1)


def test_server_twins_and_their_window_mean(store, make_frame):
    rng = np.random.default_rng(3)
    frames = [make_frame(tick, ["a"], rng) for tick in range(7)]
    for frame in frames:
        store.write_tick(frame)
    twin = store.server("uav_0")
    loads = [f.server_columns["load_bits"][2] for f in frames[-5:]]
    assert twin.state["tier"] == "uav"
    assert [h.tick for h in twin.history] == [2, 3, 4, 5, 6]
    assert twin.window_mean["load_bits"] == pytest.approx(np.mean(loads), rel=1e-12)
    bulk = store.servers_window_mean()
    assert bulk.ids == ["rsu_0", "rsu_1", "uav_0", "sat"]
    assert bulk.columns["load_bits"][2] == pytest.approx(np.mean(loads), rel=1e-12)
    np.testing.assert_array_equal(bulk.counts, [5, 5, 5, 5])
    assert store.server_ids() == ["rsu_0", "rsu_1", "uav_0", "sat"]


def test_an_empty_tick_is_a_tick(store, make_frame):
    rng = np.random.default_rng(4)
    store.write_tick(make_frame(0, ["a"], rng))
    store.write_tick(make_frame(1, [], rng))
    meta = store.latest_tick()
    assert (meta.tick, meta.n_vehicles) == (1, 0)
    ids, columns, text = store.vehicles_frame()
    assert ids == [] and all(len(v) == 0 for v in columns.values())
    assert text == {"road_id": [], "host_id": []}
    wm = store.vehicles_window_mean()
    assert wm.ids == [] and len(wm.counts) == 0
    assert store.vehicle("a", tick=0).state["x_m"] is not None
