"""What-if events and the decision log in the twin store: stored with the tick, read back, bounded, healed."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import redis

from twin_service.twins import TickFrame, TwinStore
from twin_service.twins.declog import DecisionLogEntry, DecisionLogError, pack_rows, top_scores, unpack_rows


def _entry(tick: int, ids: list[str], rng: np.random.Generator, m: int = 4) -> DecisionLogEntry:
    n = len(ids)
    probs = rng.dirichlet(np.ones(m), size=n).astype(np.float32)
    top_i, top_s = top_scores(probs)
    target = probs.argmax(axis=1)
    rows = pack_rows(
        ids,
        rng.integers(0, m, n),
        target,
        rng.uniform(0, 1, n),
        rng.integers(1, m + 1, n),
        top_i,
        top_s,
        rng.uniform(0, 3e8, n),
    )
    return DecisionLogEntry(tick, float(tick), "least-loaded@1+nearest-least-loaded@1", False, rows)


def test_top_scores_by_hand() -> None:
    probs = np.array([[0.1, 0.6, 0.3, 0.0], [0.0, 0.0, 1.0, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype=np.float32)
    index, scores = top_scores(probs)
    assert index.tolist() == [[1, 2, 0], [2, -1, -1], [0, 1, 2]]  # ties go to the lower index
    assert np.allclose(scores, [[0.6, 0.3, 0.1], [1.0, 0.0, 0.0], [0.25, 0.25, 0.25]])


def test_pack_round_trip_and_refusals() -> None:
    rng = np.random.default_rng(3)
    ids = [f"veh{i}" for i in range(50)]
    entry = _entry(7, ids, rng)
    rows = unpack_rows(entry.rows)
    assert rows.vehicle_ids == tuple(ids)
    assert rows.row("veh17") == 17 and rows.row("nobody") is None
    assert rows.top_index.shape == (50, 3)
    with pytest.raises(DecisionLogError):
        unpack_rows(b"not zlib at all")
    import zlib

    with pytest.raises(DecisionLogError):  # a header that claims more rows than it holds
        unpack_rows(zlib.compress(zlib.decompress(entry.rows)[:-7]))


def test_decisions_logged_with_the_tick_read_per_vehicle(
    store: TwinStore, make_frame: Callable[..., TickFrame]
) -> None:
    rng = np.random.default_rng(1)
    store.begin_run("test", "h", [])
    fleets = {t: [f"veh{i}" for i in range(t, t + 20)] for t in range(1, 13)}  # veh1 leaves after tick 1
    for t in range(1, 13):
        frame = make_frame(t, fleets[t], rng)
        frame.decision_log = _entry(t - 1, fleets[t - 1], rng) if t > 1 else None
        store.write_tick(frame)
    assert store.append_decisions(_entry(12, fleets[12], rng))
    assert not store.append_decisions(_entry(12, fleets[12], rng))  # the same tick is never logged twice
    assert store.decision_log_span() == (1, 12, 12)
    mine = store.vehicle_decisions("veh10", last=5)
    assert [d.tick for d in mine] == [6, 7, 8, 9, 10]  # veh10 drives in ticks 1..10 (fleets of 20 from t)
    assert all(0 <= d.rho <= 1 and d.mask_size >= 1 for d in mine)
    window = store.vehicle_decisions("veh10", last=50, from_tick=3, to_tick=4)
    assert [d.tick for d in window] == [3, 4]
    assert store.vehicle_decisions("veh999", last=3) == []
    assert [r.tick for r in store.decision_log(last=3)] == [10, 11, 12]
    assert [r.tick for r in store.decision_log_after(10)] == [11, 12]


def test_a_retried_tick_does_not_log_twice(store: TwinStore, make_frame: Callable[..., TickFrame]) -> None:
    rng = np.random.default_rng(2)
    store.begin_run("test", "h", [])
    ids = ["a", "b"]
    for t in (1, 2):
        frame = make_frame(t, ids, rng)
        frame.decision_log = _entry(t - 1, ids, rng) if t > 1 else None
        store.write_tick(frame)
    store._last_logged_tick = None  # as after a write whose reply was lost
    again = make_frame(2, ids, rng)
    again.decision_log = _entry(1, ids, rng)
    store.write_tick(again)  # rewriting tick 2 with its entry: no error, no second entry
    assert store.decision_log_span() == (1, 1, 1)


def test_decision_log_is_bounded_and_redis_memory_flat_over_1000_ticks(
    redis_client: redis.Redis, key_prefix: str, make_frame: Callable[..., TickFrame]
) -> None:
    # The KPI log has a bound of its own (log_maxlen, 3,600 ticks by default): short here, so that 1,000 ticks
    # show the whole run's memory flat.
    store = TwinStore(redis_client, key_prefix, window=3, log_maxlen=50, decision_log_maxlen=20)
    store.begin_run("test", "h", [])
    rng = np.random.default_rng(4)
    ids = [f"v{i}" for i in range(30)]
    memory: dict[int, int] = {}
    for t in range(1, 1001):
        frame = make_frame(t, ids, rng)
        frame.decision_log = _entry(t - 1, ids, rng) if t > 1 else None
        store.write_tick(frame)
        if t % 10 == 0:  # every key of the run (ticks, twins, KPIs, the log), as Redis counts them
            keys = list(redis_client.scan_iter(match=store.keys.pattern(), count=1000))
            memory[t] = sum(int(redis_client.memory_usage(k, samples=0) or 0) for k in keys)
    span = store.decision_log_span()
    assert span is not None
    assert 20 <= span[2] <= 20 + 100, span  # approximate trimming: whole stream nodes (at most 100 entries each)
    assert span[1] == 999
    # Flat: what the run holds over ticks 500-1000 peaks no higher than over ticks 150-500 (the log, trimmed by
    # whole nodes, saws between 20 and 120 entries; the ticks' own keys expire with their window).
    early = max(v for t, v in memory.items() if 150 <= t < 500)
    late = max(v for t, v in memory.items() if t >= 500)
    assert late <= early * 1.05, (early, late)
    assert min(v for t, v in memory.items() if t >= 500) > 0


def test_events_stored_counted_and_healed(store: TwinStore, make_frame: Callable[..., TickFrame]) -> None:
    rng = np.random.default_rng(5)
    store.begin_run("test", "h", [{"id": "rsu_0"}])
    store.write_tick(make_frame(1, ["a"], rng))
    assert store.event_counts == (0, 0)
    first = store.add_event({"kind": "server_outage", "server": "rsu_0", "duration_s": 60})
    second = store.add_event({"kind": "channel", "factor": 0.5})
    assert (first, second) == ("1", "2")
    assert store.request_event_end(second, {"requested_wall_time": 1.0})
    assert not store.request_event_end(second, {"requested_wall_time": 2.0})  # asked once
    frame = make_frame(2, ["a"], rng)
    frame.event_states = {first: json.dumps({"status": "active", "start_tick": 2})}
    store.write_tick(frame)
    assert store.event_counts == (2, 1)  # the writer learns of changes with the tick's write
    records = store.read_events(remember=True)
    assert set(records.events) == {"1", "2"} and set(records.ends) == {"2"} and records.seq == 2
    assert json.loads(records.states["1"])["status"] == "active"
    store.redis.flushall()  # Redis emptied between two ticks: the events come back with the run's records
    store.write_tick(make_frame(3, ["a"], rng))
    healed = store.read_events()
    assert set(healed.events) == {"1", "2"} and set(healed.ends) == {"2"} and "1" in healed.states
    assert store.add_event({"kind": "uav_launch"}) == "3"  # the id counter came back too
