"""Fixtures of the twin-store tests: a store on the test's own prefix, and synthetic frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest
import redis

from twin_service.twins import TickFrame, TwinKeys, TwinStore

VEHICLE_COLUMNS = ("x_m", "y_m", "speed_mps", "host_index", "data_bits", "latency_s")
SERVER_IDS = ("rsu_0", "rsu_1", "uav_0", "sat")
SERVER_TIERS = ("rsu", "rsu", "uav", "satellite")


def synthetic_frame(
    tick: int,
    vehicle_ids: Sequence[str],
    rng: np.random.Generator,
    columns: Sequence[str] = VEHICLE_COLUMNS,
) -> TickFrame:
    """A tick with random numeric columns, text columns, four servers and two KPIs."""
    n = len(vehicle_ids)
    return TickFrame(
        tick=tick,
        sim_time_s=float(tick),
        wall_time=1.7e9 + tick,
        vehicle_ids=list(vehicle_ids),
        vehicle_columns={c: rng.normal(size=n) * 100 for c in columns},
        vehicle_text={
            "road_id": [f"E{rng.integers(50)}_{tick}" for _ in range(n)],
            "host_id": [SERVER_IDS[int(rng.integers(len(SERVER_IDS)))] for _ in range(n)],
        },
        server_ids=list(SERVER_IDS),
        server_columns={"load_bits": rng.uniform(0, 1e9, len(SERVER_IDS)), "hosted": rng.integers(0, 9, 4)},
        server_text={"tier": list(SERVER_TIERS)},
        kpis={"mean_latency_s": float(rng.uniform()), "n_vehicles": float(n)},
    )


@pytest.fixture
def make_frame() -> Callable[..., TickFrame]:
    return synthetic_frame


@pytest.fixture
def store(redis_client: redis.Redis, key_prefix: str) -> TwinStore:
    """A store with a window of 5 ticks on the test's own prefix."""
    return TwinStore(redis_client, key_prefix, window=5)


def prefix_key_count(client: redis.Redis, prefix: str) -> int:
    return sum(1 for _ in client.scan_iter(match=TwinKeys(prefix).pattern(), count=1000))


@pytest.fixture
def count_keys() -> Callable[[redis.Redis, str], int]:
    return prefix_key_count
