"""Ticks a server acknowledged and then lost come back with the next tick.

On a Redis Cluster a write is acknowledged before its replica has it; when the master dies, the replica that
takes over may be a few ticks behind. Here a real server is set back to an earlier state of itself (every key
of the run dumped after some tick and restored later, as a replica behind would be), and the writer goes on.
The real failover is in ``tests/twins/test_cluster.py``.
"""

from __future__ import annotations

import numpy as np

from twin_service.twins import TwinStore


def _snapshot(client, store: TwinStore) -> dict[bytes, tuple[bytes, int]]:  # noqa: ANN001
    keys = list(client.scan_iter(match=store.keys.pattern()))
    return {k: (client.dump(k), max(client.pttl(k), 0)) for k in keys}


def _set_back(client, store: TwinStore, snapshot: dict[bytes, tuple[bytes, int]]) -> None:  # noqa: ANN001
    client.unlink(*client.scan_iter(match=store.keys.pattern()))
    for key, (dumped, ttl_ms) in snapshot.items():
        client.restore(key, ttl_ms, dumped)


def test_ticks_lost_by_the_server_are_stored_again_whole_with_the_next(redis_client, key_prefix, make_frame):
    store = TwinStore(redis_client, key_prefix, window=3)
    store.begin_run("city", "hash", [{"id": "rsu_0"}])
    rng = np.random.default_rng(0)
    frames = [make_frame(t, [f"v{i}" for i in range(3 + t)], rng) for t in range(10)]
    metas = [store.write_tick(f) for f in frames[:3]]
    behind = _snapshot(redis_client, store)
    metas += [store.write_tick(f) for f in frames[3:8]]
    _set_back(redis_client, store, behind)  # the server now holds ticks 0..2 only, and says so
    assert store.latest_tick().tick == 2

    store.write_tick(frames[8])
    # 3..7 were acknowledged and lost: 6 and 7 (in the window of 8) are whole again, with the very bytes written
    # first (same write_id); 3..5 are older than the window and come back in the tick log only.
    assert store.reasserted_ticks == 5 and store.restores == 0
    assert [s.tick for s in store.kpi_history()] == list(range(9))
    assert [s.kpis for s in store.kpi_history()] == [f.kpis for f in frames[:9]]
    for t in (6, 7):
        meta, vehicles, _ = store.tick_frames(t)
        assert meta.write_id == metas[t].write_id and vehicles.ids == frames[t].vehicle_ids
        np.testing.assert_array_equal(vehicles.columns["x_m"], frames[t].vehicle_columns["x_m"])
    assert store.vehicle("v0").tick == 8 and [h.tick for h in store.vehicle("v0").history] == [6, 7, 8]
    assert sorted(int(t) for t in redis_client.zrange(store.keys.ticks, 0, -1)) == [6, 7, 8]

    store.write_tick(frames[9])  # and on it goes, nothing more to put back
    assert store.reasserted_ticks == 5
    assert [s.tick for s in store.kpi_history()] == list(range(10))


def test_a_lost_reply_is_no_lost_tick(redis_client, key_prefix, make_frame):
    """The transaction ran but its reply never came (the bridge retries the tick): the server is ahead of what the
    writer knows, nothing is put back, and the tick is rewritten whole."""
    store = TwinStore(redis_client, key_prefix, window=3)
    store.begin_run("city", "hash", [])
    rng = np.random.default_rng(1)
    frames = [make_frame(t, ["a", "b"], rng) for t in range(3)]
    store.write_tick(frames[0])
    store.write_tick(frames[1])
    del store._stored[1]  # as if tick 1's reply was lost: the writer never learnt that it was stored
    store._whole.discard(1)
    store._held_ticks = None
    store.write_tick(frames[1])
    store.write_tick(frames[2])
    assert store.reasserted_ticks == 0
    assert [s.tick for s in store.kpi_history()] == [0, 1, 2]
