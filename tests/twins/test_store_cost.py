"""Reading one twin costs a few round trips and a few kilobytes, whatever the size of the tick.

Bytes are counted by the server itself (INFO stats ``total_net_output_bytes``), round trips by
counting what the client sends: plain commands and pipeline executions.
"""

from __future__ import annotations

import numpy as np
import redis

from twin_service.twins import TickFrame, TwinStore

N_VEHICLES = 5000
N_COLUMNS = 30


def _big_frame(tick: int) -> TickFrame:
    rng = np.random.default_rng(tick)
    ids = [f"vehicle_{i}" for i in range(N_VEHICLES)]
    return TickFrame(
        tick=tick,
        sim_time_s=float(tick),
        vehicle_ids=ids,
        vehicle_columns={f"col{j}": rng.normal(size=N_VEHICLES) for j in range(N_COLUMNS)},
        vehicle_text={"road_id": [f"edge_{i % 300}" for i in range(N_VEHICLES)]},
    )


def _bytes_sent_by_server(client: redis.Redis, action) -> int:
    """Server output bytes caused by ``action``, net of the INFO replies used to measure it."""
    before = client.info("stats")["total_net_output_bytes"]
    between = client.info("stats")["total_net_output_bytes"]
    action()
    after = client.info("stats")["total_net_output_bytes"]
    return (after - between) - (between - before)


class _RoundTrips:
    """Counts commands and pipeline executions sent through one client."""

    def __init__(self, client: redis.Redis, monkeypatch) -> None:
        self.count = 0
        real_command = client.execute_command
        real_pipeline = client.pipeline

        def command(*args, **kwargs):
            self.count += 1
            return real_command(*args, **kwargs)

        def pipeline(*args, **kwargs):
            pipe = real_pipeline(*args, **kwargs)
            real_execute = pipe.execute

            def execute(*a, **kw):
                self.count += 1
                return real_execute(*a, **kw)

            pipe.execute = execute
            return pipe

        monkeypatch.setattr(client, "execute_command", command)
        monkeypatch.setattr(client, "pipeline", pipeline)


def test_one_vehicle_costs_three_round_trips_and_kilobytes_not_megabytes(redis_client, key_prefix, monkeypatch):
    store = TwinStore(redis_client, key_prefix, window=3)
    frames = [_big_frame(t) for t in range(3)]
    for frame in frames:
        store.write_tick(frame)
    block_bytes = N_VEHICLES * N_COLUMNS * 8

    twin_bytes = _bytes_sent_by_server(redis_client, lambda: store.vehicle("vehicle_4321"))
    frame_bytes = _bytes_sent_by_server(redis_client, store.vehicles_frame)
    assert frame_bytes > block_bytes  # the measure sees a whole block when one is read
    # Per tick: meta, one index bucket (~160 ids of 5000) and two rows; not 1.3 MB of tables.
    assert twin_bytes < 16 * 1024, f"reading one twin moved {twin_bytes} bytes"

    trips = _RoundTrips(redis_client, monkeypatch)
    twin = store.vehicle("vehicle_4321")
    assert trips.count <= 3
    assert len(twin.history) == 3
    assert twin.state["col7"] == frames[-1].vehicle_columns["col7"][4321]
    assert twin.state["road_id"] == "edge_121"
