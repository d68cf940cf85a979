"""The run's records heal themselves: a run marker checked under WATCH in every tick's transaction."""

from __future__ import annotations

import numpy as np

from twin_service.twins import TwinStore


def test_a_write_that_finds_the_marker_gone_under_its_watch_starts_over(redis_client, key_prefix, make_frame):
    """FLUSHALL between the marker check and EXEC (simulated by deleting the marker there): the transaction
    aborts, nothing of the tick is written, and the next try puts the records back with the tick."""
    store = TwinStore(redis_client, key_prefix, window=5)
    store.begin_run("test", "hash", [{"id": "rsu_0"}], seed=1)
    rng = np.random.default_rng(0)
    store.write_tick(make_frame(0, ["a"], rng))
    original = store._write_tick_once
    calls = []

    def meddling(pipe, *args):  # noqa: ANN001, ANN002, ANN202
        calls.append(1)
        if len(calls) == 1:
            pipe.watch(store.keys.run)
            redis_client.delete(store.keys.run, store.keys.layout)  # another client, between WATCH and EXEC
        return original(pipe, *args)

    store._write_tick_once = meddling  # type: ignore[method-assign]
    store.write_tick(make_frame(1, ["a", "b"], rng))
    assert len(calls) == 2 and store.restores == 1
    assert store.read_layout() == [{"id": "rsu_0"}] and store.read_run_meta()["run_id"] == store.run_id
    assert store.latest_tick().tick == 1 and store.vehicle_ids() == ["a", "b"]


def test_records_written_once_with_begin_run_carry_a_new_run_marker(store):
    first = store.begin_run("city", "0123abcd", [{"id": "rsu_0"}], seed=3)
    meta = store.read_run_meta()
    assert meta["run_id"] == first == store.run_id and meta["scenario"] == "city" and meta["seed"] == "3"
    assert store.read_layout() == [{"id": "rsu_0"}]
    second = store.begin_run("city", "0123abcd", [{"id": "rsu_1"}])
    assert second != first and "seed" not in store.read_run_meta()  # a new run replaces the old records whole
